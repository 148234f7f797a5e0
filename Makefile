# filesearch-ops: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv lint test test-stack test-unit test-integration test-e2e test-molecule model-check \
        test-proof test-fuzz test-chaos-short chaos demo bench sandbox-up sandbox-down sandbox-status clean \
        collection

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv with the pinned control-node toolchain

$(STAMP): requirements.txt constraints.txt files/worker/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e 'files/worker[all,redis]'
	touch $@

sandbox-up: venv ## Start the local stack (LocalStack, osmem-server, nspawn hosts) and its AWS resources
	sandbox/ctl up

sandbox-down: ## Stop the local stack; leaves no process, mount or veth behind
	sandbox/ctl down

sandbox-status: ## Show what of the local stack is running
	sandbox/ctl status

lint: venv ## ansible-lint (production), yamllint, ruff, mypy --strict
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-unit: venv ## Fast unit tests (moto in-process, no local stack)
	$(BIN)/pytest tests/unit

model-check: venv ## Model-check the settlement protocol with spin (safety, liveness, broken orderings)
	@if ! command -v spin >/dev/null || ! command -v gcc >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spin gcc; \
	  else echo "model-check: spin or gcc missing (apt-get install spin gcc): the model tests skip"; fi; \
	fi
	$(BIN)/pytest tests/proof/test_settlement_model.py -v

test-proof: venv ## 2,000 generated fault schedules over the settlement engine (hypothesis, fixed seed)
	$(BIN)/pytest tests/proof/test_settlement_schedules.py

test-fuzz: venv ## 20,000 generated fault schedules over the settlement engine (hypothesis)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/proof/test_settlement_schedules.py

test-integration: venv ## Tests against the real local stack
	$(BIN)/pytest --durations=25 tests/integration

test-e2e: venv ## End-to-end deploys on the nspawn test hosts
	$(BIN)/pytest --durations=5 tests/e2e

# The chaos soak (tests/chaos/soak.py) makes its own queues, bucket, index, fault proxy
# (own SANDBOX_DIR, free ports) and test host: chaos1 on 127.0.0.1:2250, the short one
# chaos-short on :2251; never worker1/2 or molecule's 2300-2399, so it runs alongside
# molecule. The seed is random unless CHAOS_SEED is given, and always printed.
CHAOS_SECONDS ?= 600
CHAOS_MESSAGES ?= 3000

chaos: venv ## Seeded chaos soak on the local stack (CHAOS_SECONDS, CHAOS_MESSAGES, CHAOS_SEED)
	sandbox/with-sandbox $(BIN)/python tests/chaos/soak.py --seconds $(CHAOS_SECONDS) \
	  --messages $(CHAOS_MESSAGES) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

test-chaos-short: venv ## The chaos soak, short: 2 min of faults, 300 messages (make test runs it)
	$(BIN)/python tests/chaos/soak.py --seconds 120 --messages 300 --host chaos-short \
	  --ssh-port 2251 $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

test-molecule: venv ## Molecule scenario of every role (throwaway nspawn hosts; needs the sandbox)
	@set -e; for scenario in roles/*/molecule/default; do \
	  role=$${scenario%/molecule/default}; echo "== molecule test: $$role"; \
	  (cd $$role && molecule test); \
	done

collection: venv ## Build the collection filesearch_ops.filesearch: build/collection/*.tar.gz (docs/collection.md)
	$(BIN)/python scripts/build_collection.py

demo: venv ## Local stack up, deploy to two hosts, index sample files, roll back (scripts/demo.sh)
	scripts/demo.sh

# The sandbox is brought up for the tests that need it and, if it was not
# running before, brought down afterwards, also on failure (sandbox/README.md).
test: lint test-unit test-proof model-check ## Everything CI runs (installs what it needs)
	sandbox/with-sandbox $(MAKE) --no-print-directory test-stack

# Integration + e2e (worker1/worker2) + the short chaos soak (chaos-short) and
# molecule (its own throwaway hosts, its own queue names) use different hosts and
# resources, and both spend much of their time waiting on workers and hosts:
# molecule runs alongside, its output kept in .test-logs/molecule.log and printed
# when both are done.
test-stack: venv ## Integration, e2e, the short chaos soak and molecule on a running sandbox (molecule alongside)
	@mkdir -p .test-logs; rm -f .test-logs/molecule.rc
	@setsid sh -c '$(MAKE) --no-print-directory test-molecule > .test-logs/molecule.log 2>&1; \
	   echo $$? > .test-logs/molecule.rc' & molecule=$$!; \
	 trap 'kill -TERM -- -$$molecule 2>/dev/null; exit 143' INT TERM; \
	 rc=0; $(MAKE) --no-print-directory test-integration test-e2e test-chaos-short || rc=$$?; \
	 wait $$molecule; mrc=$$(cat .test-logs/molecule.rc 2>/dev/null || echo 1); \
	 echo "== molecule (ran alongside; .test-logs/molecule.log)"; cat .test-logs/molecule.log; \
	 echo "== integration + e2e + chaos (short): exit $$rc; molecule: exit $$mrc"; \
	 [ $$rc -eq 0 ] && [ $$mrc -eq 0 ]

bench: venv ## Benchmarks; figures are appended to docs/benchmarks.md (BENCH_LATENCY=aws: AWS latency model)
	$(BIN)/python bench/run_all.py $(if $(BENCH_LATENCY),--latency $(BENCH_LATENCY))

clean: sandbox-down ## Remove the venv and the sandbox state
	rm -rf $(VENV) .sandbox
