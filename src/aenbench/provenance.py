"""What is recorded with every result: seed, versions and the git commit of the code."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """Commit of the aenbench checkout this code runs from, with ``-dirty`` when tracked files
    differ from it; ``unknown`` outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not-installed"


def versions() -> dict[str, Any]:
    return {
        "aenbench": package_version("aenbench"),
        "sae_lens": package_version("sae-lens"),
        "transformer_lens": package_version("transformer-lens"),
        "torch": package_version("torch"),
        "python": platform.python_version(),
    }
