# aenbench: every table and figure of arXiv 2605.05341 from one target.
#
#   snakemake figures/all --cores                                  # configs/default.yaml
#   snakemake figures/all --cores --configfile configs/smoke.yaml  # the test-sized run
#
# Stages live in workflow/rules/*.smk; the library they call is src/aenbench.
from snakemake.utils import min_version

min_version("9.0")

if not config:

    configfile: "configs/default.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/synthsae.smk"
include: "workflow/rules/llm.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/leaderboard.smk"
include: "workflow/rules/ablations.smk"
include: "workflow/rules/replication.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/figures.smk"


# the default target: `snakemake --cores all` and `snakemake --report report.html` use it
rule all:
    input:
        "figures/all",
    default_target: True
    localrule: True
