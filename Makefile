# Both main targets create .venv themselves; nothing needs to be installed by hand.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-workspace
# 200 accounts give the outcome models enough renewals and churns to learn from and to backtest
# (with 60, the churn backtest rests on 6 outcomes and the health score is used); about a minute.
DEMO_ACCOUNTS ?= 200

.PHONY: demo test bench lint clean browser

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/accountlens demo --dir $(DEMO_DIR) --accounts $(DEMO_ACCOUNTS) --serve

# Browser tests drive Debian's chromium (never a downloaded browser); install it when missing.
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: /usr/bin/chromium missing and not installable here; browser tests will be skipped"; }

# Two worker processes (pytest-xdist), each taking a whole test file at a time (module fixtures
# build their workspaces once): the Spark suite runs beside the others, the files with Spark
# tests in one worker and one JVM (tests/conftest.py's scheduler; about 5 minutes). In one
# process the suite took 15 minutes on 2 cores, with a core often idle; a third worker did not
# help: each test ran 30-55% slower (16:12 against 15:17 with two, session 16). The
# longest files are named first so that they start first (no long tail at the end).
LONG_TESTS := tests/test_spark_engine.py tests/test_spark_analyses.py tests/test_api_fuzz.py tests/test_web_pages.py \
	tests/test_governance_access.py tests/test_bench_smoke.py tests/test_crash.py \
	tests/test_web_attribution_experiments.py
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=30 \
		$(LONG_TESTS) tests

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The layer contracts (SPEC §2) and mypy's settings are in pyproject.toml.
lint: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt ruff import-linter mypy pandas-stubs scipy-stubs
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench-data
