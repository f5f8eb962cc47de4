#!/usr/bin/env bash
# Upload/download throughput and memory of the streamed document path.
#
#   ./bench/upload.sh                  # standalone: builds the release binary first
#   BENCH_UPLOAD_MIB=256 ./bench/upload.sh
#
# Starts its own `autodocs serve` (release build, fresh SQLite file, own media
# root, uploads.max_bytes above the file size) so that the memory it reports
# belongs to this scenario alone, then with curl:
#
#   1. uploads a BENCH_UPLOAD_MIB (default 1024) MiB PDF (a PDF header and
#      random bytes) as multipart, and checks the recorded sha256;
#   2. downloads it whole (to /dev/null);
#   3. verifies it (POST verify/: the server re-reads and re-hashes the file).
#
# For each it reports MB/s and the server's peak RSS growth over its RSS
# before the step (VmRSS sampled every 20 ms, and VmHWM after resetting it).
# The streamed path must keep that growth under 32 MiB; the script exits 1
# if it does not.
#
# When bench/run.sh calls it (BENCH_TMP set), its stdout follows run.sh's
# optional-scenario contract: Markdown rows `| scenario | requests/s | p50 |
# p99 | errors | server RSS | vs limit |` and notes. It never runs in tests.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

size_mib=${BENCH_UPLOAD_MIB:-1024}
limit_kib=$((32 * 1024))
label=${BENCH_LABEL:-SQLite}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The database does not matter to this scenario (one row per upload): under
# bench/run.sh it runs once, in the SQLite pass.
if [ -n "${BENCH_LABEL:-}" ] && [ "$BENCH_LABEL" != SQLite ]; then
    echo "- $BENCH_LABEL: upload scenario not repeated (it measures the file path; see the SQLite pass)."
    exit 0
fi

if [ -z "${BENCH_TMP:-}" ] && [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building the release binary"
    cargo build --release -p autodocs >&2
fi
autodocs="$root/target/release/autodocs"
[ -x "$autodocs" ] || { echo "missing $autodocs (cargo build --release -p autodocs)" >&2; exit 1; }

tmp=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/autodocs-upload.XXXXXX")
server_pid=""
sampler_pid=""
cleanup() {
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { python3 -c 'import sys; print("%.1f" % (int(sys.argv[1]) / 1024))' "$1"; }

# --- the server -------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
mkdir -p "$tmp/media"
log "starting autodocs serve on $base (uploads.max_bytes ${size_mib} MiB + 1 MiB)"
DATABASE_URL="sqlite://$tmp/bench.sqlite3" \
    AUTODOCS__SERVER__BIND="127.0.0.1:$port" \
    AUTODOCS__STORAGE__MEDIA_ROOT="$tmp/media" \
    AUTODOCS__UPLOADS__MAX_BYTES=$(((size_mib + 1) * 1024 * 1024)) \
    AUTODOCS__THROTTLE__ENABLED=false \
    AUTODOCS__AUTH__PASSWORD_ITERATIONS=1000 \
    RUST_LOG=warn \
    "$autodocs" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1200); do
    grep -q "listening on" "$tmp/server.log" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.1
done

user="bench$(date +%s)"
password="Bench-upload-$$-pw"
token=$(curl -sf -H 'Content-Type: application/json' \
    -d "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"$password\"}" \
    "$base/api/auth/register/" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access"])')
auth=(-H "Authorization: Bearer $token")

# --- the file ---------------------------------------------------------------
file="$tmp/big.pdf"
log "writing a ${size_mib} MiB file"
{ printf '%%PDF-1.7\n'; head -c $((size_mib * 1024 * 1024 - 9)) /dev/urandom; } >"$file"
bytes=$(stat -c %s "$file")
expected_sha=$(sha256sum "$file" | cut -d' ' -f1)

# --- measuring --------------------------------------------------------------
# measure NAME CMD...: runs CMD while sampling the server's RSS; sets
# `seconds`, `growth_kb` and `out` (CMD's stdout).
measure() {
    local name=$1 before peak hwm_peak start end
    shift
    sync
    sleep 1
    before=$(rss_kb "$server_pid")
    # Reset VmHWM to the current RSS (Linux >= 4.0), so it measures this step.
    echo 5 >"/proc/$server_pid/clear_refs" 2>/dev/null || true
    (while [ -r "/proc/$server_pid/status" ]; do rss_kb "$server_pid"; sleep 0.02; done) >"$tmp/rss-$name" 2>/dev/null &
    sampler_pid=$!
    start=$(date +%s.%N)
    out=$("$@")
    end=$(date +%s.%N)
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=""
    peak=$(sort -n "$tmp/rss-$name" | tail -1)
    hwm_peak=$(hwm_kb "$server_pid")
    [ "${hwm_peak:-0}" -gt "${peak:-0}" ] && peak=$hwm_peak
    growth_kb=$((peak - before))
    [ "$growth_kb" -lt 0 ] && growth_kb=0
    seconds=$(python3 -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$start" "$end")
    rss_before_kb=$before
    rss_peak_kb=$peak
}

mbps() { python3 -c 'import sys; print("%.0f" % (int(sys.argv[1]) / float(sys.argv[2]) / 1e6))' "$1" "$2"; }

failed=0
rows=()
row() { # row NAME SECONDS GROWTH_KB PEAK_KB EXTRA
    local name=$1 secs=$2 growth=$3 peak=$4 rate verdict
    rate=$(mbps "$bytes" "$secs")
    verdict="ok"
    if [ "$growth" -ge "$limit_kib" ]; then
        verdict="OVER 32 MiB"
        failed=1
    fi
    log "$name: $rate MB/s in ${secs}s, server RSS +$(mib "$growth") MiB (peak $(mib "$peak") MiB) $verdict"
    rows+=("| $label · $name, ${size_mib} MiB | $rate MB/s | ${secs} s | – | 0 | $(mib "$peak") MiB peak, +$(mib "$growth") MiB ($verdict) | – |")
}

log "uploading"
measure upload curl -sS --fail-with-body "${auth[@]}" -H 'Expect:' \
    -F "file=@$file;type=application/octet-stream" -F name=big "$base/api/documents/"
document=$out
id=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$document")
recorded_sha=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["sha256"])' "$document")
content_type=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["content_type"])' "$document")
[ "$recorded_sha" = "$expected_sha" ] || { echo "sha256 mismatch: $recorded_sha != $expected_sha" >&2; exit 1; }
[ "$content_type" = "application/pdf" ] || { echo "sniffed $content_type" >&2; exit 1; }
row upload "$seconds" "$growth_kb" "$rss_peak_kb"
upload_before=$rss_before_kb

log "downloading"
measure download curl -sS --fail "${auth[@]}" -o /dev/null -w '%{size_download}' \
    "$base/api/documents/$id/download/"
[ "$out" = "$bytes" ] || { echo "downloaded $out bytes of $bytes" >&2; exit 1; }
row download "$seconds" "$growth_kb" "$rss_peak_kb"

log "verifying (the server re-reads the file)"
measure verify curl -sS --fail "${auth[@]}" -X POST "$base/api/documents/$id/verify/"
status=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["status"])' "$out")
[ "$status" = verified ] || { echo "verify: $out" >&2; exit 1; }
row verify "$seconds" "$growth_kb" "$rss_peak_kb"

for line in "${rows[@]}"; do
    echo "$line"
done
echo
echo "- $label: ${size_mib} MiB document upload/download/verify against the release binary;" \
    "server RSS $(mib "$upload_before") MiB before the upload; growth limit 32 MiB" \
    "($([ "$failed" = 0 ] && echo "met" || echo "NOT met"))."
exit "$failed"
