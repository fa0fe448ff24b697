"""The paper's TopK (architecture ``topk_paper``): aen's init, plain top-k of the ReLU codes,
unit decoder rows re-projected after every step, the authors' MSE with no AuxK, save/load."""

import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import sae_lens
from aenbench.saes.aen import _authors_init
from aenbench.saes.topk_paper import TopKPaperSAE, TopKPaperTrainingSAE, TopKPaperTrainingSAEConfig
from aenbench.synthetic.spiked import SpikedStream, spiked_dictionary
from aenbench.training import build_training_sae, train_sae
from sae_lens.saes.sae import TrainStepInput

N, M = 8, 32


def _train(steps=20, k=3):
    d_MN = spiked_dictionary(N, M, 0.3, seed=0)
    sae = build_training_sae("topk_paper", N, M, dict(k=k), seed=0)
    return train_sae(sae, SpikedStream(d_MN, 2, 32, seed=0), steps=steps, batch_size=32, lr=1e-2,
                     dead_window_steps=5)


def _hand_codes(sae, x_BN):
    """TopK_k(ReLU((x − b_dec) W_enc + b_enc)), by hand."""
    pre_BM = (x_BN - sae.b_dec) @ sae.W_enc + sae.b_enc
    relu_BM = pre_BM.relu()
    top = relu_BM.topk(sae.cfg.k, dim=-1)
    return torch.zeros_like(relu_BM).scatter(-1, top.indices, top.values), pre_BM


def test_init_is_aens_authors_init_with_unit_untied_rows():
    sae = build_training_sae("topk_paper", N, M, dict(k=4), seed=3)
    aen = build_training_sae("aen", N, M, {}, seed=3)
    torch.manual_seed(3)
    ref = nn.Module()
    _authors_init(ref, N, M, torch.float32, torch.device("cpu"))
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(sae, name), getattr(aen, name)), name
        assert torch.equal(getattr(sae, name), getattr(ref, name)), name
    norms_M = sae.W_dec.detach().norm(dim=-1)
    assert torch.allclose(norms_M, torch.ones(M), atol=1e-6)
    assert not torch.allclose(sae.W_enc, sae.W_dec.T)  # no tied init (sae-lens's topk ties them)
    assert sae.b_enc.abs().min() > 0  # nn.Linear's uniform bias, not sae-lens's zeros
    other = build_training_sae("topk_paper", N, M, dict(k=4), seed=4)
    assert not torch.equal(sae.W_dec, other.W_dec)


def test_encode_is_topk_of_relu_preactivations():
    k = 16  # about half of the 32 pre-activations are positive: both cases below occur
    sae = build_training_sae("topk_paper", N, M, dict(k=k), seed=0)
    x_BN = torch.randn(256, N, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        acts_BM = sae.encode(x_BN)
        hand_BM, pre_BM = _hand_codes(sae, x_BN)
    assert torch.equal(acts_BM, hand_BM)
    n_pos_B = (pre_BM > 0).sum(dim=-1)
    nnz_B = (acts_BM != 0).sum(dim=-1)
    full = n_pos_B >= k
    assert full.any() and (~full).any()  # both cases occur in this batch
    assert torch.equal(nnz_B[full], torch.full_like(nnz_B[full], k))
    assert torch.equal(nnz_B[~full], n_pos_B[~full])  # fewer positives: only those, no negatives
    assert (acts_BM >= 0).all()
    # kept codes are the pre-activations themselves (no rescaling by decoder norms)
    kept = acts_BM != 0
    assert torch.equal(acts_BM[kept], pre_BM[kept])


def test_training_keeps_unit_decoder_rows_after_every_step():
    sae = build_training_sae("topk_paper", N, M, dict(k=3), seed=0)
    W_dec0 = sae.W_dec.detach().clone()
    res = _train()
    assert res.steps == 20
    assert res.sae.projected_after_step  # train_sae's post-step hook is in place
    norms_M = res.sae.W_dec.detach().norm(dim=-1)
    assert (norms_M - 1).abs().max() <= 1e-6
    assert (res.sae.W_dec.detach() - W_dec0).abs().max() > 1e-3  # it did train


def test_projection_also_without_aenbenchs_hook():
    """Driven by a plain sae-lens SAETrainer (no post-step hook) the rows are projected before
    each loss, so the loss always sees unit rows."""
    sae = build_training_sae("topk_paper", N, M, dict(k=3), seed=0)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, M).unsqueeze(-1))
    x_BN = torch.randn(16, N, generator=torch.Generator().manual_seed(0))
    sae.training_forward_pass(TrainStepInput(x_BN, {}, None, 0, False))
    assert torch.allclose(sae.W_dec.detach().norm(dim=-1), torch.ones(M), atol=1e-6)


def test_save_load_round_trip_in_a_fresh_process(tmp_path):
    res = _train()
    sae_dir = tmp_path / "sae"
    res.sae.save_inference_model(str(sae_dir))
    x = torch.randn(64, N, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        acts = res.sae.encode(x)
        recon = res.sae.decode(acts)
    assert ((acts != 0).sum(dim=-1) <= 3).all() and (acts != 0).sum() > 0
    save_file({"x": x, "acts": acts, "recon": recon}, str(tmp_path / "expected.safetensors"))
    script = textwrap.dedent(f"""
        import torch, aenbench.saes, sae_lens
        from safetensors.torch import load_file, save_file
        sae = sae_lens.SAE.load_from_disk({str(sae_dir)!r})
        assert type(sae).__name__ == "TopKPaperSAE", type(sae)
        assert sae.cfg.architecture() == "topk_paper" and sae.cfg.k == 3
        exp = load_file({str(tmp_path / "expected.safetensors")!r})
        with torch.no_grad():
            acts = sae.encode(exp["x"]); recon = sae.decode(acts)
        save_file({{"acts": acts, "recon": recon}}, {str(tmp_path / "got.safetensors")!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    exp = load_file(str(tmp_path / "expected.safetensors"))
    got = load_file(str(tmp_path / "got.safetensors"))
    for key in ("acts", "recon"):
        assert torch.equal(exp[key], got[key]), key
    loaded = sae_lens.SAE.load_from_disk(str(sae_dir))
    assert isinstance(loaded, TopKPaperSAE)
    assert torch.equal(loaded.W_dec, res.sae.W_dec.detach())  # saved as is: no norm folding
    assert loaded.cfg.metadata.training_architecture == "topk_paper"


@pytest.mark.parametrize("via_builder", [True, False])
def test_loss_is_the_authors_mse_alone(via_builder):
    """No AuxK, even with every latent dead (where sae-lens's topk would add one)."""
    cfg = TopKPaperTrainingSAEConfig(d_in=N, d_sae=M, k=2)
    if via_builder:  # aenbench's path (its zero-AuxK skip may add an exact-0 term)
        sae = build_training_sae("topk_paper", N, M, dict(k=2), seed=0)
    else:
        torch.manual_seed(0)
        sae = TopKPaperTrainingSAE(cfg)
    x_BN = torch.randn(16, N, generator=torch.Generator().manual_seed(2)) * 3
    out = sae.training_forward_pass(TrainStepInput(x_BN, {}, torch.ones(M, dtype=torch.bool), 100, False))
    with torch.no_grad():
        hand_BM, _ = _hand_codes(sae, x_BN)
        recon_BN = hand_BM @ sae.W_dec + sae.b_dec
        mse = ((x_BN - recon_BN) ** 2).sum() / (16 * N)  # 1/(B·n) Σ_b ‖x_b − x̂_b‖²
    assert torch.allclose(out.loss, mse, rtol=1e-6, atol=0)
    assert torch.allclose(out.losses["mse_loss"], mse, rtol=1e-6, atol=0)
    assert mse > 0.1
    extra = {k: float(v) for k, v in out.losses.items() if k != "mse_loss"}
    assert all(v == 0.0 for v in extra.values()), extra
    if not via_builder:
        assert set(out.losses) == {"mse_loss"}
    # the sae-lens convention sums the MSE over the n dims: n times the authors' loss
    torch.manual_seed(0)
    summed = TopKPaperTrainingSAE(TopKPaperTrainingSAEConfig(d_in=N, d_sae=M, k=2, loss_convention="sae_lens"))
    summed.load_state_dict(sae.state_dict())
    out_s = summed.training_forward_pass(TrainStepInput(x_BN, {}, None, 100, False))
    assert torch.allclose(out_s.loss, N * mse, rtol=1e-6, atol=0)


@pytest.mark.parametrize("bad", [dict(aux_loss_coefficient=1 / 32), dict(decoder_init_norm=0.1),
                                 dict(rescale_acts_by_decoder_norm=True), dict(loss_convention="mean"),
                                 dict(k=0), dict(k=M + 1)])
def test_config_rejects_what_the_paper_does_not_do(bad):
    with pytest.raises(ValueError, match="invalid topk_paper config"):
        TopKPaperTrainingSAEConfig(d_in=N, d_sae=M, **{"k": 2, **bad})


def test_registered_under_topk_paper():
    from sae_lens.registry import get_sae_class, get_sae_training_class

    assert get_sae_training_class("topk_paper") == (TopKPaperTrainingSAE, TopKPaperTrainingSAEConfig)
    assert get_sae_class("topk_paper")[0] is TopKPaperSAE
    cfg = build_training_sae("topk_paper", N, M, dict(k=2), seed=0).cfg
    assert (cfg.aux_loss_coefficient, cfg.rescale_acts_by_decoder_norm, cfg.decoder_init_norm,
            cfg.loss_convention) == (0.0, False, None, "authors")
