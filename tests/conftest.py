import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OneLayerBridge:
    """A one-layer stand-in for a TransformerLens model: token embedding (``vocab`` × ``d``,
    times ``scale``) → hook → unembedding; ``run_with_hooks`` applies each forward hook to the
    embedding, as aenbench.llm.evaluate.downstream_metrics calls it."""

    def __init__(self, d, vocab=11, seed=1, scale=1.0):
        g = torch.Generator().manual_seed(seed)
        self.embed, self.unembed = torch.randn(vocab, d, generator=g) * scale, torch.randn(d, vocab, generator=g)

    def __call__(self, ids):
        return self.embed[ids] @ self.unembed

    def run_with_hooks(self, ids, fwd_hooks):
        act = self.embed[ids]
        for _, fn in fwd_hooks:
            act = fn(act, hook=None)
        return act @ self.unembed


@pytest.fixture(scope="session")
def one_layer_bridge():
    """The :class:`OneLayerBridge` class (a fixture, so test modules need not import conftest)."""
    return OneLayerBridge


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory):
    """A word-level tokenizer saved to a folder (TransformerLens reloads tokenizers by path), for the
    random-init models of the LLM tests."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    words = "the a of and to in is was he she it that for on with as his her at by from this be".split()
    vocab = {"<|endoftext|>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", unk_token="<unk>",
                                   bos_token="<|endoftext|>")
    folder = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """40 documents of random words from the word_tokenizer's vocabulary, as a ``jsonl:`` corpus."""
    folder = tmp_path_factory.mktemp("corpus")
    g = torch.Generator().manual_seed(0)
    words = "the a of and to in is was he she it that for on with as his her at by from this be".split()
    with open(folder / "docs.jsonl", "w") as f:
        for i in range(40):
            n = int(torch.randint(5, 60, (1,), generator=g))
            text = " ".join(words[j] for j in torch.randint(0, len(words), (n,), generator=g).tolist())
            f.write(json.dumps({"source": "test", "id": str(i), "text": text}) + "\n")
    return f"jsonl:{folder / 'docs.jsonl'}"
