# One venv for everything; every target sets it up first if needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TANSU := .tansu/tansu

.PHONY: system-deps setup demo demo-down test lint typecheck unit integration bench bench-mirror drills protos screenshots clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## system-deps: kcat, nftables and chromium for the tests (apt-get as root, else the exact command to run)
system-deps:
	@tools/system-deps

## demo: two regions, a mirror worker, a consumer group failing over exactly
demo: $(STAMP)
	$(PY) -m mirror.demo

## demo-down: stop the demo's topology
demo-down: $(STAMP)
	$(VENV)/bin/regionlink down --state-dir .regionlink-demo

$(TANSU): | $(STAMP)
	$(PY) tools/fetch_tansu.py .tansu

## test: lint, type-check, then every test (unit + integration with real clients, Tansu as a peer)
test: system-deps $(STAMP) $(TANSU) lint typecheck
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check broker mirror chaos tests bench tools
	$(VENV)/bin/ruff format --check broker mirror chaos tests bench tools

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: system-deps $(STAMP) $(TANSU)
	$(PY) -m pytest -q tests/integration

## bench: our broker vs Tansu, the mirror bench, RF=3 cost and leader failover, start-up with 1 GB of log, switchover/failover/failback times, then tracing on vs off (not tests)
bench: $(STAMP)
	$(PY) -m bench.broker_bench
	$(PY) -m bench.mirror_bench
	$(PY) -m bench.replication_bench
	$(PY) -m bench.startup_bench
	$(PY) -m bench.failover_bench
	$(PY) -m bench.tracing_bench

## drills: every drill of the library (chaos/drills/), each judged by the verifier; runs kept in .regionlink/drills
drills: $(STAMP)
	@failed=""; for drill in $$($(PY) -m mirror.cli drill list --json | $(PY) -c 'import json,sys; print(" ".join(d["name"] for d in json.load(sys.stdin)))'); do \
		echo "== drill $$drill"; $(PY) -m mirror.cli drill run $$drill --seed $${SEED:-0} || failed="$$failed $$drill"; done; \
		if [ -n "$$failed" ]; then echo "drills failed:$$failed"; exit 1; fi; echo "every drill passed"

## bench-mirror: mirror worker vs direct ingest and a naive consumer/producer loop, plus lag
bench-mirror: $(STAMP)
	$(PY) -m bench.mirror_bench

## screenshots: the dashboard's browser tests, saving their screenshots into docs/img/
screenshots: system-deps $(STAMP)
	REGIONLINK_SCREENSHOTS=docs/img $(PY) -m pytest -q tests/integration/test_dashboard.py

## protos: regenerate the gRPC modules from the .proto files (generated code kept in the repo)
protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. --pyi_out=. \
		mirror/control/control.proto broker/kraft/controller/controller.proto

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
