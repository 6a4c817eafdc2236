# The one list of commands (`make help` lists them). `make run` and `make test` are the README's two commands:
# each creates the environment it needs first (from the committed lock file).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The Pythons `make test` passes on (pyproject's requires-python and CI's matrix say the
# same; tests/test_workflows.py keeps the three in step).
SUPPORTED_PYTHONS := 3.11 3.12 3.13
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
# dvc.yaml says `python`: make it the environment's.
export PATH := $(abspath $(BIN)):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
# `make ui` and the tests' servers run no MLflow job runner (GenAI trace and scorer jobs,
# unused here): three fewer processes and 1.5 GB less per server.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false
export DO_NOT_TRACK := true
export PYTHONUNBUFFERED := 1

.PHONY: help env run repro docs docs-update screenshots push pull clean-tree test browser postgres podman test-fast lint typecheck check audit audit-deps lock suite ui gate promote rollback history smoke smoke-served serve bento bento-experiment containerize bench-serving bench-container bench-sql demo-db fetch-monitoring-data retrain start-retrain monitor experiment-report experiment-conclude monitor-demo metrics-diff clean

## help: every target with what it does (these `##` lines; the docs' make reference is made from them too)
help:
	@awk '/^## /{sub(/^## /, ""); print (more ? "    " : "") $$0; more = 1; next} {more = 0}' $(MAKEFILE_LIST)

## env: the .venv, from requirements.lock (every other target makes it first)
env: $(STAMP)

# Same versions on every machine: requirements.lock is resolved by `make lock`.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(None if v in "$(SUPPORTED_PYTHONS)".split() else f"$(PYTHON) is Python {v}; this project supports $(SUPPORTED_PYTHONS): run make PYTHON=python3.12 (say) instead")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
	# Bytecode now, once: where PYTHONDONTWRITEBYTECODE is set (CI runners, containers, this
	# workplace) every stage would otherwise recompile every library it imports.
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps -e .
	touch $@

## run: the whole DAG on the demo data (ingest, validate, split, train, evaluate, register, package)
run: env
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show --precision 4 metrics/test.json

## repro: the same as run
repro: run

## push / pull: the data and model files DVC tracks, to and from the DVC remote
## (default `../dvc-storage` beside this clone; docs/how-to/dvc-remote.md).
## push DVC_REMOTE_URL=s3://...: to that remote instead (this clone only), as CD does
push: env
	$(if $(filter s3://%,$(DVC_REMOTE_URL)),$(BIN)/uv pip install --quiet --python $(BIN)/python "dvc-s3>=3,<4")
	$(if $(DVC_REMOTE_URL),$(BIN)/dvc remote modify --local storage url "$(DVC_REMOTE_URL)")
	$(BIN)/dvc push

pull: env
	$(BIN)/dvc pull

## clean-tree: fail if anything committed changed (after `make run` in a fresh clone, nothing may),
## naming each changed file and by how much
clean-tree: env
	@$(BIN)/mlops clean-tree

## test [TEST_WORKERS=2]: the full test suite, end-to-end tests included, a test file per
## worker (module fixtures such as one `dvc repro` stay shared within a file); installs
## Chromium, PostgreSQL and podman first where missing (browser, postgres, podman)
TEST_WORKERS ?= 2
test: env browser postgres podman
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

## browser: a Chromium for the MLflow UI test: Debian's package, installed if missing and
## this user can (root with apt-get); otherwise that one test fails and says what to install
browser:
	@command -v chromium || command -v chromium-browser || command -v google-chrome || test -n "$$CHROMIUM" || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "no Chromium: the MLflow UI test will fail until one is installed (apt-get install chromium)"; fi

## postgres: PostgreSQL's server programs for the team-server test: Debian's package, installed
## if missing and this user can (root with apt-get); otherwise that one test fails and says what to install
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	  else echo "no PostgreSQL: the team-server test will fail until one is installed (apt-get install postgresql)"; fi

## podman: a container engine for the image and compose tests where no Docker engine runs:
## Debian's podman (with runc, debootstrap for a local base image, and the dnsname plugin
## by which compose services find each other), installed if missing and this user can
## (root with apt-get); otherwise those tests fail and say what to install
podman:
	@docker info >/dev/null 2>&1 || { command -v podman && command -v debootstrap && test -x /usr/lib/cni/dnsname; } >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PODMAN_PACKAGES) >/dev/null; \
	  else echo "no container engine: the image tests will fail until one runs (apt-get install $(PODMAN_PACKAGES))"; fi
PODMAN_PACKAGES := podman runc debootstrap uidmap golang-github-containernetworking-plugin-dnsname

## test-fast: the unit tests only (no `dvc repro`, no server), on TEST_WORKERS workers
test-fast: env
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not e2e"

## lint: ruff's lint rules (security rules included) and its format check
lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## typecheck: mypy on src/
typecheck: env
	$(BIN)/mypy

## check: lint, typecheck and test
check: lint typecheck test

## docs: the docs site into site/: generated blocks checked against their files, plots
## drawn from plots/, then `mkdocs build --strict` (a broken link or anchor fails)
# NO_MKDOCS_2_WARNING: Material prints a banner on its end of life (May 2027) and Zensical,
# its successor, which reads this mkdocs.yml; see CHANGELOG.md for why MkDocs for now.
docs: env
	$(BIN)/python docs/generate.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## docs-update: rewrite the docs' generated blocks (figures, params, CLI and make
## references) from the files that hold them; commit what changes
docs-update: env
	$(BIN)/python docs/generate.py

## screenshots: retake the docs' screenshots with the browser tests that open each page
## (they write into docs/images/screenshots/ instead of build/screenshots/)
screenshots: env browser
	MLOPS_SCREENSHOT_DIR=$(abspath docs/images/screenshots) $(BIN)/pytest -q tests/registry/test_mlflow_ui_e2e.py \
		"tests/serving/test_serving_e2e.py::test_monitor_demo_through_the_real_service_and_the_monitor_command"

## audit: offline security checks: no secret in the tracked files (detect-secrets, against
## .secrets.baseline), the deploy files pinned and unprivileged, model files allow-listed.
## CI adds audit-deps, a secret scan of the whole history and trivy config (ci.yml, audit job)
audit: env
	$(BIN)/pytest -q tests/test_audit.py tests/test_deploy.py tests/test_model_files.py

## audit-deps: known vulnerabilities in the locked libraries (pip-audit; asks PyPI's advisory
## API, so it needs that host: --strict fails rather than pass what it could not check)
audit-deps: env
	$(BIN)/pip-audit --requirement requirements.lock --disable-pip --strict --progress-spinner off

## lock: re-resolve dependencies after editing pyproject.toml
lock:
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes -o requirements.lock

## demo-db [URL=...]: the demo table into a database (default sqlite:///data/demo.sqlite;
## the password, if any, from $MLOPS_DB_PASSWORD), to train from it (docs/how-to/database.md)
demo-db: env
	$(BIN)/mlops demo-db $(if $(URL),--url "$(URL)")

## suite: rebuild the validation suite from the current raw table (trust it first!)
suite: env
	$(BIN)/mlops suite --table data/raw/table.parquet

## gate: print the validation gate's report; fails (exit 1) if the gate failed
gate: env
	$(BIN)/mlops gate

## promote VERSION=3|challenger [REASON=...] [FORCE=1]: point the champion alias at a version
promote: env
	$(BIN)/mlops promote "$(or $(VERSION),challenger)" $(if $(REASON),--reason "$(REASON)") $(if $(FORCE),--force)

## rollback [TO=2] [REASON=...]: champion back to the previous champion (or to version TO)
rollback: env
	$(BIN)/mlops rollback $(if $(TO),--to "$(TO)") $(if $(REASON),--reason "$(REASON)")

## history: every champion move, read back from the registry
history: env
	$(BIN)/mlops history

## smoke: load models:/<name>@champion and score its logged input example
smoke: env
	$(BIN)/mlops smoke

## smoke-served: build the champion's bento, serve it, check it answers as the registry model
smoke-served: env
	$(BIN)/mlops smoke --served

## serve [VERSION=3] [PORT=3000]: serve the champion (or a version) at http://127.0.0.1:3000
serve: env
	$(BIN)/mlops serve $(if $(VERSION),--version "$(VERSION)") $(if $(PORT),--port "$(PORT)")

## bento [VERSION=3]: build a bento of the champion (or a version) in the BentoML store
bento: env
	$(BIN)/mlops package $(if $(VERSION),--version "$(VERSION)")

## bento-experiment CHALLENGER=4: a bento of the champion with a challenger beside it, in
## the mode serve.experiment.mode sets (shadow or split); serve it with `bentoml serve TAG`
bento-experiment: env
	$(BIN)/mlops package --challenger "$(CHALLENGER)"

## containerize [VERSION=champion | BENTO=tag] [LOCAL_BASE=1]: OCI image of this clone's bento
## (the one models/bento.json names), a registry version's, or a bento in the store by tag (an
## experiment's, from `make bento-experiment`); with Docker, or podman where no Docker
## engine runs (CONTAINER_ENGINE=docker|podman chooses). LOCAL_BASE=1: no registry reachable,
## so build the base image from Debian's packages (root, debootstrap)
containerize: env
	$(BIN)/mlops containerize $(if $(VERSION),--version "$(VERSION)") $(if $(BENTO),--bento "$(BENTO)") $(if $(LOCAL_BASE),--local-base)

## fetch-monitoring-data: run $PREDICTIONS_SYNC (and $LABELS_SYNC) to copy the log from your store
fetch-monitoring-data:
	@test -n "$$PREDICTIONS_SYNC" || { echo "set PREDICTIONS_SYNC to a command that copies the prediction log into predictions/"; exit 2; }
	mkdir -p predictions build
	bash -c "$$PREDICTIONS_SYNC"
	$(if $(LABELS_SYNC),bash -c "$$LABELS_SYNC")

## retrain: what monitor.retrain_when starts (retrain.yml): $TRAINING_DATA_SYNC, if set, refreshes
## the source with the newest rows; the DAG registers the new version as challenger; the gate
## must pass (exit 1 ends it); then the bento of a shadow experiment, the new version beside
## the champion. Nothing is promoted: the experiment's verdict does that (experiment.yml)
retrain: env
	$(if $(TRAINING_DATA_SYNC),bash -c "$$TRAINING_DATA_SYNC")
	$(BIN)/dvc repro
	$(BIN)/mlops gate
	$(BIN)/mlops package --challenger challenger --mode shadow

## start-retrain [REF=main] [REASON=...]: start retrain.yml on GitHub (the scheduled monitor
## does, when monitor.retrain_when holds); needs the gh CLI and $GH_TOKEN
start-retrain:
	gh workflow run retrain.yml --ref "$(or $(REF),main)" -f reason="$(REASON)"

## monitor [LOG="glob ..."] [LABELS=file] [METRICS_URL=http://...]: check the prediction log; exit 3 on an alert
monitor: env
	$(BIN)/mlops monitor $(if $(LOG),--log $(LOG)) $(if $(or $(LABELS),$(LABELS_SYNC)),--labels "$(or $(LABELS),build/labels.csv)") $(if $(METRICS_URL),--metrics-url "$(METRICS_URL)")

## experiment-report [LABELS=build/labels.csv] [LOG="glob ..."]: the live experiment's verdict
## on the labels that have matured (build/experiment/experiment.json)
experiment-report: env
	$(BIN)/mlops experiment report --labels "$(or $(LABELS),build/labels.csv)" $(if $(LOG),--log $(LOG))

## experiment-conclude: act on that verdict: better promotes the challenger, worse ends the
## experiment with the champion kept, undecided moves nothing (each move: `make history`)
experiment-conclude: env
	$(BIN)/mlops experiment conclude

## monitor-demo [SCENARIO=covariate]: ten days through the served champion, drifted from day 7, then the monitor (build/monitor-demo/)
monitor-demo: env
	$(BIN)/mlops monitor-demo $(if $(SCENARIO),--scenario "$(SCENARIO)")

## bench-serving: this service vs `mlflow models serve` vs in-process (writes benchmarks/results/serving.json)
bench-serving: env
	$(BIN)/python benchmarks/serving.py

## bench-container [LOCAL_BASE=1]: this clone's image: build time, size, cold start against bentoml serve (benchmarks/results/container.json)
bench-container: env
	$(BIN)/python benchmarks/container.py $(if $(LOCAL_BASE),--local-base)

## bench-sql: ingest from PostgreSQL vs pandas.read_sql at 1M and 4M rows (benchmarks/results/sql_source.json)
bench-sql: env postgres
	$(BIN)/python benchmarks/sql_source.py

## metrics-diff BASE=origin/main: test metrics against another revision, as Markdown
metrics-diff: env
	@echo "## Metrics against $(or $(BASE),HEAD)"
	@$(BIN)/dvc metrics diff $(BASE) --md --precision 4

## ui: the MLflow UI on the local store, http://127.0.0.1:5000
ui: env
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

## clean: delete what the pipeline, the tools and the docs made here, the local MLflow store
## included (not .venv)
clean:
	rm -rf data/raw data/split models metrics plots reports mlflow.db mlruns predictions build site
