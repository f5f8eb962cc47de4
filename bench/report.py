#!/usr/bin/env python3
"""Turns the raw results of bench/run.sh into docs/benchmarks.md.

    report.py parse WRK_OUTPUT            prints the parsed wrk numbers (JSON)
    report.py render RESULTS_DIR OUT_MD   writes the Markdown report, prints it

RESULTS_DIR holds `results.tsv`, written by run.sh, one line per step in run
order: label, file, server idle RSS kB, server peak RSS kB, role. For a wrk
run the file is wrk's output; for role `extra` it is Markdown (printed by an
optional scenario, or a note of run.sh): lines that start with `|` are rows
of the main table, the other non-empty lines are notes. Standard library only.
"""

import datetime
import json
import os
import platform
import re
import subprocess
import sys

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def duration_ms(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError("unparsable wrk duration %r" % text)
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(path):
    """requests/s, p50, p99 (ms), request count, non-2xx and socket errors."""
    with open(path) as handle:
        text = handle.read()
    result = {"rps": None, "p50": None, "p99": None, "requests": 0,
              "non2xx": 0, "socket": {}, "raw": path}
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if match:
        result["rps"] = float(match.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        match = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, text, re.M)
        if match:
            result[key] = duration_ms(match.group(1))
    match = re.search(r"(\d+) requests in", text)
    if match:
        result["requests"] = int(match.group(1))
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if match:
        result["non2xx"] = int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if match:
        result["socket"] = {name: int(value) for name, value in
                            zip(("connect", "read", "write", "timeout"), match.groups()) if int(value)}
    return result


def fmt_ms(value):
    if value is None:
        return "n/a"
    if value >= 1000:
        return "%.2f s" % (value / 1000)
    if value >= 10:
        return "%.0f ms" % value
    if value >= 1:
        return "%.1f ms" % value
    return "%.2f ms" % value


def fmt_rps(value):
    if value is None:
        return "n/a"
    return "{:,.0f}".format(value) if value >= 100 else "%.1f" % value


def fmt_mib(kb):
    return "%.1f MiB" % (int(kb) / 1024) if kb not in (None, "", "0") else "n/a"


def fmt_errors(result):
    parts = []
    if result["non2xx"]:
        parts.append("%d non-2xx" % result["non2xx"])
    parts += ["%d %s" % (count, name) for name, count in result["socket"].items()]
    return ", ".join(parts) if parts else "0"


def machine():
    def read(path):
        try:
            with open(path) as handle:
                return handle.read()
        except OSError:
            return ""
    cpu = re.search(r"^model name\s*:\s*(.+)$", read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", read("/proc/meminfo"), re.M)
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rustc = "n/a"
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        wrk = (wrk.stdout + wrk.stderr).splitlines()[0].split(" [")[0]
    except (OSError, IndexError):
        wrk = "n/a"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu.group(1).strip() if cpu else "unknown",
        "memory": "%.1f GiB" % (int(mem.group(1)) / 1024 / 1024) if mem else "unknown",
        "kernel": platform.release(),
        "rustc": rustc,
        "wrk": wrk,
    }


def render(results_dir, out):
    rows, steps = [], []
    with open(os.path.join(results_dir, "results.tsv")) as handle:
        for line in handle:
            if line.strip():
                label, path, idle, peak, role = line.rstrip("\n").split("\t")
                if role == "extra":
                    steps.append(("extra", path))
                else:
                    rows.append((label, parse_wrk(path), idle, peak, role))
                    steps.append(("wrk", rows[-1]))
    limit = next((r for _, r, _, _, role in rows if role == "limit"), None)
    limit_rps = limit["rps"] if limit else None

    table = ["| scenario | requests/s | p50 | p99 | errors | server RSS (idle → peak) | vs limit |",
             "|---|---:|---:|---:|---|---|---:|"]
    notes = []
    for kind, step in steps:
        if kind == "extra":
            if os.path.exists(step):
                with open(step) as handle:
                    for line in handle:
                        line = line.rstrip("\n")
                        if line.startswith("|"):
                            table.append(line)
                        elif line.strip():
                            notes.append(line)
            continue
        label, result, idle, peak, role = step
        if role == "limit":
            ratio = "100 %"
        elif role == "storm" or not limit_rps or result["rps"] is None:
            ratio = "—"
        else:
            share = 100 * result["rps"] / limit_rps
            ratio = "%.1f %%" % share if share < 10 else "%.0f %%" % share
        table.append("| %s | %s | %s | %s | %s | %s → %s | %s |" % (
            label, fmt_rps(result["rps"]), fmt_ms(result["p50"]), fmt_ms(result["p99"]),
            fmt_errors(result), fmt_mib(idle), fmt_mib(peak), ratio))

    # Scenario 1's p99 without and with the login storm, per database.
    for label, result, _, _, role in rows:
        if role == "under-storm":
            backend = label.split(" · ")[0]
            quiet = next((r for l, r, _, _, ro in rows
                          if ro == "list" and l.split(" · ")[0] == backend), None)
            if quiet and quiet["p99"] and result["p99"]:
                notes.append("- %s: list p99 %s without the login storm, %s during it (×%.1f); "
                             "requests/s %s → %s." % (
                                 backend, fmt_ms(quiet["p99"]), fmt_ms(result["p99"]),
                                 result["p99"] / quiet["p99"], fmt_rps(quiet["rps"]), fmt_rps(result["rps"])))

    info = machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    document = "\n".join([
        "# Benchmarks",
        "",
        "Produced by `make bench` (`bench/run.sh`) on %s." % now,
        "",
        "- machine: %s cores (`nproc`), %s, %s RAM, kernel %s" % (
            info["nproc"], info["cpu"], info["memory"], info["kernel"]),
        "- build: `cargo build --release` (%s); load generator %s on the same machine" % (info["rustc"], info["wrk"]),
        "- load: wrk, 2 threads, 32 connections, 3 s warm-up then 10 s measured, `--latency`;"
        " a user with 100 missions of 3 plan steps each; throttling off; `RUST_LOG=warn`",
        "- **the limit** is `crates/autodocs-http/examples/static_page.rs`: a bare actix-web server"
        " answering the same page of 20 missions from memory (no auth, no database);"
        " *vs limit* is each scenario's requests/s as a share of it",
        "- results vary by ±20% between runs (the load generator shares the CPUs with the server):"
        " the ratios matter, not the absolute numbers",
        "",
    ] + table + [""] + (["## Notes", ""] + notes + [""] if notes else []))
    with open(out, "w") as handle:
        handle.write(document)
    print(document)


def main(argv):
    if len(argv) == 3 and argv[1] == "parse":
        print(json.dumps(parse_wrk(argv[2])))
    elif len(argv) == 4 and argv[1] == "render":
        render(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
