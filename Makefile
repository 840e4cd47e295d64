# The two commands of the README. Each does all the set-up it needs first.
.PHONY: up test setup lint

up: setup
	.venv/bin/beckon up

test: setup lint
	.venv/bin/pytest

setup:
	@deploy/setup.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache
