# The two set-up commands of the README. Each creates .venv when it is missing and is safe to rerun.
CONFIG ?= configs/default.yaml

.PHONY: figures test install

install:
	bash scripts/install.sh

figures: install
	.venv/bin/snakemake figures/all --cores all --configfile $(CONFIG)

test: install
	.venv/bin/python -m pytest
