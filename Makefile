# The two commands in README.md: `make run` and `make test`. Both set up what they need first.
PY := .venv/bin/python
DEMO ?= data/demo

.PHONY: setup run test demo bench

setup:
	scripts/setup.sh

run: setup
	scripts/run.sh "$(DEMO)"

test:
	scripts/setup.sh --with-browser
	LISTING_AUDIT_REQUIRE_BROWSER=1 LISTING_AUDIT_REQUIRE_POSTGRES=1 LISTING_AUDIT_REQUIRE_RAY=1 $(PY) -m pytest

demo: setup
	$(PY) -m cli.main demo --out "$(DEMO)"

bench: setup
	$(PY) bench/scan.py
	$(PY) bench/neardup.py
