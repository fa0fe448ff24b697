"""results/provenance/{config.yaml,versions.csv}: the resolved config and the software versions."""
import platform

import pandas as pd
import yaml

from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench.io import write_text, write_with  # noqa: E402
from aenbench.provenance import git_commit, package_version  # noqa: E402

smk = snakemake  # noqa: F821
write_text(
    smk.output.config,
    "# the config this workflow ran with, schema defaults filled in\n"
    + yaml.safe_dump(dict(smk.params.config), sort_keys=False, allow_unicode=True),
)

packages = ["aenbench", "sae-lens", "transformer-lens", "torch", "snakemake", "numpy", "pandas",
            "scipy", "safetensors", "matplotlib", "seaborn", "jsonschema", "pyyaml"]
rows = [{"what": "environment", "name": p, "version": package_version(p)} for p in packages]
rows += [{"what": "environment", "name": "python", "version": platform.python_version()},
         {"what": "environment", "name": "aenbench git commit", "version": git_commit()}]
lb = pd.read_csv(smk.input.leaderboard)
ours = lb[lb["source"] == "ours"]
for column, label in [("sae_lens_version", "sae-lens"), ("torch_version", "torch"), ("git_commit", "aenbench git commit")]:
    if column in ours:
        for value, n in ours[column].astype(str).value_counts().sort_index().items():
            rows.append({"what": f"leaderboard rows ({n})", "name": label, "version": value})
write_with(smk.output.versions, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))
