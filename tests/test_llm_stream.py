"""The LLM track's streaming mode (issue 19) on a random-init model: the stream computes the same
batches as the disk shards, a grid trained in lockstep from it equals the disk path's SAEs and
metrics, and a checkpointed stream resumes bit for bit, by restoring its position and buffer
instead of replaying them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aenbench.llm import harvest as H
from aenbench.llm.evaluate import activation_metrics, downstream_metrics
from aenbench.llm.models import load_model
from aenbench.llm.stream import ChunkSource, MixingBuffer, model_stream, shard_stream, stream_generator

HOOK = "blocks.1.hook_resid_post"
TRAIN = {"steps": 40, "batch_size": 32, "lr": 1e-3, "seeds": [0], "dead_window_steps": 20,
         "auxk_dead_window_steps": 20, "buffer_tokens": 96, "max_grad_norm": 1.0, "checkpoint_every": 0}
FAMILIES = {
    "AEN": {"architecture": "aen", "fixed": {"adaptive": True, "l2_coefficient": 0.001},
            "grid": {"l1_coefficient": [0.01, 0.002]}},
    "TopK": {"architecture": "topk", "fixed": {"aux_loss_coefficient": 0.0}, "grid": {"k": [4]}},
}
AEN_DEFAULTS = {"aen": {"warmup_steps": 10, "ramp_steps": 5, "beta": 0.9, "decoder_norm": "project",
                        "loss_convention": "authors"}}


def runs_of(family):
    (name, values), = [(k, v) for k, v in family["grid"].items()]
    return [(f"{name}~{v}_seed~0", {name: v, "seed": 0}) for v in values]


@pytest.fixture(scope="module")
def llama(word_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(word_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return load_model("llama-3.1-8b", hf_model=LlamaForCausalLM(cfg), tokenizer=word_tokenizer)


@pytest.fixture(scope="module")
def harvests(llama, corpus, tmp_path_factory):
    out = {}
    for mode in ("disk", "stream"):
        spec = H.HarvestSpec(model="llama-3.1-8b", hook=HOOK, context_size=16, n_train_contexts=20, n_eval_contexts=4,
                             shard_contexts=6, batch_contexts=4, dtype="float32", seed=0,
                             corpus=corpus, train_storage=mode, stats_split="eval")
        out[mode] = tmp_path_factory.mktemp(f"acts_{mode}")
        H.harvest(llama, spec, out[mode])
    return out


def test_mixing_buffer_is_sae_lens_mixing_buffer():
    from sae_lens.training.mixing_buffer import mixing_buffer

    chunks = [torch.randn(n, 3) for n in (7, 13, 5, 20, 9, 11, 3, 17)]
    torch.manual_seed(5)
    theirs = list(mixing_buffer(24, 4, iter(chunks)))
    source = ChunkSource(len(chunks), lambda i: chunks[i], chunk_tokens=100, generator=stream_generator(5))
    source.order = tuple(range(len(chunks)))  # sae-lens's loop visits them in order: no per-epoch draw
    source.epoch = 0
    ours = MixingBuffer(source, 24, 4)
    n_full = len(theirs) - sum(c.shape[0] for c in chunks[-1:]) // 4  # the end-of-data flush is sae-lens-only
    got = [next(ours) for _ in range(n_full)]
    assert n_full > 10 and all(torch.equal(a, b) for a, b in zip(theirs, got))


def test_stream_harvest_writes_no_training_activations(harvests):
    disk, stream = (H.load_manifest(harvests[m]) for m in ("disk", "stream"))
    assert stream["shards"]["train"] == [] and disk["shards"]["train"]
    assert stream["count"] == disk["count"]  # the same tokens kept
    assert not (harvests["stream"] / "train").exists()
    # the eval split, its stats and the normalisation are the same files
    assert stream["files"]["stats.safetensors"] == disk["files"]["stats.safetensors"]
    assert stream["files"]["eval_contexts.safetensors"] == disk["files"]["eval_contexts.safetensors"]


def test_stream_gives_the_disk_batches(llama, harvests):
    from aenbench.llm.track import streamed_training_stream

    disk = shard_stream(harvests["disk"], 32, 96, seed=3, chunk_tokens=40)
    stream = streamed_training_stream(llama, harvests["stream"], {"batch_size": 32, "buffer_tokens": 96}, seed=3)
    stream.source.chunk_tokens = 40
    n_train = H.load_manifest(harvests["disk"])["count"]["train"]
    n = 3 * n_train // 32  # three epochs: new block orders and reshuffles
    for i in range(n):
        a, b = next(disk), next(stream)
        assert torch.equal(a, b), i
    assert stream.source.epoch >= 2


def test_lockstep_grid_from_the_stream_equals_the_disk_path(llama, harvests, tmp_path):
    from aenbench.llm.track import train_family, train_grid_streamed
    from aenbench.stages import load_training_sae

    disk = {f: train_family(acts_dir=harvests["disk"], out_dir=tmp_path / "disk" / "results" / "trained" / f,
                            family_name=f, family=fam, runs=runs_of(fam), train=TRAIN, width=64,
                            arch_defaults=AEN_DEFAULTS, device="cpu")
            for f, fam in FAMILIES.items()}
    calls = []
    orig = llama.bridge.run_with_cache
    llama.bridge.run_with_cache = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        streamed = train_grid_streamed(
            acts_dir=harvests["stream"], out_dirs={f: tmp_path / "stream" / "results" / "trained" / f for f in FAMILIES},
            families=FAMILIES, runs={f: runs_of(f_) for f, f_ in FAMILIES.items()}, train=TRAIN, width=64,
            arch_defaults={f: AEN_DEFAULTS for f in FAMILIES}, device="cpu", loaded=llama)
    finally:
        llama.bridge.run_with_cache = orig
    # one forward pass per batch of contexts for the whole grid (3 SAEs): 40 steps × 32 tokens is
    # ≈ 4 epochs of 4 blocks, each block ≤ 2 model batches
    n_train = H.load_manifest(harvests["disk"])["count"]["train"]
    epochs = -(-(40 * 32 + 96) // n_train) + 1
    assert 0 < len(calls) <= epochs * 4 * 2
    eval_x = H.normalise(H.load_split(harvests["disk"], "eval")["acts"])
    tokens = load_file(str(harvests["disk"] / "eval_contexts.safetensors"))["tokens"].long()
    mean = load_file(str(harvests["disk"] / "stats.safetensors"))["mean"]
    for f in FAMILIES:
        for a, b in zip(disk[f], streamed[f]):
            assert a["run_id"] == b["run_id"]
            assert b["engine"]["name"] == "lockstep"
            sa = load_training_sae(a, tmp_path / "disk" / "results" / "trained" / f / a["run_id"], "cpu")
            sb = load_training_sae(b, tmp_path / "stream" / "results" / "trained" / f / b["run_id"], "cpu")
            for k, v in sa.state_dict().items():
                assert torch.allclose(v, sb.state_dict()[k], rtol=0, atol=1e-5), (f, a["run_id"], k)
            ma, mb = activation_metrics(sa, eval_x), activation_metrics(sb, eval_x)
            for group, metrics in ma.items():
                for key, value in metrics.items():
                    if isinstance(value, float):
                        assert abs(value - mb[group][key]) <= 1e-5, (group, key)
            da, db = (downstream_metrics(llama.bridge, {"x": s}, HOOK, tokens, llama.separator_id, mean, 4)["x"]
                      for s in (sa, sb))
            assert all(abs(da[k] - db[k]) <= 1e-5 for k in da if isinstance(da[k], float))


def test_lockstep_resume_restores_the_stream_without_replaying(llama, harvests, tmp_path):
    from aenbench.llm.track import streamed_training_stream
    from aenbench.lockstep import train_lockstep
    from aenbench.training import build_training_sae

    def groups():
        aen = {"adaptive": True, "l1_coefficient": 0.01, "l2_coefficient": 0.001, **AEN_DEFAULTS["aen"]}
        return [("stacked", [build_training_sae("aen", 32, 64, aen, 0) for _ in range(2)], ["a", "b"]),
                ("per_sae", [build_training_sae("topk", 32, 64, {"k": 4}, 0)], ["t"])]

    kw = dict(steps=30, batch_size=32, lr=1e-3, dead_window_steps=10, auxk_dead_window_steps=10, device="cpu",
              max_grad_norm=1.0)
    g_full = groups()
    train_lockstep(g_full, streamed_training_stream(llama, harvests["stream"], TRAIN, 0), **kw)

    class Killed(Exception):
        pass

    stream = streamed_training_stream(llama, harvests["stream"], TRAIN, 0)
    real_next = type(stream).__next__
    drawn = []

    def dying(self):
        if len(drawn) == 23:
            raise Killed
        drawn.append(1)
        return real_next(self)

    type(stream).__next__ = dying
    try:
        with pytest.raises(Killed):
            train_lockstep(groups(), stream, checkpoint_dir=tmp_path / "ck", checkpoint_every=10,
                           run_fingerprint="fp", **kw)
    finally:
        type(stream).__next__ = real_next
    assert json.loads((tmp_path / "ck" / "latest" / "checkpoint.json").read_text())["step"] == 20
    calls = []
    orig = llama.bridge.run_with_cache
    llama.bridge.run_with_cache = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        g_res = groups()
        res = train_lockstep(g_res, streamed_training_stream(llama, harvests["stream"], TRAIN, 0),
                             checkpoint_dir=tmp_path / "ck", checkpoint_every=10, run_fingerprint="fp", **kw)
    finally:
        llama.bridge.run_with_cache = orig
    assert res.resumed_at == 20
    # 10 steps × 32 tokens after the resume, plus the one block it stood in: far fewer model
    # batches than the 20 steps it would replay
    assert len(calls) <= 2 * (1 + -(-(10 * 32 + 96) // (6 * 15)))
    for (_, full, _), (_, resumed, _) in zip(g_full, g_res):
        for x, y in zip(full, resumed):
            for k, v in x.state_dict().items():
                assert torch.equal(v, y.state_dict()[k]), k


def test_kill_9_mid_training_resumes_bit_identically(harvests, word_tokenizer, tmp_path):
    """A real process killed with SIGKILL after a checkpoint resumes from it, the stream from its
    saved position, to the same weights bit for bit as an uninterrupted process."""
    tok_dir = tmp_path / "tok"
    word_tokenizer.save_pretrained(tok_dir)
    worker = [sys.executable, str(Path(__file__).with_name("stream_kill_worker.py")), str(harvests["stream"]),
              str(tok_dir)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    full = subprocess.run(worker + ["-", str(tmp_path / "full.safetensors")], env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-2000:]
    ckpt = tmp_path / "ck"
    proc = subprocess.Popen(worker + [str(ckpt), str(tmp_path / "unused.safetensors"), "--slow"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    meta = ckpt / "latest" / "checkpoint.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if meta.exists() and json.loads(meta.read_text())["step"] >= 30:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the worker finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(meta.read_text())["step"]
    assert 30 <= killed_at < 120 and not (tmp_path / "unused.safetensors").exists()
    resumed = subprocess.run(worker + [str(ckpt), str(tmp_path / "resumed.safetensors")], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed_at {killed_at}" in resumed.stdout
    a, b = load_file(str(tmp_path / "full.safetensors")), load_file(str(tmp_path / "resumed.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
