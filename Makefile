# The two commands of the README. Both set everything up on a fresh machine first.
SAMPLE ?= samples/digits_cnn.json
PYTEST_ARGS ?=

.PHONY: run test bench lint setup
setup:
	@scripts/bootstrap.sh

run: setup
	@scripts/qt-deps.sh
	.venv/bin/workbench gui $(SAMPLE)

test: setup
	QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -n auto $(PYTEST_ARGS)

bench: setup
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/run_all.py

lint: setup
	.venv/bin/ruff check workbench ui tests bench samples
