"""Loading a user's SAE plugin file: a Python file that registers an architecture with sae-lens
(named by a variant's ``plugin:`` in the config; ``examples/l1_resample.py`` is the worked example).

Importing this module is free; sae-lens is imported when a registration is checked."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Sequence


class PluginError(RuntimeError):
    """A user's SAE plugin file could not be imported or did not register its architecture."""


def resolve_plugin(path: str | Path, search: Sequence[str | Path] = ()) -> Path:
    """``path`` as given when absolute or present from the working directory; otherwise the
    first of ``search`` (e.g. the aenbench checkout) that holds it."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    for base in search:
        candidate = Path(base) / p
        if candidate.exists():
            return candidate
    return p


def load_plugin(path: str | Path, architecture: str | None = None) -> ModuleType:
    """Import the user's Python file at ``path`` (which registers an architecture with
    sae-lens) and check that ``architecture`` is now registered for training and loading."""
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"SAE plugin file {str(path)!r} not found (named by a variant's `plugin:` in the config)")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    name = f"aenbench_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"SAE plugin {str(path)!r} is not a Python file that can be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[name]
            raise PluginError(
                f"importing the SAE plugin {str(path)!r} failed:\n{traceback.format_exc()}"
            ) from err
    if architecture is not None:
        from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY

        problems = []
        if architecture not in SAE_TRAINING_CLASS_REGISTRY:
            problems.append("sae_lens.register_sae_training_class (to train it)")
        if architecture not in SAE_CLASS_REGISTRY:
            problems.append("sae_lens.register_sae_class (to load the saved SAE)")
        if problems:
            raise PluginError(
                f"the SAE plugin {str(path)!r} was imported but did not register architecture "
                f"{architecture!r} with " + " or ".join(problems) + ". Registered for training: "
                + ", ".join(sorted(SAE_TRAINING_CLASS_REGISTRY))
            )
    return module
