"""AEN through sae-lens's own SAETrainer: decoder projection and the save/load round trip."""

import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

import sae_lens
from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary
from aenbench.training import build_training_sae, train_sae


def _train(decoder_norm, steps=20, adaptive=True):
    d_MN = spiked_dictionary(8, 32, 0.3, seed=0)
    sae = build_training_sae(
        "aen", 8, 32,
        dict(adaptive=adaptive, l1_coefficient=0.01, l2_coefficient=1e-3, warmup_steps=5, ramp_steps=5,
             beta=0.9, decoder_norm=decoder_norm),
        seed=0,
    )
    res = train_sae(sae, SpikedStream(d_MN, 2, 32, seed=0), steps=steps, batch_size=32, lr=1e-2,
                    dead_window_steps=5)
    return res


def test_project_keeps_unit_decoder_rows_after_steps():
    res = _train("project")
    norms = res.sae.W_dec.detach().norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)


def test_weight_penalty_leaves_decoder_free():
    res = _train("weight_penalty")
    norms = res.sae.W_dec.detach().norm(dim=-1)
    assert (norms - 1).abs().max() > 1e-3


def test_adaptive_state_advances_with_training():
    res = _train("project", steps=30)
    assert int(res.sae.weights_step) == 29
    assert not torch.allclose(res.sae.ema_activity, torch.ones(32))
    assert not torch.allclose(res.sae.adaptive_weights, torch.ones(32))  # past T_w + R = 10


def test_unknown_architecture_lists_registered_ones():
    with pytest.raises(ValueError, match="registered: .*aen.*topk"):
        build_training_sae("aenn", 4, 8, {}, seed=0)


def test_bad_hyperparameter_name_lists_allowed_fields():
    with pytest.raises(ValueError, match="Allowed fields: .*l1_coefficient"):
        build_training_sae("aen", 4, 8, {"lambda1": 0.1}, seed=0)


def test_save_load_round_trip_in_a_fresh_process(tmp_path):
    res = _train("project")
    sae_dir = tmp_path / "sae"
    res.sae.save_inference_model(str(sae_dir))
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        acts = res.sae.encode(x)
        recon = res.sae.decode(acts)
    save_file({"x": x, "acts": acts, "recon": recon, "ema": res.sae.ema_activity.clone(),
               "w_tilde": res.sae.adaptive_weights.clone()}, str(tmp_path / "expected.safetensors"))
    script = textwrap.dedent(f"""
        import torch, aenbench.saes, sae_lens
        from safetensors.torch import load_file, save_file
        sae = sae_lens.SAE.load_from_disk({str(sae_dir)!r})
        assert type(sae).__name__ == "AENSAE", type(sae)
        exp = load_file({str(tmp_path / "expected.safetensors")!r})
        with torch.no_grad():
            acts = sae.encode(exp["x"]); recon = sae.decode(acts)
        save_file({{"acts": acts, "recon": recon, "ema": sae.ema_activity, "w_tilde": sae.adaptive_weights}},
                  {str(tmp_path / "got.safetensors")!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    exp = load_file(str(tmp_path / "expected.safetensors"))
    got = load_file(str(tmp_path / "got.safetensors"))
    for key in ("acts", "recon", "ema", "w_tilde"):
        assert torch.equal(exp[key], got[key]), key
    assert sae_lens.SAE.load_from_disk(str(sae_dir)).cfg.architecture() == "aen"


@pytest.mark.parametrize("architecture", ["topk", "batchtopk"])
def test_skipping_a_zero_auxk_loss_changes_no_bit(architecture):
    """TopK without AuxK: the skipped AuxK pass (coefficient 0) leaves every weight bit-identical,
    on a teacher where many latents are dead so the AuxK path really runs in the reference."""
    from aenbench.training import skip_zero_auxk

    d_MN = spiked_dictionary(8, 64, 0.7, seed=0)
    params = dict(k=2, aux_loss_coefficient=0.0)
    results = []
    for skip in (True, False):
        sae = build_training_sae(architecture, 8, 64, params, seed=0)
        if not skip:  # undo the instance override: sae-lens's own calculate_aux_loss again
            del sae.calculate_aux_loss
        res = train_sae(sae, SpikedStream(d_MN, 2, 32, seed=0), steps=40, batch_size=32, lr=1e-2,
                        dead_window_steps=5, auxk_dead_window_steps=2)
        results.append(res)
    assert results[1].dead_mask_M.any()  # dead latents exist, so the unskipped AuxK path ran
    for name, t in results[0].sae.state_dict().items():
        assert torch.equal(t, results[1].sae.state_dict()[name]), name
    with_aux = build_training_sae(architecture, 8, 64, dict(k=2, aux_loss_coefficient=1 / 32), seed=0)
    assert not skip_zero_auxk(with_aux)
    assert "calculate_aux_loss" not in vars(with_aux)
