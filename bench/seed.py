#!/usr/bin/env python3
"""Seeds a running AutoDocs server for the benchmarks, through the public API.

    seed.py seed  BASE_URL OUT_JSON   register a user, create 100 missions of
                                      3 plan steps; writes {"username",
                                      "password", "token", "mission_id",
                                      "page_bytes"} to OUT_JSON
    seed.py login BASE_URL USER PASS  prints a fresh access token

Standard library only (urllib). The user gets the server's default password
hashing (1,000,000 PBKDF2 iterations), so registering and logging in take a
noticeable fraction of a second each.
"""

import json
import sys
import time
import urllib.error
import urllib.request

MISSIONS = 100
STEPS = 3
# Kept in step with crates/autodocs-http/examples/static_page.rs.
DESCRIPTION = "Collect the 2025 returns, W-2 forms and bank statements for the annual filing."


def call(base, method, path, body=None, token=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None), len(raw)
    except urllib.error.HTTPError as error:
        raw = error.read()
        sys.exit(f"{method} {path}: HTTP {error.code}: {raw[:500]!r}")


def login(base, username, password):
    _, body, _ = call(base, "POST", "/api/auth/login/", {"username": username, "password": password})
    return body["access"]


def seed(base, out):
    username = "bench_%d" % (time.time() * 1000)
    password = "Correct-Horse-Battery-Staple-42"
    _, body, _ = call(
        base,
        "POST",
        "/api/auth/register/",
        {"username": username, "email": username + "@example.com", "password": password,
         "first_name": "Bench", "last_name": "Mark"},
    )
    token = body["access"]
    mission_id = None
    for number in range(1, MISSIONS + 1):
        mission = {
            "title": "Retrieve Tax Documents %03d" % number,
            "description": DESCRIPTION,
            "type": "document_retrieval",
            "plan_steps": [
                {"title": "Step %d of mission %d" % (step, number), "description": "Gather part %d." % step}
                for step in range(1, STEPS + 1)
            ],
        }
        status, created, _ = call(base, "POST", "/api/missions/", mission, token)
        assert status == 201, status
        assert created["steps_total"] == STEPS, created
        mission_id = mission_id or created["id"]
    _, page, page_bytes = call(base, "GET", "/api/missions/?page_size=20", token=token)
    assert page["count"] == MISSIONS, page["count"]
    with open(out, "w") as handle:
        json.dump({"username": username, "password": password, "token": token,
                   "mission_id": mission_id, "page_bytes": page_bytes}, handle)


def main(argv):
    if len(argv) == 4 and argv[1] == "seed":
        seed(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "login":
        print(login(argv[2], argv[3], argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
