"""Loading a user's SAE plugin file, and the worked example's resampling (examples/l1_resample.py)."""

import textwrap
from pathlib import Path

import pytest
import torch

from aenbench.compare.plugins import PluginError, load_plugin, resolve_plugin
from aenbench.training import build_training_sae


@pytest.fixture(scope="module")
def example(repo_root):
    return load_plugin(Path(repo_root) / "examples" / "l1_resample.py", "l1_resample")


def test_broken_plugin_names_file_and_traceback(tmp_path):
    bad = tmp_path / "bad_plugin.py"
    bad.write_text(textwrap.dedent("""
        import torch
        def helper():
            return 1 / 0
        helper()
    """))
    with pytest.raises(PluginError) as err:
        load_plugin(bad, "whatever")
    msg = str(err.value)
    assert str(bad) in msg and "Traceback" in msg and "ZeroDivisionError" in msg and "helper()" in msg


def test_plugin_that_registers_nothing(tmp_path):
    quiet = tmp_path / "quiet_plugin.py"
    quiet.write_text("X = 1\n")
    with pytest.raises(PluginError, match="did not register architecture 'ghost'"):
        load_plugin(quiet, "ghost")
    with pytest.raises(PluginError, match="not found"):
        load_plugin(tmp_path / "missing.py", "ghost")


def test_relative_plugin_paths_fall_back_to_the_checkout(repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_plugin("examples/l1_resample.py", [repo_root]) == Path(repo_root) / "examples" / "l1_resample.py"
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "l1_resample.py").write_text("")
    assert resolve_plugin("examples/l1_resample.py", [repo_root]) == Path("examples/l1_resample.py")


def test_example_registers_and_resamples_dead_latents(example):
    import sae_lens
    from sae_lens.saes.sae import TrainStepInput

    assert load_plugin(example.__file__, "l1_resample") is example  # importing twice is harmless
    sae = build_training_sae("l1_resample", 8, 16, {"l1_coefficient": 1.0, "resample_every": 5}, seed=0)
    assert isinstance(sae, example.L1ResampleTrainingSAE)
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    dead = torch.zeros(16, dtype=torch.bool)
    dead[[1, 7, 11]] = True
    before = {k: v.detach().clone() for k, v in sae.state_dict().items()}
    # not a resampling step: nothing changes
    sae.training_forward_pass(TrainStepInput(x, {"l1": 1.0}, dead, n_training_steps=3, is_logging_step=False))
    assert torch.equal(sae.W_dec, before["W_dec"])
    sae.training_forward_pass(TrainStepInput(x, {"l1": 1.0}, dead, n_training_steps=5, is_logging_step=False))
    alive = ~dead
    assert int(sae.n_resampled) == 3 and int(sae.n_resample_events) == 1
    assert torch.equal(sae.W_dec[alive], before["W_dec"][alive])  # alive latents untouched
    assert torch.equal(sae.W_enc[:, alive], before["W_enc"][:, alive])
    assert not torch.equal(sae.W_dec[dead], before["W_dec"][dead])
    assert torch.all(sae.b_enc[dead] == 0)
    # decoder rows of resampled latents point at inputs of the batch (after b_dec = 0)
    unit_x = x / x.norm(dim=-1, keepdim=True)
    unit_d = sae.W_dec[dead] / sae.W_dec[dead].norm(dim=-1, keepdim=True)
    assert torch.allclose((unit_d @ unit_x.T).max(dim=-1).values, torch.ones(3), atol=1e-5)
    # encoder columns: same direction, 0.2 × the mean alive encoder norm
    enc = sae.W_enc[:, dead].T
    assert torch.allclose(enc.norm(dim=-1), 0.2 * before["W_enc"][:, alive].norm(dim=0).mean().expand(3), rtol=1e-5)
    # resample_until stops it
    late = build_training_sae("l1_resample", 8, 16, {"l1_coefficient": 1.0, "resample_every": 5, "resample_until": 5}, 0)
    late.training_forward_pass(TrainStepInput(x, {"l1": 1.0}, dead, n_training_steps=5, is_logging_step=False))
    assert int(late.n_resampled) == 0


def test_example_saves_and_loads_as_its_architecture(example, tmp_path):
    import sae_lens

    sae = build_training_sae("l1_resample", 8, 16, {"l1_coefficient": 1.0}, seed=0)
    sae.save_inference_model(str(tmp_path / "sae"))
    loaded = sae_lens.SAE.load_from_disk(str(tmp_path / "sae"))
    assert isinstance(loaded, example.L1ResampleSAE)
    x = torch.randn(4, 8)
    assert torch.allclose(loaded.encode(x), sae.encode(x), atol=1e-6)


def test_example_rejects_bad_config(example):
    with pytest.raises(ValueError, match="resample_every"):
        build_training_sae("l1_resample", 8, 16, {"resample_every": 0}, seed=0)
