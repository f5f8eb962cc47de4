#!/usr/bin/env python3
"""WebSocket fan-out benchmark for bench/run.sh (needs `websocket-client`).

Opens WS_SOCKETS (default 2000, at most 10,000 and what `ulimit -n` allows)
idle sockets on /ws/events/ for one user, in a child process that keeps
reading them (answering pings, like a browser tab would), plus WS_LISTENERS
(default 4) listening sockets here. Then drives WS_UPDATES (default 200)
mission updates (PATCH /api/missions/{id}/ with a new title), one after the
other: each PATCH waits until every listening socket got the frame with the
new title (5 s at most). Reports the delivery latency p50/p99 (PATCH sent →
frame; most frames arrive before the PATCH response, so response → frame is
reported too, in the note) and the server RSS per socket ((RSS with sockets −
RSS before) / N).

Environment (set by run.sh): BENCH_BASE_URL, BENCH_USERNAME, BENCH_PASSWORD,
BENCH_MISSION_ID, BENCH_SERVER_PID, BENCH_LABEL. Prints Markdown: one row
for the main table and a note.
"""

import http.client
import json
import multiprocessing
import os
import resource
import selectors
import sys
import threading
import time
import urllib.parse

import websocket  # websocket-client

BASE = os.environ["BENCH_BASE_URL"]
USERNAME = os.environ["BENCH_USERNAME"]
PASSWORD = os.environ["BENCH_PASSWORD"]
MISSION_ID = int(os.environ["BENCH_MISSION_ID"])
SERVER_PID = os.environ.get("BENCH_SERVER_PID")
LABEL = os.environ.get("BENCH_LABEL", "server")
UPDATES = int(os.environ.get("WS_UPDATES", "200"))
LISTENERS = int(os.environ.get("WS_LISTENERS", "4"))
DELIVERY_TIMEOUT = 5.0


def log(message):
    print("    ws: " + message, file=sys.stderr, flush=True)


def socket_budget():
    wanted = int(os.environ.get("WS_SOCKETS", "2000"))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = soft - 64 - LISTENERS if soft != resource.RLIM_INFINITY else wanted
    count = max(1, min(wanted, 10_000, allowed))
    if count < wanted:
        log("only %d sockets: ulimit -n is %d" % (count, soft))
    return count


def status_kb(key):
    if not SERVER_PID:
        return 0
    try:
        with open("/proc/%s/status" % SERVER_PID) as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks():
    try:
        with open("/proc/%s/stat" % SERVER_PID) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, TypeError):
        return 0


def wait_idle(limit=60.0):
    """Until the server burns < 5% CPU over 0.5 s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_ticks()
        time.sleep(0.5)
        if cpu_ticks() - before <= 2:
            return


class Api:
    """A keep-alive HTTP/1.1 connection to the API."""

    def __init__(self, base):
        url = urllib.parse.urlsplit(base)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.token = None

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        payload = json.dumps(body) if body is not None else None
        try:
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
        except (ConnectionError, http.client.HTTPException):
            # The server closed the idle keep-alive connection: reconnect once.
            self.connection.close()
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
        raw = response.read()
        if response.status >= 300:
            raise RuntimeError("%s %s: HTTP %d %r" % (method, path, response.status, raw[:300]))
        return json.loads(raw) if raw else None

    def login(self):
        self.token = self.call("POST", "/api/auth/login/", {"username": USERNAME, "password": PASSWORD})["access"]
        return self.token


def ws_url(token):
    url = urllib.parse.urlsplit(BASE)
    return "ws://%s/ws/events/?token=%s" % (url.netloc, urllib.parse.quote(token))


def idle_sockets(url, count, pipe):
    """Child process: opens `count` sockets, reports, then drains them
    (counting frames, answering pings) until told to stop."""
    opened, failures, started = [], 0, time.monotonic()
    for _ in range(count):
        try:
            opened.append(websocket.create_connection(url, timeout=30, skip_utf8_validation=True))
        except Exception as error:  # noqa: BLE001 - counted and reported
            failures += 1
            if failures <= 3:
                log("socket failed to open: %r" % (error,))
    pipe.send(("ready", len(opened), failures, time.monotonic() - started))

    selector = selectors.DefaultSelector()
    buffers = {}
    for ws in opened:
        sock = ws.sock
        sock.setblocking(False)
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)
    selector.register(pipe, selectors.EVENT_READ)
    frames = dropped = pings = 0
    running = True
    while running:
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is pipe:
                pipe.recv()
                running = False
                continue
            sock = key.fileobj
            try:
                chunk = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                dropped += 1
                selector.unregister(sock)
                continue
            buffer = buffers[sock]
            buffer += chunk
            offset = 0
            while len(buffer) - offset >= 2:
                opcode, length, header = buffer[offset] & 0x0F, buffer[offset + 1] & 0x7F, 2
                if length == 126:
                    if len(buffer) - offset < 4:
                        break
                    length, header = int.from_bytes(buffer[offset + 2:offset + 4], "big"), 4
                elif length == 127:
                    if len(buffer) - offset < 10:
                        break
                    length, header = int.from_bytes(buffer[offset + 2:offset + 10], "big"), 10
                if len(buffer) - offset < header + length:
                    break
                if opcode in (0x1, 0x2):
                    frames += 1
                elif opcode == 0x9:  # ping: a masked pong with the same (short) payload
                    pings += 1
                    payload = bytes(buffer[offset + header:offset + header + length])
                    mask = os.urandom(4)
                    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                    try:
                        sock.send(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
                    except OSError:
                        pass
                elif opcode == 0x8:  # close
                    dropped += 1
                offset += header + length
            del buffer[:offset]
    pipe.send(("stats", frames, dropped, pings))
    for ws in opened:
        try:
            ws.sock.setblocking(True)
            ws.close(timeout=0.1)
        except Exception:  # noqa: BLE001 - closing anyway
            pass


class Listener(threading.Thread):
    """A listening socket: records when each mission title arrives."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.ws = websocket.create_connection(url, timeout=None, skip_utf8_validation=True)
        self.arrivals = {}
        self.frames = 0
        self.changed = threading.Condition()
        self.closed = False

    def run(self):
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=False)
                now = time.perf_counter()
                if opcode != websocket.ABNF.OPCODE_TEXT:
                    continue
                self.frames += 1
                try:
                    frame = json.loads(data)
                except ValueError:
                    continue
                payload = frame.get("data") or {}
                if frame.get("event") == "mission.updated" and payload.get("id") == MISSION_ID:
                    with self.changed:
                        self.arrivals[payload.get("title")] = now
                        self.changed.notify_all()
        except Exception:  # noqa: BLE001 - socket closed
            with self.changed:
                self.closed = True
                self.changed.notify_all()

    def wait_for(self, title, deadline):
        with self.changed:
            while title not in self.arrivals and not self.closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)
            return self.arrivals.get(title)


def percentile(values, pct):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(pct / 100 * len(ordered) + 0.5)) - 1))]


def fmt_ms(seconds):
    if seconds is None:
        return "n/a"
    value = seconds * 1000
    return "%.0f ms" % value if value >= 10 else ("%.1f ms" % value if value >= 1 else "%.2f ms" % value)


def main():
    count = socket_budget()
    api = Api(BASE)
    token = api.login()
    url = ws_url(token)

    wait_idle()
    rss_before = status_kb("VmRSS")
    log("opening %d idle sockets" % count)
    parent_end, child_end = multiprocessing.Pipe()
    child = multiprocessing.Process(target=idle_sockets, args=(url, count, child_end), daemon=True)
    child.start()
    _, opened, failures, open_seconds = parent_end.recv()
    listeners = [Listener(url) for _ in range(LISTENERS)]
    for listener in listeners:
        listener.start()
    total = opened + len(listeners)
    time.sleep(1.0)
    wait_idle()
    rss_with = status_kb("VmRSS")
    per_socket_kib = (rss_with - rss_before) / total if total else 0
    log("%d sockets open (%d failed) in %.1f s; RSS %.1f → %.1f MiB" % (
        total, failures, open_seconds, rss_before / 1024, rss_with / 1024))

    latencies, after_response, early, missed, rss_peak = [], [], 0, 0, rss_with
    nonce = int(time.time())
    frames_before = listeners[0].frames if listeners else 0
    started = time.perf_counter()
    for number in range(1, UPDATES + 1):
        title = "Retrieve Tax Documents (ws %d #%d)" % (nonce, number)
        sent = time.perf_counter()
        try:
            api.call("PATCH", "/api/missions/%d/" % MISSION_ID, {"title": title})
        except RuntimeError as error:
            if "401" not in str(error):
                raise
            api.login()  # the access token expired mid-run
            api.call("PATCH", "/api/missions/%d/" % MISSION_ID, {"title": title})
        answered = time.perf_counter()
        deadline = answered + DELIVERY_TIMEOUT
        for listener in listeners:
            arrived = listener.wait_for(title, deadline)
            if arrived is None:
                missed += 1
            else:
                early += arrived < answered
                latencies.append(arrived - sent)
                after_response.append(max(0.0, arrived - answered))
        if number % 20 == 0:
            rss_peak = max(rss_peak, status_kb("VmRSS"))
    elapsed = time.perf_counter() - started
    rss_peak = max(rss_peak, status_kb("VmRSS"))

    time.sleep(1.0)  # let the last frames reach the idle sockets
    parent_end.send("stop")
    _, frames, dropped, pings = parent_end.recv()
    child.join(timeout=30)
    for listener in listeners:
        try:
            listener.ws.close(timeout=0.1)
        except Exception:  # noqa: BLE001
            pass
    # Frames per update each socket should have seen (activity + mission events).
    expected = opened * (listeners[0].frames - frames_before) if listeners else None

    errors = []
    if failures:
        errors.append("%d failed to open" % failures)
    if dropped:
        errors.append("%d dropped" % dropped)
    if missed:
        errors.append("%d events missed" % missed)
    print("| %s · WebSocket: %d updates fanned out to %s sockets | %.1f | %s | %s | %s | %.1f → %.1f MiB | — |" % (
        LABEL, UPDATES, "{:,}".format(total), UPDATES / elapsed,
        fmt_ms(percentile(latencies, 50)), fmt_ms(percentile(latencies, 99)),
        ", ".join(errors) or "0", rss_before / 1024, rss_peak / 1024))
    print("- %s · WebSocket: %s sockets on `/ws/events/` for one user (%s idle, read by a separate "
          "process, + %d listening) opened in %.1f s; server RSS %.1f → %.1f MiB = **%.1f KiB per socket**. "
          "Updates are sequential PATCHes, each waiting for its frame on the listening sockets "
          "(requests/s = updates/s); latency = PATCH sent → `mission.updated` frame on a listening socket "
          "(p50 %s, p99 %s, max %s). Measured from the PATCH *response* instead: p50 %s, p99 %s "
          "(%d of %d frames beat the response, counted as 0). Idle sockets read %s frames%s."
          % (LABEL, "{:,}".format(total), "{:,}".format(opened), len(listeners), open_seconds,
             rss_before / 1024, rss_with / 1024, per_socket_kib,
             fmt_ms(percentile(latencies, 50)), fmt_ms(percentile(latencies, 99)),
             fmt_ms(max(latencies) if latencies else None),
             fmt_ms(percentile(after_response, 50)), fmt_ms(percentile(after_response, 99)), early, len(latencies),
             "{:,}".format(frames), " of ~{:,} expected".format(expected) if expected else ""))


if __name__ == "__main__":
    main()
