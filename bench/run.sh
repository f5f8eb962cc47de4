#!/usr/bin/env bash
# Benchmarks AutoDocs against the release binary and writes docs/benchmarks.md.
#
#   ./bench/run.sh                 # SQLite (a fresh file in a temp dir)
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres ./bench/run.sh
#                                  # ... and a second pass on a fresh PostgreSQL
#                                  # database created (and dropped) on that server
#
# Scenarios (wrk, 2 threads, 32 connections, 3 s warm-up + 10 s measured):
#   the limit (a static page server), list of 20 missions, mission detail,
#   mission creation, a login storm while the list runs again; then the
#   optional scenarios whose scripts exist: bench/ws.py (WebSocket fan-out)
#   and bench/upload.sh.
#
# Optional scenario contract: each gets BENCH_BASE_URL, BENCH_USERNAME,
# BENCH_PASSWORD, BENCH_TOKEN, BENCH_MISSION_ID, BENCH_SERVER_PID, BENCH_LABEL
# (the database), BENCH_TMP (a scratch dir) and BENCH_LIMIT_RPS in its
# environment; its stdout is Markdown: lines starting with `|` are rows of the
# main table, in run order (scenario | requests/s | p50 | p99 | errors | server RSS | vs
# limit), other non-empty lines are notes. A failing optional scenario is
# reported, not fatal.
#
# Knobs: BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (32),
# BENCH_THREADS (2), WS_SOCKETS (2000), BENCH_SKIP_BUILD=1.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
bench="$root/bench"

duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-3s}
connections=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# --- prerequisites -----------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q && $sudo apt-get install -y -q wrk
fi
if [ -f "$bench/ws.py" ] && ! python3 -c 'import websocket' 2>/dev/null; then
    log "installing websocket-client"
    python3 -m pip install -q websocket-client || log "could not install websocket-client: the WebSocket scenario will be skipped"
fi
# Room for thousands of WebSocket connections (server and client inherit it).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building the release binary and the static-page example"
    cargo build --release -p autodocs
    cargo build --release -p autodocs-http --example static_page
fi
# Wherever cargo puts its builds (CARGO_TARGET_DIR, .cargo/config).
target_dir="${TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}"
autodocs="${target_dir:-$root/target}/release/autodocs"
static_page="${target_dir:-$root/target}/release/examples/static_page"
[ -x "$autodocs" ] && [ -x "$static_page" ] || { echo "missing release binaries" >&2; exit 1; }

# --- bookkeeping and cleanup -------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/autodocs-bench.XXXXXX")
results="$tmp/results"
mkdir -p "$results"
: >"$results/results.tsv"
started_pids=()
sampler_pid=""
pg_admin_url=""
pg_database=""

stop_pid() { # stop_pid PID: TERM, then KILL after 15 s
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$? pid
    set +e
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
    for pid in "${started_pids[@]}"; do stop_pid "$pid"; done
    if [ -n "$pg_database" ]; then
        psql "$pg_admin_url" -qAt -c "DROP DATABASE IF EXISTS \"$pg_database\" WITH (FORCE)" >/dev/null 2>&1 ||
            psql "$pg_admin_url" -qAt -c "DROP DATABASE IF EXISTS \"$pg_database\"" >/dev/null 2>&1
    fi
    if [ "$status" -ne 0 ]; then
        echo "bench failed (exit $status); logs kept in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_listening PID LOG: until LOG says "listening on", 120 s at most.
wait_listening() {
    local pid=$1 logfile=$2 i
    for i in $(seq 1200); do
        grep -q "listening on" "$logfile" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { echo "server exited:" >&2; cat "$logfile" >&2; return 1; }
        sleep 0.1
    done
    echo "server not listening after 120 s:" >&2
    cat "$logfile" >&2
    return 1
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# RSS sampler: writes the process's VmRSS every 100 ms to FILE.
start_sampler() { # start_sampler PID FILE
    local pid=$1 file=$2
    (while [ -r "/proc/$pid/status" ]; do rss_kb "$pid"; sleep 0.1; done) >"$file" 2>/dev/null &
    sampler_pid=$!
}
stop_sampler() { # stop_sampler FILE -> prints the peak kB
    [ -n "$sampler_pid" ] && { kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; }
    sampler_pid=""
    sort -n "$1" | tail -1
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# wait_idle PID: until the server burns < 5% CPU over 0.5 s (60 s at most),
# so left-over work of one scenario (queued logins...) does not leak into the next.
wait_idle() {
    local pid=$1 before after i
    for i in $(seq 120); do
        before=$(cpu_ticks "$pid"); sleep 0.5; after=$(cpu_ticks "$pid")
        [ $((after - before)) -le 2 ] && return 0
    done
}

# note TEXT...: a line for the report's notes, kept in run order.
note() {
    local file
    file="$results/note-$(wc -l <"$results/results.tsv").md"
    echo "$*" >>"$file"
    printf 'note\t%s\t\t\t%s\n' "$file" extra >>"$results/results.tsv"
}

# scenario LABEL ROLE PID URL [wrk args...]: warm-up, measured run, one row.
scenario() {
    local label=$1 role=$2 pid=$3 url=$4 out idle peak
    shift 4
    out="$results/wrk-$(printf '%02d' "$(wc -l <"$results/results.tsv")").txt"
    log "$label"
    wait_idle "$pid"
    wrk -t"$threads" -c"$connections" -d"$warmup" --timeout 30s "$@" "$url" >/dev/null
    wait_idle "$pid"
    idle=$(rss_kb "$pid")
    start_sampler "$pid" "$out.rss"
    wrk -t"$threads" -c"$connections" -d"$duration" --timeout 30s --latency "$@" "$url" >"$out"
    peak=$(stop_sampler "$out.rss")
    grep -E "Requests/sec|99%|Non-2xx|Socket errors" "$out" | sed 's/^/    /' >&2 || true
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$out" "$idle" "$peak" "$role" >>"$results/results.tsv"
}

# --- the limit: a static page from a bare actix-web server ------------------
port=$(free_port)
log "the limit: static page server on 127.0.0.1:$port"
"$static_page" "127.0.0.1:$port" >"$tmp/static.log" 2>&1 &
static_pid=$!
started_pids+=("$static_pid")
wait_listening "$static_pid" "$tmp/static.log"
static_bytes=$(python3 -c 'import sys, urllib.request; print(len(urllib.request.urlopen(sys.argv[1]).read()))' \
    "http://127.0.0.1:$port/api/missions/")
scenario "limit · static page of 20 missions (${static_bytes} B)" limit "$static_pid" "http://127.0.0.1:$port/api/missions/"
limit_rps=$(python3 "$bench/report.py" parse "$(tail -1 "$results/results.tsv" | cut -f2)" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["rps"] or 0)')
stop_pid "$static_pid"

# --- one pass per database ---------------------------------------------------
# The WebSocket fan-out scenario opens thousands of sockets for one user:
# lift the per-user socket cap (20 by default) for the benchmark server.
run_pass() { # run_pass LABEL DATABASE_URL
    local label=$1 database_url=$2 port base pid seed token username password mission_id page_bytes
    port=$(free_port)
    base="http://127.0.0.1:$port"
    log "$label: starting autodocs serve on $base"
    mkdir -p "$tmp/media-$label"
    DATABASE_URL="$database_url" \
        AUTODOCS__SERVER__BIND="127.0.0.1:$port" \
        AUTODOCS__STORAGE__MEDIA_ROOT="$tmp/media-$label" \
        AUTODOCS__THROTTLE__ENABLED=false \
        AUTODOCS__REALTIME__MAX_SOCKETS_PER_USER=100000 \
        RUST_LOG=warn \
        "$autodocs" serve >"$tmp/server-$label.log" 2>&1 &
    pid=$!
    started_pids+=("$pid")
    wait_listening "$pid" "$tmp/server-$label.log"
    wait_idle "$pid"
    local startup_rss
    startup_rss=$(rss_kb "$pid")

    log "$label: seeding (register, 100 missions x 3 steps)"
    seed="$tmp/seed-$label.json"
    python3 "$bench/seed.py" seed "$base" "$seed"
    username=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["username"])' "$seed")
    password=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["password"])' "$seed")
    mission_id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["mission_id"])' "$seed")
    page_bytes=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["page_bytes"])' "$seed")
    login() { python3 "$bench/seed.py" login "$base" "$username" "$password"; }

    token=$(login)
    scenario "$label · list missions, page of 20 (${page_bytes} B)" list "$pid" \
        "$base/api/missions/?page_size=20" -H "Authorization: Bearer $token"

    token=$(login)
    scenario "$label · mission detail (3 steps)" detail "$pid" \
        "$base/api/missions/$mission_id/" -H "Authorization: Bearer $token"

    # The login storm: 32 concurrent logins (1,000,000 PBKDF2 iterations each)
    # for the whole measured run of the list scenario.
    token=$(login)
    log "$label: login storm + list missions"
    wait_idle "$pid"
    wrk -t"$threads" -c"$connections" -d"$warmup" --timeout 30s -H "Authorization: Bearer $token" \
        "$base/api/missions/?page_size=20" >/dev/null
    wait_idle "$pid"
    local idle storm_out list_out peak secs
    idle=$(rss_kb "$pid")
    storm_out="$results/wrk-storm-$label.txt"
    list_out="$results/wrk-understorm-$label.txt"
    secs=${duration%s}
    start_sampler "$pid" "$list_out.rss"
    BENCH_USERNAME="$username" BENCH_PASSWORD="$password" \
        wrk -t"$threads" -c"$connections" -d"$((secs + 2))s" --timeout 60s --latency -s "$bench/login.lua" \
        "$base/api/auth/login/" >"$storm_out" &
    local storm_pid=$!
    sleep 1
    wrk -t"$threads" -c"$connections" -d"$duration" --timeout 30s --latency \
        -H "Authorization: Bearer $token" "$base/api/missions/?page_size=20" >"$list_out"
    wait "$storm_pid"
    peak=$(stop_sampler "$list_out.rss")
    grep -E "Requests/sec|99%|Non-2xx|Socket errors" "$storm_out" "$list_out" | sed 's/^/    /' >&2 || true
    printf '%s\t%s\t%s\t%s\t%s\n' "$label · login storm: $connections concurrent logins" "$storm_out" "$idle" "$peak" storm >>"$results/results.tsv"
    printf '%s\t%s\t%s\t%s\t%s\n' "$label · list missions during the login storm" "$list_out" "$idle" "$peak" under-storm >>"$results/results.tsv"

    # After the storm, so that the list above still sees 100 missions.
    token=$(login)
    export BENCH_TOKEN="$token"
    scenario "$label · create mission (POST)" create "$pid" \
        "$base/api/missions/" -s "$bench/post_mission.lua"

    local extra
    for extra in ws.py upload.sh; do
        [ -f "$bench/$extra" ] || continue
        if [ "$extra" = ws.py ] && ! python3 -c 'import websocket' 2>/dev/null; then
            note "- $label: WebSocket scenario skipped (no websocket-client)."
            continue
        fi
        log "$label: $extra"
        wait_idle "$pid"
        token=$(login)
        local runner=(bash)
        [ "$extra" = ws.py ] && runner=(python3)
        if ! BENCH_BASE_URL="$base" BENCH_USERNAME="$username" BENCH_PASSWORD="$password" \
            BENCH_TOKEN="$token" BENCH_MISSION_ID="$mission_id" BENCH_SERVER_PID="$pid" \
            BENCH_LABEL="$label" BENCH_TMP="$tmp" BENCH_LIMIT_RPS="$limit_rps" \
            "${runner[@]}" "$bench/$extra" >"$results/$extra-$label.md"; then
            echo "- $label: \`bench/$extra\` failed (its error is in run.sh's stderr)." >>"$results/$extra-$label.md"
        fi
        cat "$results/$extra-$label.md" >&2
        printf '%s\t%s\t\t\t%s\n' "$extra" "$results/$extra-$label.md" extra >>"$results/results.tsv"
    done

    note "- $label: server RSS $(python3 -c 'import sys; print("%.1f" % (int(sys.argv[1]) / 1024))' "$startup_rss") MiB idle after start-up," \
        "peak (VmHWM) $(python3 -c 'import sys; print("%.1f" % (int(sys.argv[1]) / 1024))' "$(hwm_kb "$pid")") MiB over the whole pass;" \
        "a page of 20 missions is $page_bytes B (static page: $static_bytes B)."
    stop_pid "$pid"
}

run_pass SQLite "sqlite://$tmp/bench.sqlite3"

if [ -n "${BENCH_DATABASE_URL:-}" ]; then
    pg_admin_url=$BENCH_DATABASE_URL
    pg_database="autodocs_bench_$$_$(date +%s)"
    log "PostgreSQL: creating database $pg_database"
    psql "$pg_admin_url" -v ON_ERROR_STOP=1 -qAt -c "CREATE DATABASE \"$pg_database\"" >/dev/null
    pg_url=$(python3 -c '
import sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(url._replace(path="/" + sys.argv[2])))' "$pg_admin_url" "$pg_database")
    run_pass PostgreSQL "$pg_url"
    psql "$pg_admin_url" -qAt -c "DROP DATABASE IF EXISTS \"$pg_database\" WITH (FORCE)" >/dev/null 2>&1 ||
        psql "$pg_admin_url" -qAt -c "DROP DATABASE IF EXISTS \"$pg_database\"" >/dev/null
    pg_database=""
fi

mkdir -p "$root/docs"
python3 "$bench/report.py" render "$results" "$root/docs/benchmarks.md"
log "written docs/benchmarks.md"
