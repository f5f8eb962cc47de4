-- wrk script: POST /api/missions/ with a small JSON body.
-- The access token comes from the BENCH_TOKEN environment variable.
wrk.method = "POST"
wrk.body = '{"title": "Retrieve Tax Documents", "type": "document_retrieval", "priority": "high"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
