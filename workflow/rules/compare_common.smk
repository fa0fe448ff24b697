# Helpers of compare.smk (the variants of the config's `variants:`); functions only, rules live
# in compare.smk.
VARIANTS = config.get("variants") or {}
DEFAULT_REPORT_METRICS = _light_module("metric_registry").column_list("compare_report")


def variant_plugin(name):
    """The variant's plugin file: as written when it exists from the working directory, else
    relative to the aenbench checkout (so examples/... works from any working directory)."""
    plugin = VARIANTS[name].get("plugin")
    if not plugin:
        return None
    path = Path(plugin)
    if path.is_absolute() or path.exists():
        return str(path)
    return str(Path(workflow.basedir) / path)


def variant_compare(name):
    """The variant's `compare:` block with its defaults filled in."""
    spec = dict(VARIANTS[name].get("compare") or {})
    spec.setdefault("track", "synthetic")
    spec.setdefault("families", list(SYN_FAMILIES))
    spec.setdefault("datasets", list(SYN_DATASETS))
    spec.setdefault("metrics", list(DEFAULT_REPORT_METRICS))
    spec.setdefault("l0_tolerance", 0.25)
    return spec


def variant_runs(name):
    """(run folder name, swept values) for every SAE of variant ``name``."""
    table = family_table(VARIANTS[name], SYN["train"]["seeds"])
    space = Paramspace(table, filename_params="*")
    return list(zip(space.instance_patterns, space.dataframe.to_dict("records")))


def variant_definition(name, keys=("architecture", "fixed", "grid", "plugin")):
    """What training needs: architecture, fixed values, grid, plugin (not the comparison block,
    so that editing the description or the compared families retrains nothing)."""
    spec = VARIANTS[name]
    return {k: spec[k] for k in keys if k in spec}


def _check_variants():
    problems = []
    for name, spec in VARIANTS.items():
        if name in config["families"]:
            problems.append(f"variants.{name}: the name is already a family; pick another name")
        cmp = variant_compare(name)
        for family in cmp["families"]:
            if family not in config["families"]:
                problems.append(
                    f"variants.{name}.compare.families lists {family!r}, which is not defined under families"
                )
        for dataset in cmp["datasets"]:
            if dataset not in SYN_DATASETS:
                problems.append(
                    f"variants.{name}.compare.datasets lists {dataset!r}; "
                    f"known datasets: {', '.join(SYN_DATASETS)}"
                )
        plugin = variant_plugin(name)
        if plugin and not Path(plugin).is_file():
            problems.append(
                f"variants.{name}.plugin = {spec['plugin']!r}: no such file "
                f"(looked in the working directory and in {workflow.basedir})"
            )
    if problems:
        raise WorkflowError("invalid config:\n  - " + "\n  - ".join(problems))


_check_variants()

# (dataset, variant) pairs the leaderboard and the reports need
VARIANT_DATASETS = [(d, v) for v in VARIANTS for d in variant_compare(v)["datasets"]]
VARIANT_RUN_DIRS = [f"results/synthetic/{d}/variants/{v}" for d, v in VARIANT_DATASETS]
VARIANT_BENCHMARKS = [f"benchmarks/synthetic/{d}/variant_{v}.tsv" for d, v in VARIANT_DATASETS]
COMPARE_ARTEFACTS = [
    path
    for v in VARIANTS
    for path in (
        f"results/compare/{v}.md",
        f"results/compare/{v}.csv",
        f"figures/compare/{v}_pareto.png",
    )
]
