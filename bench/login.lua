-- wrk script: a login storm, POST /api/auth/login/ with the bench user's
-- credentials (BENCH_USERNAME, BENCH_PASSWORD). Each login runs PBKDF2 with
-- the server's default 1,000,000 iterations.
wrk.method = "POST"
wrk.body = string.format('{"username": "%s", "password": "%s"}',
  os.getenv("BENCH_USERNAME") or "", os.getenv("BENCH_PASSWORD") or "")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
