#!/usr/bin/env bash
# Loads <base_url>/api/docs/ in headless Chromium with every host but
# 127.0.0.1 unreachable, waits for Swagger UI to render the OpenAPI
# document, and checks that the rendered page shows the operations and the
# Authorize button, and that the browser neither blocked (Content-Security-
# Policy) nor failed to fetch anything: the page works offline.
#
#   tests/contract/docs_page.sh http://127.0.0.1:8000
#
# Needs Debian's chromium (apt-get install -y chromium) and python3 (to read
# the browser's network log). Exits non-zero on failure; gives up after 60 s.
# DOCS_PAGE_PATH (default /api/docs/) points it at another page, to check
# the checker.
set -euo pipefail

base="${1:?usage: $0 <base_url>, e.g. http://127.0.0.1:8000}"
base="${base%/}"
case "$base" in
  http://127.0.0.1:* | http://127.0.0.1) ;;
  *) echo "docs_page: the server must be at http://127.0.0.1[:port] (every other host is cut off)" >&2; exit 2 ;;
esac

page="${DOCS_PAGE_PATH:-/api/docs/}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "docs_page: chromium not found (apt-get install -y chromium)" >&2
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# No name resolves but 127.0.0.1, and anything not bypassed goes to a proxy
# on the discard port, which nothing serves: no request can leave the host.
# --virtual-time-budget lets the page's scripts and requests run to quiet
# before --dump-dom prints the DOM as rendered. The console (--log-level=0)
# reports what the page's policy blocked; the network log every request the
# page made.
status=0
timeout 60 "$browser" \
  --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --user-data-dir="$work/profile" --no-first-run --no-default-browser-check \
  --disable-extensions --disable-background-networking --disable-component-update \
  --disable-sync --disable-default-apps --disable-domain-reliability \
  --host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1" \
  --proxy-server="http://127.0.0.1:9" --proxy-bypass-list="127.0.0.1" \
  --enable-logging=stderr --v=0 --log-level=0 --log-net-log="$work/net.json" \
  --virtual-time-budget=20000 --run-all-compositor-stages-before-draw \
  --dump-dom "$base$page" >"$work/dom.html" 2>"$work/browser.log" || status=$?

fail() {
  echo "docs_page: FAIL: $*" >&2
  echo "--- browser console and errors (last 40 lines) ---" >&2
  grep -iE 'console|refused|content security|failed|error' "$work/browser.log" \
    | grep -vE 'dbus|bus\.cc|property\.cc|bluez|idle_linux|vaapi|sandbox_linux' | tail -40 >&2 || true
  exit 1
}

[ "$status" -eq 0 ] || fail "chromium exited with status $status (124: timed out)"
[ -s "$work/dom.html" ] || fail "chromium printed no DOM"

# Nothing blocked by the page's policy (the console says so)...
if grep -E "violates the following Content Security Policy|Refused to (load|connect|apply|execute|evaluate)" \
  "$work/browser.log" >"$work/blocked.log"; then
  cut -c1-400 "$work/blocked.log" >&2
  fail "the page's Content-Security-Policy blocked something the page tried to use"
fi
# ... and every request the page made went to this server (Chromium's own
# background requests have no page origin and are left out).
python3 - "$work/net.json" "$base" <<'PY' || fail "the page made requests outside $base"
import json, sys
log = json.load(open(sys.argv[1]))
base = sys.argv[2]
origin = base.split("/")[0] + "//" + base.split("/")[2]
start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
page, outside = [], []
for event in log["events"]:
    params = event.get("params") or {}
    if event["type"] != start_job or "url" not in params:
        continue
    if params.get("initiator") == origin or params.get("request_type") == "main frame":
        page.append(params["url"])
        if not params["url"].startswith(origin + "/"):
            outside.append(params["url"])
for url in outside:
    print("outside request:", url, file=sys.stderr)
if not outside:
    print(f"docs_page: the page made {len(page)} requests, all to {origin}", file=sys.stderr)
sys.exit(1 if outside or not page else 0)
PY

# Swagger UI rendered the document: operations, the Authorize button (the
# bearer scheme), and the page's links to the raw documents.
checks=(
  'class="swagger-ui'
  'data-path="/api/missions/"'
  'data-path="/api/documents/{id}/download/"'
  'btn authorize'
  'href="/api/asyncapi/"'
  'href="/api/schema/"'
)
for needle in "${checks[@]}"; do
  grep -qF -- "$needle" "$work/dom.html" || fail "the rendered page lacks: $needle"
done
operations="$(grep -o 'class="opblock opblock-' "$work/dom.html" | wc -l)"
[ "$operations" -ge 20 ] || fail "only $operations operations rendered"
if grep -qE 'class="[^"]*(errors-wrapper|loading-container)' "$work/dom.html"; then
  fail "Swagger UI shows an error or is still loading"
fi

echo "docs_page: OK: $base/api/docs/ rendered $operations operations offline, with the Authorize button"
