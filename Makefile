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

# The Spark suite (a JVM, about 4 minutes) runs in a second process beside the others, so the
# whole suite stays well under 15 minutes on 2 cores; its output follows theirs.
SPARK_TESTS := tests/test_spark_engine.py
test: $(STAMP) browser
	@$(BIN)/python -m pytest -q -p no:cacheprovider $(SPARK_TESTS) > .spark-tests.log 2>&1 & spark=$$!; \
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 --ignore=$(SPARK_TESTS); rest=$$?; \
	wait $$spark; sparked=$$?; echo "--- $(SPARK_TESTS) (run beside the others):"; \
	cat .spark-tests.log; rm -f .spark-tests.log; \
	[ $$rest -eq 0 ] && [ $$sparked -eq 0 ]

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
