"""Every artefact a later stage trusts records its content hash and the settings that made it.

Faults are injected into real files: activation shards and their sidecars / manifest (harvest
through a fake, deterministic model: the harvest code is the real one), per-SAE and stack
checkpoints, the spiked teacher dictionary and the sae_lens.synthetic teacher. One test runs a
real process (``python`` on the real entry points). Counts for the report are in the docstrings.
"""

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from aenbench.io import sha256_file
from aenbench.llm import harvest as H

# --------------------------------------------------------------------------- shards


class _Tok:
    words = "the a of and to in is was he she it that for on with as his her at by from this be".split()

    def __call__(self, text, add_special_tokens=False):
        class Out:
            input_ids = [2 + self.words.index(w) for w in text.split()]

        return Out()


class _Bridge:
    """A model whose residual at every position is a fixed embedding of its token plus the position."""

    class cfg:
        d_model = 8
        device = "cpu"

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.emb = torch.randn(40, 8, generator=g)
        self.calls = 0

    def run_with_cache(self, ids, names_filter, stop_at_layer):
        self.calls += 1
        acts = self.emb[ids] + torch.arange(ids.shape[1]).view(1, -1, 1) * 0.01
        acts[:, 0] *= 50.0  # a massive first position, as in real models
        return None, {names_filter[0]: acts}


class _Loaded:
    def __init__(self):
        self.tokenizer, self.separator_id, self.bridge = _Tok(), 0, _Bridge()

    class spec:
        hub_name = "fake/model"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    g = torch.Generator().manual_seed(0)
    with open(folder / "docs.jsonl", "w") as f:
        for i in range(40):
            n = int(torch.randint(5, 40, (1,), generator=g))
            f.write(json.dumps({"text": " ".join(_Tok.words[j] for j in torch.randint(0, len(_Tok.words), (n,), generator=g).tolist())}) + "\n")
    return f"jsonl:{folder / 'docs.jsonl'}"


def spec(corpus, **kw):
    base = dict(model="fake", hook="blocks.0.hook_resid_post", context_size=16, n_train_contexts=8, n_eval_contexts=4,
                shard_contexts=4, batch_contexts=4, dtype="float16", seed=0, corpus=corpus)
    return H.HarvestSpec(**{**base, **kw})


def test_changed_settings_rebuild_every_shard_never_reuse(corpus, tmp_path, caplog):
    """Faults injected: 2 — the harvest seed and dtype changed over a finished harvest (before the
    fix every train shard stayed the float16 shard of seed 0 under a manifest saying seed 1,
    float32), then a smaller harvest over a larger one (its extra shard removed)."""
    H.harvest(_Loaded(), spec(corpus), tmp_path / "acts")
    new = spec(corpus, seed=1, dtype="float32")
    with caplog.at_level(logging.WARNING, logger="aenbench.llm.harvest"):
        manifest = H.harvest(_Loaded(), new, tmp_path / "acts")
    assert manifest["seed"] == 1 and manifest["dtype"] == "float32"
    assert caplog.text.count("rebuilding") == 3  # 2 train + 1 eval shard
    assert "seed 0 -> 1" in caplog.text and "dtype 'float16' -> 'float32'" in caplog.text
    fresh = H.harvest(_Loaded(), new, tmp_path / "fresh")
    for split in ("train", "eval"):
        got, want = H.load_split(tmp_path / "acts", split), H.load_split(tmp_path / "fresh", split)
        assert got["acts"].dtype == torch.float32
        assert all(torch.equal(got[k], want[k]) for k in want)
        side = json.loads((tmp_path / "acts" / split / "shard_00000.json").read_text())
        assert side["settings"]["seed"] == 1 and side["settings"]["dtype"] == "float32"
    # the same settings again: nothing rebuilt
    loaded = _Loaded()
    H.harvest(loaded, new, tmp_path / "acts")
    assert loaded.bridge.calls == 0
    # fewer train contexts: the train shard no longer in the harvest is removed, not left behind
    H.harvest(_Loaded(), spec(corpus, seed=1, dtype="float32", n_train_contexts=4), tmp_path / "acts")
    assert sorted(p.name for p in (tmp_path / "acts" / "train").iterdir()) == ["shard_00000.json",
                                                                              "shard_00000.safetensors"]


def test_damaged_shards_and_sidecars_are_rebuilt_or_refused_by_name(corpus, tmp_path, caplog):
    """Faults injected: 7 — a sidecar that is not JSON, a shard missing from disk, a harvest killed
    mid-shard (shard without sidecar, a temporary left behind), a flipped shard byte (refused on
    load, naming the .json sidecar), a manifest naming a shard that is gone, an edited manifest,
    a corrupted stats file. Plus a legacy manifest (8)."""
    acts = tmp_path / "acts"
    first = H.harvest(_Loaded(), spec(corpus), acts)
    (acts / "train" / "shard_00000.json").write_text("{not json")
    (acts / "train" / "shard_00001.safetensors").unlink()
    (acts / "eval" / "shard_00000.json").unlink()
    (acts / "eval" / ".shard_00000.safetensors.abcd.tmp").write_bytes(b"partial")
    loaded = _Loaded()
    with caplog.at_level(logging.WARNING, logger="aenbench.llm.harvest"):
        second = H.harvest(loaded, spec(corpus), acts)
    assert loaded.bridge.calls == 3
    assert "not readable JSON" in caplog.text and "shard_00001.safetensors is missing" in caplog.text
    assert "sidecar shard_00000.json is missing" in caplog.text
    assert second["shards"] == first["shards"] and not list(acts.rglob(".*.tmp"))

    shard = acts / "train" / "shard_00001.safetensors"
    good = shard.read_bytes()
    data = bytearray(good)
    data[-3] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(H.ShardError) as err:
        H.load_split(acts, "train")
    msg = str(err.value)
    assert str(shard) in msg and "shard_00001.json" in msg and ".sha256" not in msg and "--forcerun llm_harvest" in msg
    shard.unlink()
    with pytest.raises(H.ShardError, match=r"shard_00001.safetensors, listed in .*manifest.json, is missing"):
        next(H.activation_stream(acts, batch_size=4, buffer_tokens=8))
    shard.write_bytes(good)
    H.load_split(acts, "train")  # intact again

    mpath = acts / "manifest.json"
    original = mpath.read_text()
    m = json.loads(original)
    m["normalisation"]["mean_norm"] *= 2
    mpath.write_text(json.dumps(m))
    with pytest.raises(H.ShardError, match="does not match its own content_sha256"):
        H.load_manifest(acts)
    mpath.write_text(original)
    stats = acts / "stats.safetensors"
    save_file({"mean": torch.zeros(8)}, str(stats))
    with pytest.raises(H.ShardError, match=r"stats.safetensors is corrupted"):
        H.load_manifest(acts)
    legacy = {k: v for k, v in m.items() if k not in ("format", "content_sha256")}
    mpath.write_text(json.dumps(legacy))
    with pytest.raises(H.ShardError, match="older harvest"):
        H.load_manifest(acts)


# --------------------------------------------------------------------------- checkpoints

N, M, BATCH = 8, 16, 16


def _stream(seed=0):
    from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary

    return SpikedStream(spiked_dictionary(N, M, 0.5, 0), 1, BATCH, seed=seed)


def _train(ckpt, steps=40, every=10, stream=None, fp="fp"):
    from aenbench.training import build_training_sae, train_sae

    sae = build_training_sae("standard", N, M, {"l1_coefficient": 0.01}, seed=0)
    res = train_sae(sae, stream or _stream(), steps=steps, batch_size=BATCH, lr=3e-3, dead_window_steps=10,
                    checkpoint_dir=ckpt, checkpoint_every=every, run_fingerprint=fp)
    return {k: v.clone() for k, v in res.sae.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _rehash(latest):
    meta = json.loads((latest / "checkpoint.json").read_text())
    meta["files"] = {n: sha256_file(latest / n) for n in meta["files"]}
    (latest / "checkpoint.json").write_text(json.dumps(meta))


def _flip(path, where=-9, bit=0x01):
    data = bytearray(path.read_bytes())
    data[where] ^= bit
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run's weights, and a checkpoint of it at step 30 (left by train_sae)."""
    root = tmp_path_factory.mktemp("ref")
    weights = _train(root / "ckpt")
    meta = json.loads((root / "ckpt" / "latest" / "checkpoint.json").read_text())
    assert meta["step"] == 30 and set(meta["files"]) >= {"sae_state.safetensors", "rng.safetensors"}
    return weights, root / "ckpt"


def _copy_ckpt(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst / "latest"


FAULTS = {
    # a flipped mantissa bit in the weights: before the fix it resumed silently, other metrics
    "flipped_weight_bit": lambda d: _flip(d / "sae_state.safetensors"),
    # before the fix: a failure on every rerun until the file was deleted by hand
    "truncated_trainer_state": lambda d: (d / "trainer_state.pt").write_bytes((d / "trainer_state.pt").read_bytes()[:100]),
    "nan_with_matching_hash": lambda d: (save_file({k: v * float("nan") if k == "W_dec" else v for k, v in
                                                    load_file(str(d / "sae_state.safetensors")).items()},
                                                   str(d / "sae_state.safetensors")), _rehash(d)),
    "checkpoint_json_not_json": lambda d: (d / "checkpoint.json").write_text("{\"format\": 2, "),
    "rng_file_missing": lambda d: (d / "rng.safetensors").unlink(),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_bad_checkpoint_is_moved_aside_and_training_restarts(reference, tmp_path, fault, caplog):
    """Faults injected: 5 (one per parameter): a flipped bit, a truncated file, a NaN whose
    hash was recomputed, a checkpoint.json that is not JSON, a missing file. The rerun is never
    stuck: the checkpoint goes to latest.corrupt-1 with a warning, and training from step 0 gives
    the uninterrupted run's weights bit for bit."""
    weights, ckpt = reference
    latest = _copy_ckpt(ckpt, tmp_path / "ckpt")
    FAULTS[fault](latest)
    with caplog.at_level(logging.INFO, logger="aenbench.training"):
        got = _train(tmp_path / "ckpt")
    assert _same(got, weights)
    assert "resumed from the checkpoint" not in caplog.text
    assert f"checkpoint {latest} is not usable" in caplog.text and "latest.corrupt-1" in caplog.text
    assert (tmp_path / "ckpt" / "latest.corrupt-1").is_dir()


def test_verified_resume_other_runs_killed_writes_and_disk_full(reference, tmp_path, monkeypatch, caplog):
    """Faults injected: 4 — a checkpoint of another run and of another format (not used, not
    moved), a checkpoint write killed midway (its temporary left beside a good checkpoint),
    a disk full at a checkpoint save (training goes on; the previous checkpoint stays intact)."""
    from aenbench import training

    weights, ckpt = reference
    latest = _copy_ckpt(ckpt, tmp_path / "ckpt")
    assert training.find_checkpoint(tmp_path / "ckpt", "another-run") is None
    meta = json.loads((latest / "checkpoint.json").read_text())
    (latest / "checkpoint.json").write_text(json.dumps({**meta, "format": 1}))
    assert training.find_checkpoint(tmp_path / "ckpt", "fp") is None and latest.is_dir()
    (latest / "checkpoint.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.INFO, logger="aenbench.training"):
        got = _train(tmp_path / "ckpt")
    assert _same(got, weights) and "resumed from the checkpoint" in caplog.text

    real = training.save_file
    calls = {"n": 0}

    def full_disk(tensors, path, *a, **k):
        calls["n"] += 1
        if calls["n"] >= 3:  # the 2nd checkpoint's first file
            raise OSError(28, "No space left on device")
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(training, "save_file", full_disk)
    (tmp_path / "full" / ".latest.x1y2.tmp").mkdir(parents=True)  # a checkpoint write killed midway
    (tmp_path / "full" / ".latest.x1y2.tmp" / "sae_state.safetensors").write_bytes(b"half")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aenbench.training"):
        got = _train(tmp_path / "full", steps=25)
    assert "could not be written" in caplog.text and "No space left" in caplog.text
    meta = json.loads((tmp_path / "full" / "latest" / "checkpoint.json").read_text())
    assert meta["step"] == 10 and not list((tmp_path / "full").glob(".*"))  # no temporary left, old or new
    monkeypatch.setattr(training, "save_file", real)
    assert training.find_checkpoint(tmp_path / "full", "fp") is not None  # intact and verified


def test_divergence_names_only_a_verified_checkpoint(reference, tmp_path):
    """Faults injected: 2 — a corrupted checkpoint (flipped bit), then a NaN batch at step 5 of
    the rerun. Before the fix the error called the corrupted checkpoint "the last good checkpoint"."""
    from aenbench.training import DivergenceError

    _, ckpt = reference
    latest = _copy_ckpt(ckpt, tmp_path / "ckpt")
    _flip(latest / "sae_state.safetensors")
    stream = _stream()
    real_next = type(stream).__next__
    n = {"i": 0}

    class Poisoned:
        def __iter__(self):
            return self

        def __next__(self):
            n["i"] += 1
            x = real_next(stream)
            return x * float("nan") if n["i"] == 6 else x

    with pytest.raises(DivergenceError) as err:
        _train(tmp_path / "ckpt", stream=Poisoned())
    assert err.value.step == 5 and err.value.checkpoint is None
    assert "no verified checkpoint" in str(err.value) and "last good" not in str(err.value)


def test_stack_checkpoint_is_verified(tmp_path, caplog):
    """Faults injected: 2 — a flipped byte in stack_state.pt, and a NaN in a live SAE's slice
    with its hash recomputed: each moved aside, the stack retrains from step 0 to the same weights."""
    from aenbench.stacked_training import train_stack
    from aenbench.training import build_training_sae

    base = {"warmup_steps": 5, "ramp_steps": 5, "w_min": 0.01, "w_max": 10.0, "beta": 0.9, "p": 0.05, "gamma": 1.0,
            "decoder_norm": "project", "loss_convention": "authors", "adaptive": True, "l2_coefficient": 0.0}

    def run(ckpt):
        saes = [build_training_sae("aen", N, M, {**base, "l1_coefficient": l1}, 0) for l1 in (0.01, 0.02)]
        out = train_stack(saes, _stream(), names=["a", "b"], steps=25, batch_size=BATCH, lr=3e-3,
                          dead_window_steps=10, checkpoint_dir=ckpt, checkpoint_every=10, run_fingerprint="s")
        return [r.sae.state_dict() for r in out.results], out.resumed_at

    ref, _ = run(tmp_path / "ref")
    meta = json.loads((tmp_path / "ref" / "latest" / "checkpoint.json").read_text())
    assert meta["step"] == 20 and set(meta["files"]) == {"stack_state.pt"}

    def nan_live(d):
        state = torch.load(str(d / "stack_state.pt"), weights_only=True)
        state["stack"]["W_enc"][1, 0, 0] = float("nan")
        torch.save(state, str(d / "stack_state.pt"))
        _rehash(d)

    for i, fault in enumerate((lambda d: _flip(d / "stack_state.pt", where=-200), nan_live)):
        latest = _copy_ckpt(tmp_path / "ref", tmp_path / f"c{i}")
        fault(latest)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="aenbench.training"):
            got, resumed = run(tmp_path / f"c{i}")
        assert resumed == 0 and "is not usable" in caplog.text and (tmp_path / f"c{i}" / "latest.corrupt-1").exists()
        assert all(_same(a, b) for a, b in zip(got, ref))


# --------------------------------------------------------------------------- teachers

SPEC = {"dataset": "rho0.5", "n": N, "m": M, "k": 1, "rho": 0.5, "dictionary_seed": 0, "magnitude": [0.5, 1.5],
        "n_diagnostic_supports": 3}


def test_spiked_teacher_is_verified_and_names_its_rule(tmp_path):
    """Faults injected: 5 — a flipped byte in D_MN, a truncated file, a dictionary of other
    settings (ρ) under the path asked for, a legacy file (no hash) altered, and the replicate
    teacher's message naming its own rule. Before the fix the flipped byte was loaded silently
    and only changed the teacher's sha256, so every family was retrained on it."""
    from aenbench.synthetic.track import TeacherError, load_teacher_dictionary, make_teacher, spiked_data

    path = tmp_path / "results" / "synthetic" / "rho0.5" / "teacher" / "dictionary.safetensors"
    make_teacher(SPEC, path, path.with_name("diagnostics.json"))
    spiked_data(path, SPEC, {})  # intact: accepted
    good = path.read_bytes()
    _flip(path, where=-7)
    with pytest.raises(TeacherError) as err:
        spiked_data(path, SPEC, {})
    msg = str(err.value)
    assert str(path) in msg and "corrupted" in msg and f"snakemake {path} --force" in msg and "rule synthetic_teacher" in msg
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(TeacherError, match="cannot be read"):
        spiked_data(path, SPEC, {})
    make_teacher({**SPEC, "rho": 0.3}, path, path.with_name("diagnostics.json"))
    with pytest.raises(TeacherError, match=r"other settings: rho '0.3' \(asked for '0.5'\)"):
        spiked_data(path, SPEC, {})

    # a dictionary written before the hash was recorded: accepted only if it is what its settings draw
    from aenbench.synthetic.spiked import spiked_dictionary

    d = spiked_dictionary(N, M, 0.5, 0)
    legacy_meta = {k: str(SPEC[k]) for k in ("n", "m", "k", "rho", "dictionary_seed")}
    save_file({"D_MN": d}, str(path), metadata=legacy_meta)
    assert torch.equal(load_teacher_dictionary(path, SPEC), d)
    d[3, 2] += 1e-6
    save_file({"D_MN": d}, str(path), metadata=legacy_meta)
    with pytest.raises(TeacherError, match="records no content hash"):
        load_teacher_dictionary(path, SPEC)

    rep = tmp_path / "results" / "synthetic" / "rho0.5" / "teacher-d1" / "dictionary.safetensors"
    with pytest.raises(TeacherError, match="rule synthetic_teacher_replicate"):
        load_teacher_dictionary(rep, {**SPEC, "dictionary_seed": 1})


def test_synthsae_teacher_is_verified(tmp_path):
    """Faults injected: 2 — a flipped byte in the saved sae_lens.synthetic teacher's weights,
    and a file of it removed."""
    from aenbench.synthetic import synthsae

    spec = {"num_features": 32, "hidden_dim": 8, "hierarchy_root_nodes": 0, "correlation_rank": 0,
            "orthogonalization_steps": 0}
    model_dir = tmp_path / "results" / "synthsae" / "teacher" / "model"
    synthsae.save_model(synthsae.build_synthetic_model(spec), model_dir)
    synthsae.load_model(model_dir, spec=spec)
    weights = model_dir / "synthetic_model.safetensors"
    _flip(weights, where=-5)
    with pytest.raises(synthsae.TeacherIntegrityError) as err:
        synthsae.load_model(model_dir)
    assert str(model_dir) in str(err.value) and "synthetic_model.safetensors" in str(err.value)
    assert "rule synthsae_teacher" in str(err.value)
    weights.unlink()
    with pytest.raises(synthsae.TeacherIntegrityError, match="synthetic_model.safetensors is missing"):
        synthsae.load_model(model_dir)


# --------------------------------------------------------------------------- a real process

RUNNER = textwrap.dedent('''
    import json, logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    import torch
    torch.set_num_threads(1)
    from aenbench.synthetic.track import spiked_data, train_runs
    a = json.loads(sys.argv[1])
    data = spiked_data(a["dictionary"], a["spec"], {})
    train_runs(data=data, out_dir=a["out_dir"], dataset="rho0.5", family_name="L1", family=a["family"],
               runs=[tuple(r) for r in a["runs"]], train=a["train"], arch_defaults={}, device="cpu",
               checkpoint_dir=a["checkpoints"])
    print("TRAINED", flush=True)
    spiked_data(a["flipped"], a["spec"], {})  # the damaged teacher: refused, the process fails
    print("NOT REACHED", flush=True)
''')


def test_real_process_survives_a_bad_checkpoint_and_refuses_a_bad_teacher(tmp_path):
    """Faults injected: 2, through a real ``python`` process on the real entry points
    (``spiked_data``, ``train_runs`` → ``train_stage`` → ``train_sae``): a truncated checkpoint of
    the very run being trained (moved aside, trained from step 0, exit reaches the next step) and
    a teacher with a flipped byte (refused with the path and rule; exit status 1)."""
    from aenbench.stages import plan_runs
    from aenbench.synthetic.track import make_teacher

    path = tmp_path / "results" / "synthetic" / "rho0.5" / "teacher" / "dictionary.safetensors"
    make_teacher(SPEC, path, path.with_name("diagnostics.json"))
    flipped = tmp_path / "results" / "synthetic" / "rho0.5" / "teacher-d1" / "dictionary.safetensors"
    flipped.parent.mkdir(parents=True)
    flipped.write_bytes(path.read_bytes())
    _flip(flipped, where=-11)
    train = {"steps": 30, "batch_size": BATCH, "lr": 3e-3, "seeds": [0], "dead_window_steps": 10,
             "auxk_dead_window_steps": 10, "checkpoint_every": 10, "engine": "per_sae"}
    args = {"dictionary": str(path), "flipped": str(flipped), "spec": {k: v for k, v in SPEC.items()
                                                                        if k != "n_diagnostic_supports"},
            "out_dir": str(tmp_path / "results" / "synthetic" / "rho0.5" / "trained" / "L1"),
            "family": {"architecture": "standard"}, "runs": [["l1~0.01", {"l1_coefficient": 0.01, "seed": 0}]],
            "train": train, "checkpoints": str(tmp_path / "ckpt")}
    # a checkpoint for this run, then truncated: its folder is named after the run id
    latest = tmp_path / "ckpt" / "l1~0.01" / "latest"
    latest.mkdir(parents=True)
    (latest / "sae_state.safetensors").write_bytes(b"\x00" * 10)
    (latest / "checkpoint.json").write_text(json.dumps({"format": 2, "step": 10, "fingerprint": "x", "files": {}}))
    # the fingerprint of the run, as the stage computes it, so that the checkpoint is "this run's"
    from aenbench.stages import TRAINING_CODE, code_hash, training_settings
    from aenbench.synthetic.track import spiked_data

    data = spiked_data(path, args["spec"], {})
    identity = {"track": data.track, "teacher": data.teacher, "teacher_sha256": data.teacher_sha256,
                "train": training_settings(train, "standard"), "device": "cpu", "code": code_hash(TRAINING_CODE)}
    fp = plan_runs(args["family"], [tuple(r) for r in args["runs"]], {}, identity)[0].fingerprint
    (latest / "checkpoint.json").write_text(json.dumps({"format": 2, "step": 10, "fingerprint": fp,
                                                         "files": {"sae_state.safetensors": "0" * 64}}))
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    proc = subprocess.run([sys.executable, str(script), json.dumps(args)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert f"checkpoint {latest} is not usable: sae_state.safetensors has sha256" in out, out[-3000:]
    assert "TRAINED" in out and "NOT REACHED" not in out
    assert "TeacherError" in out and str(flipped) in out and "rule synthetic_teacher_replicate" in out
    assert (Path(args["out_dir"]) / "l1~0.01" / "sae" / "sae_weights.safetensors").exists()
