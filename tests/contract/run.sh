#!/usr/bin/env bash
# The contract stage (`make contract`): consume /api/schema/ the way clients
# do, against a live server.
#
#   a. openapi-spec-validator validates the document;
#   b. openapi-typescript generates TypeScript from it, `tsc --strict`
#      compiles the typed client in tests/client/, and the client runs against
#      the server; then tests/contract/docs_page.sh loads /api/docs/ in a
#      headless browser;
#   c. schemathesis fuzzes every operation as a logged-in user (phases
#      examples, coverage, fuzzing, stateful): no server error, no response
#      outside the schema; afterwards the server still answers and logged no
#      panic.
#
# Every step runs (a failing one does not hide the next ones' findings) and is
# time-boxed; the run fails if any step failed. Tools are pinned in
# tests/contract/requirements.txt and tests/client/package-lock.json and
# installed under target/contract/ (git-ignored), where the fetched schema,
# the server log and the reports stay after the run for inspection.
#
# Environment: AUTODOCS_BIN (default target/debug/autodocs, built if missing),
# CONTRACT_FUZZ_SECONDS (schemathesis' time budget, default 240).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

bin="${AUTODOCS_BIN:-$root/target/debug/autodocs}"
fuzz_seconds="${CONTRACT_FUZZ_SECONDS:-240}"
out="$root/target/contract"
venv="$out/venv"
client="$root/tests/client"
mkdir -p "$out"

run_started=$SECONDS
passed=0
failed=0
failures=()

log() { printf '[contract %4ds] %s\n' "$((SECONDS - run_started))" "$*"; }

# step NAME COMMAND...: runs one step, logs its outcome and duration, and
# records a failure instead of stopping the run.
step() {
  local name="$1" started=$SECONDS status=0
  shift
  log "BEGIN $name"
  "$@" || status=$?
  if ((status == 0)); then
    passed=$((passed + 1))
    log "PASS  $name ($((SECONDS - started)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name (exit $status)")
    log "FAIL  $name (exit $status, $((SECONDS - started)) s)"
  fi
}

# Each tool is reinstalled only when its pins changed (a stamp holds the
# lock file's hash), so a local rerun does not pay for it twice.
install_python_tools() {
  local want
  want="$(sha256sum tests/contract/requirements.txt | cut -d' ' -f1)"
  if [[ -x "$venv/bin/st" && "$(cat "$venv/.stamp" 2>/dev/null)" == "$want" ]]; then
    log "python tools already installed"
    return 0
  fi
  rm -rf "$venv"
  timeout 300 python3 -m venv "$venv"
  timeout 300 "$venv/bin/pip" install --quiet --disable-pip-version-check \
    --require-virtualenv -r tests/contract/requirements.txt
  echo "$want" >"$venv/.stamp"
}

install_node_tools() {
  local want
  want="$(sha256sum "$client/package-lock.json" | cut -d' ' -f1)"
  if [[ -d "$client/node_modules" && "$(cat "$client/node_modules/.stamp" 2>/dev/null)" == "$want" ]]; then
    log "node tools already installed"
    return 0
  fi
  (cd "$client" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$client/node_modules/.stamp"
}

log "tools: installing the pinned versions"
install_python_tools
install_node_tools
version_of() { node -p "require('$client/node_modules/$1/package.json').version"; }
log "tools: $("$venv/bin/st" --version 2>&1 | head -n1); openapi-spec-validator $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("openapi-spec-validator"))'); node $(node --version); typescript $(version_of typescript); openapi-typescript $(version_of openapi-typescript); openapi-fetch $(version_of openapi-fetch)"

if [[ ! -x "$bin" ]]; then
  log "building $bin"
  # The packages and targets `make test` builds: one feature set, one build.
  cargo build --workspace --all-targets
fi

# --- the server -----------------------------------------------------------
tmp="$(mktemp -d -t autodocs-contract.XXXXXX)"
server_log="$out/server.log"
server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap stop_server EXIT

# Throttling off and long-lived access tokens: the fuzzer registers, logs in
# and calls a lot with one token. Background jobs do not run in this server:
# the fuzzer creates `fetch_url` steps with made-up public URLs, and nothing
# here may send traffic off this machine.
secret_key="$(od -An -N48 -tx1 /dev/urandom | tr -d ' \n')"
unset_autodocs=()
while IFS= read -r name; do unset_autodocs+=(-u "$name"); done \
  < <(compgen -e | grep -E '^(AUTODOCS|DATABASE_URL$|RUST_LOG$)' || true)
(
  cd "$tmp"
  exec env "${unset_autodocs[@]}" \
    DATABASE_URL="sqlite://$tmp/contract.sqlite3" \
    AUTODOCS__SERVER__BIND=127.0.0.1:0 \
    AUTODOCS__STORAGE__MEDIA_ROOT="$tmp/media" \
    AUTODOCS__AUTH__SECRET_KEY="$secret_key" \
    AUTODOCS__AUTH__PASSWORD_ITERATIONS=1000 \
    AUTODOCS__AUTH__ACCESS_TOKEN_LIFETIME_SECONDS=86400 \
    AUTODOCS__THROTTLE__ENABLED=false \
    AUTODOCS__JOBS__RUN_IN_SERVE=false \
    RUST_LOG=info \
    "$bin" serve
) >"$server_log" 2>&1 </dev/null &
server_pid=$!

# The server binds a free port (127.0.0.1:0: no race with another process
# picking the same one) and prints the address it got.
base=""
for _ in $(seq 1 300); do
  base="$(sed -n 's/^autodocs listening on \(http:[^ ]*\).*/\1/p' "$server_log" | head -n1)"
  base="${base%/}"
  [[ -n "$base" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    log "the server exited before listening:"
    cat "$server_log"
    exit 1
  fi
  sleep 0.2
done
if [[ -z "$base" ]]; then
  log "the server did not print its address within 60 s:"
  cat "$server_log"
  exit 1
fi
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$base/api/health/" && break
  sleep 0.2
done
log "server $base (pid $server_pid, log $server_log)"

# --- a. the document --------------------------------------------------------
schema="$out/schema.json"
curl -fsS --max-time 30 -o "$schema" "$base/api/schema/"
log "schema: $(wc -c <"$schema") bytes, $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d.get("paths",{})), "paths,", sum(1 for p in d.get("paths",{}).values() for m in p if m in ("get","put","post","patch","delete","head")), "operations,", len(d.get("components",{}).get("schemas",{})), "component schemas")' "$schema")"

step "a. openapi-spec-validator" timeout 120 "$venv/bin/openapi-spec-validator" --validation-errors all "$schema"

# --- b. the typed client ---------------------------------------------------
generate_types() {
  (cd "$client" && timeout 120 npx --no-install openapi-typescript "$schema" --output src/schema.d.ts)
}
compile_client() {
  rm -rf "$client/dist"
  (cd "$client" && timeout 300 npx --no-install tsc --strict -p tsconfig.json)
}
run_client() {
  (cd "$client" && timeout 120 node dist/main.js "$base")
}
docs_page() {
  if [[ ! -f tests/contract/docs_page.sh ]]; then
    echo "tests/contract/docs_page.sh is missing" >&2
    return 1
  fi
  timeout 180 bash tests/contract/docs_page.sh "$base"
}
step "b. openapi-typescript generates src/schema.d.ts" generate_types
step "b. tsc --strict compiles the typed client" compile_client
if [[ -f "$client/dist/main.js" ]]; then
  step "b. the typed client runs against the server" run_client
else
  failed=$((failed + 1))
  failures+=("b. the typed client runs against the server (not compiled)")
  log "FAIL  b. the typed client runs against the server: it did not compile"
fi
step "b. the docs page in a headless browser" docs_page

# --- c. schemathesis -----------------------------------------------------------
# One user of its own: the client's user and data stay out of its way.
fuzz_user="fuzz_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
access="$(
  curl -fsS --max-time 30 -H 'Content-Type: application/json' \
    -d "{\"username\":\"$fuzz_user\",\"email\":\"$fuzz_user@example.com\",\"password\":\"fuzzing is fun $fuzz_user\"}" \
    "$base/api/auth/register/" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])'
)"

fuzz() (
  # --max-time is schemathesis' own budget (fuzzing and stateful repeat until
  # it is spent); the outer timeout only catches a hang. One worker: with
  # several threads, CPython 3.11's ast.parse (called by hypothesis) fails
  # now and then with "AST constructor recursion depth mismatch", a tool
  # error that would fail the run for nothing the server did.
  # Run from target/contract/: schemathesis keeps its cache of failures
  # (replayed first on the next run) in ./.schemathesis/, not in the tree.
  cd "$out"
  timeout --kill-after=10 "$((fuzz_seconds + 120))" \
    "$venv/bin/st" run "$schema" \
    --url "$base" \
    --header "Authorization: Bearer $access" \
    --phases examples,coverage,fuzzing,stateful \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-time "$fuzz_seconds" \
    --max-examples 50 \
    --request-timeout 10 \
    --workers 1 \
    --generation-database none \
    --no-color \
    --report junit,ndjson \
    --report-dir "$out/schemathesis"
)
server_still_answers() {
  kill -0 "$server_pid" 2>/dev/null || {
    echo "the server died" >&2
    return 1
  }
  curl -fsS --max-time 10 "$base/api/health/"
  echo
}
# A 5xx logs `request failed` at ERROR (crates/autodocs-http/src/error.rs),
# a panic `panicked at`: neither may happen, whoever sent the request.
server_log_clean() {
  if grep -nE 'panicked at|request failed' "$server_log"; then
    echo "the server log (above) records a panic or a server error" >&2
    return 1
  fi
}
step "c. schemathesis (${fuzz_seconds} s)" fuzz
step "c. the server still answers /api/health/" server_still_answers
step "c. no panic nor server error in the server log" server_log_clean

log "contract: $passed passed, $failed failed ($((SECONDS - run_started)) s)"
for f in "${failures[@]}"; do log "  failed: $f"; done
echo "$passed passed, $failed failed"
((failed == 0))
