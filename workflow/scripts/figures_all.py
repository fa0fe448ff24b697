"""figures/all: a manifest of every artefact with its size and sha256."""
import hashlib
from pathlib import Path

from aenbench.io import write_text

lines = ["# artefacts built by `snakemake figures/all` (path, bytes, sha256)"]
for path in snakemake.input:  # noqa: F821
    data = Path(path).read_bytes()
    lines.append(f"{path}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}")
write_text(snakemake.output.manifest, "\n".join(lines) + "\n")  # noqa: F821
