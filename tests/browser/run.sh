#!/usr/bin/env bash
# The staff admin in a real browser: starts `autodocs serve` (the debug
# build `make test` made, or $AUTODOCS_BIN) on a fresh SQLite database,
# creates a superuser, and drives Debian's Chromium through chromedriver
# (selenium, pinned in requirements.txt) over tests/browser/admin.py.
# Screenshots of every page go to target/browser/screenshots/.
#
# Needs chromium, chromium-driver and python3-venv (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

out="target/browser"
venv="$out/venv"
shots="$out/screenshots"
bin="${AUTODOCS_BIN:-target/debug/autodocs}"
log() { echo "browser: $*" >&2; }

[[ -x "$bin" ]] || { log "$bin is missing: run make test (or cargo build) first"; exit 2; }
driver="$(command -v chromedriver || true)"
browser="$(command -v chromium || command -v chromium-browser || true)"
[[ -n "$driver" && -n "$browser" ]] || { log "chromium and chromedriver are needed (apt-get install -y chromium chromium-driver)"; exit 2; }

want="$(sha256sum tests/browser/requirements.txt | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]]; then
  rm -rf "$venv"
  timeout 300 python3 -m venv "$venv"
  timeout 300 "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/browser/requirements.txt
  echo "$want" >"$venv/.stamp"
fi

work="$(mktemp -d)"
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

export AUTODOCS__SERVER__BIND="127.0.0.1:0"
export DATABASE_URL="sqlite://$work/autodocs.sqlite3"
export AUTODOCS__STORAGE__MEDIA_ROOT="$work/media"
export AUTODOCS__AUTH__PASSWORD_ITERATIONS=1000
export AUTODOCS__THROTTLE__ENABLED=false
AUTODOCS__AUTH__SECRET_KEY="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
export AUTODOCS__AUTH__SECRET_KEY
export RUST_LOG=warn

staff_password="Tr0ub4dor&3-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr '0-9a-f' 'g-v')"
"$bin" migrate >/dev/null
AUTODOCS_PASSWORD="$staff_password" "$bin" createsuperuser --username root --email root@example.com >/dev/null

"$bin" serve >"$work/stdout" 2>"$work/stderr" &
server=$!
base=""
for _ in $(seq 1 100); do
  base="$(sed -n 's/^autodocs listening on \(http:[^ ]*\).*/\1/p' "$work/stdout" | head -n1)"
  [[ -n "$base" ]] && break
  kill -0 "$server" 2>/dev/null || { log "the server exited"; cat "$work/stderr" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$base" ]] || { log "the server did not start"; cat "$work/stderr" >&2; exit 1; }
base="${base%/}"

rm -rf "$shots" && mkdir -p "$shots"
log "driving $("$browser" --version 2>/dev/null | head -n1) against $base"
status=0
timeout 300 "$venv/bin/python" tests/browser/admin.py \
  --base "$base" --password "$staff_password" --screenshots "$shots" \
  --chromedriver "$driver" --chromium "$browser" || status=$?
if [[ $status -ne 0 ]]; then
  log "FAILED ($status); server log:"
  tail -40 "$work/stderr" >&2
  exit "$status"
fi
log "passed; screenshots in $shots: $(ls "$shots" | tr '\n' ' ')"
