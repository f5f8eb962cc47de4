# AutoDocs — the two commands a newcomer needs are `make run` and `make test`.

CARGO ?= cargo
DATABASE_URL ?= sqlite://autodocs.sqlite3
# Where cargo puts what it builds: `target/`, or CARGO_TARGET_DIR, or what
# .cargo/config says; cargo itself is asked, so every setting is honoured.
TARGET_DIR := $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
ifeq ($(TARGET_DIR),)
TARGET_DIR := target
endif
RELEASE_BIN := $(TARGET_DIR)/release/autodocs
DEBUG_BIN := $(TARGET_DIR)/debug/autodocs
MOTO_VENV := $(TARGET_DIR)/moto-venv
MOTO_SERVER := $(MOTO_VENV)/bin/moto_server

.PHONY: run worker createsuperuser build release migrate test test-sqlite example browser contract lint fmt doc bench clean

## Build, migrate the SQLite file and serve on 127.0.0.1:8000.
run:
	$(CARGO) build --release -p autodocs
	DATABASE_URL=$(DATABASE_URL) $(RELEASE_BIN) migrate
	DATABASE_URL=$(DATABASE_URL) $(RELEASE_BIN) serve

## A job worker beside `make run`'s server, on the same database.
worker:
	$(CARGO) build --release -p autodocs
	DATABASE_URL=$(DATABASE_URL) $(RELEASE_BIN) worker

## A staff superuser for the admin: `make createsuperuser USERNAME=admin
## EMAIL=admin@example.com` (asks for the password, or reads AUTODOCS_PASSWORD).
USERNAME ?= admin
EMAIL ?= admin@example.com
createsuperuser:
	$(CARGO) build --release -p autodocs
	DATABASE_URL=$(DATABASE_URL) $(RELEASE_BIN) migrate
	DATABASE_URL=$(DATABASE_URL) $(RELEASE_BIN) createsuperuser --username '$(USERNAME)' --email '$(EMAIL)'

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p autodocs

migrate:
	DATABASE_URL=$(DATABASE_URL) $(CARGO) run -q -p autodocs -- migrate

## Every test: unit, repository and black-box. PostgreSQL variants run when
## TEST_DATABASE_URL points at a PostgreSQL server (see README).
## One invocation: unit, integration and doc tests share one build (a
## separate `--doc` run unifies dependency features differently and
## compiled ~100 dependencies again: four minutes of CI).
test: $(MOTO_SERVER)
	MOTO_SERVER=$(abspath $(MOTO_SERVER)) AUTODOCS_REQUIRE_S3=1 $(CARGO) test --workspace

## moto in server mode, the S3 API the storage tests run against (pinned in
## tests/s3/requirements.txt, installed once into the target directory).
$(MOTO_SERVER): tests/s3/requirements.txt
	python3 -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install -q -r tests/s3/requirements.txt
	touch $@

## The example service: runs examples/plan-runner/plan.json to completion on
## the in-memory adapters (exits non-zero unless the mission completed).
## Built as `make test` builds (the whole workspace, every target), so after
## it this compiles nothing: building one package alone would unify features
## differently and rebuild dependencies.
example:
	$(CARGO) build --workspace --all-targets
	$(TARGET_DIR)/debug/plan-runner examples/plan-runner/plan.json

## The OpenAPI document as clients consume it, against a live debug server:
## validator, generated TypeScript client (tsc --strict), docs page, schemathesis
## (see tests/contract/run.sh; needs python3, node 20+, npm, chromium).
## Built like `make test` builds (same packages and targets, so the same
## feature set): after it, this is a no-op instead of recompiling dependencies.
contract:
	$(CARGO) build --workspace --all-targets
	AUTODOCS_BIN=$(DEBUG_BIN) bash tests/contract/run.sh

## The staff admin driven in headless Chromium (tests/browser/run.sh):
## log in, search, change, act, CSRF and non-staff refusals; screenshots
## in target/browser/screenshots/. Reuses the debug build `make test` made.
browser:
	$(CARGO) build --workspace --all-targets
	AUTODOCS_BIN=$(DEBUG_BIN) bash tests/browser/run.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p autodocs-domain
	$(CARGO) publish --dry-run --allow-dirty -p autodocs-domain

fmt:
	$(CARGO) fmt --all

doc:
	$(CARGO) doc --no-deps --workspace

## Benchmarks against the release binary (see docs/benchmarks.md).
bench: release
	TARGET_DIR=$(TARGET_DIR) ./bench/run.sh

clean:
	$(CARGO) clean
