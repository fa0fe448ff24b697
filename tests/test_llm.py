"""LLM track on randomly initialised models built from configs (no download).

The hub-model code paths (pythia-70m-deduped, llama-3.1-8b) run through the same
``load_model`` → ``TransformerBridge`` → harvest/splice code as the offline default.
"""

import pytest
import torch
from safetensors.torch import load_file

from aenbench.llm import harvest as H
from aenbench.llm.evaluate import decoder_coherence, downstream_metrics, latent_stats
from aenbench.llm.models import hook_layer, load_model, model_spec
from aenbench.llm.resources import brown_plain_text


def tiny_llama(vocab):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg)


def tiny_neox(vocab):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                        num_attention_heads=4, max_position_embeddings=64)
    return GPTNeoXForCausalLM(cfg)


@pytest.fixture(scope="module")
def llama(word_tokenizer):
    return load_model("llama-3.1-8b", hf_model=tiny_llama(len(word_tokenizer)), tokenizer=word_tokenizer)


def spec_for(model, hook="blocks.1.hook_resid_post", **kw):
    base = dict(model=model, hook=hook, context_size=16, n_train_contexts=12, n_eval_contexts=4,
                shard_contexts=4, batch_contexts=4, dtype="float32", seed=0)
    base.update(kw)
    return H.HarvestSpec(**base)


@pytest.mark.parametrize("name, builder", [("pythia-70m-deduped", tiny_neox), ("llama-3.1-8b", tiny_llama)])
def test_hub_model_paths_harvest_on_random_init_models(name, builder, word_tokenizer, corpus, tmp_path):
    loaded = load_model(name, hf_model=builder(len(word_tokenizer)), tokenizer=word_tokenizer)
    assert loaded.spec.hub_name == model_spec(name).hub_name
    manifest = H.harvest(loaded, spec_for(name, corpus=corpus), tmp_path)
    assert manifest["d"] == 32 and manifest["hook"] == "blocks.1.hook_resid_post"
    train = H.load_split(tmp_path, "train")
    assert train["acts"].shape == (manifest["count"]["train"], 32)
    assert torch.isfinite(train["acts"]).all()
    # nothing at position 0 and no separator token was kept
    assert (train["position"] > 0).all()
    assert (train["token_ids"] != loaded.separator_id).all()


def test_shards_round_trip_bit_exactly(llama, corpus, tmp_path):
    manifest = H.harvest(llama, spec_for("llama-3.1-8b", corpus=corpus), tmp_path)
    eval_tokens = load_file(str(tmp_path / "eval_contexts.safetensors"))["tokens"].long()
    with torch.inference_mode():
        _, cache = llama.bridge.run_with_cache(eval_tokens, names_filter=["blocks.1.hook_resid_post"], stop_at_layer=2)
    direct = cache["blocks.1.hook_resid_post"][H.keep_mask(eval_tokens, llama.separator_id)]
    stored = H.load_split(tmp_path, "eval")["acts"]
    assert stored.dtype == torch.float32
    assert torch.equal(stored, direct)  # bit-exact
    assert manifest["count"]["eval"] == len(direct)


def test_resume_rebuilds_only_unfinished_shards(llama, corpus, tmp_path, monkeypatch):
    spec = spec_for("llama-3.1-8b", corpus=corpus)
    first = H.harvest(llama, spec, tmp_path)
    (tmp_path / "train" / "shard_00001.json").unlink()  # as if killed before the sidecar was written
    calls = []
    orig = llama.bridge.run_with_cache
    monkeypatch.setattr(llama.bridge, "run_with_cache", lambda *a, **k: calls.append(1) or orig(*a, **k))
    second = H.harvest(llama, spec, tmp_path)
    assert len(calls) == 1  # one batch: the one unfinished shard (4 contexts, batch 4)
    assert second["shards"] == first["shards"]
    assert second["excluded_norms"] == first["excluded_norms"]


def test_corrupted_or_truncated_shard_is_rejected_by_name(llama, corpus, tmp_path):
    H.harvest(llama, spec_for("llama-3.1-8b", corpus=corpus), tmp_path)
    shard = tmp_path / "train" / "shard_00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(H.ShardError, match="shard_00002.safetensors is corrupted"):
        H.load_split(tmp_path, "train")
    shard.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(H.ShardError, match="shard_00002"):
        next(H.activation_stream(tmp_path, batch_size=8, buffer_tokens=16))


def identity_sae(d):
    """h = ReLU([x, −x]), x̂ = h [I; −I] = x: an exact identity through a ReLU SAE."""
    import aenbench.saes  # noqa: F401
    from aenbench.saes.aen import AENSAE, AENSAEConfig

    sae = AENSAE(AENSAEConfig(d_in=d, d_sae=2 * d, normalize_activations="constant_norm_rescale"))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
    return sae


def test_splice_with_normalisation_round_trip_leaves_logits_unchanged(llama, word_tokenizer):
    sae = identity_sae(32)
    tokens = torch.randint(2, len(word_tokenizer), (3, 16), generator=torch.Generator().manual_seed(1))
    tokens[:, 7] = 0  # a separator
    with torch.inference_mode():
        clean = llama.bridge(tokens)
        x = torch.randn(5, 32) * 100
        assert torch.allclose(sae(x), x, rtol=1e-5, atol=1e-3)  # normalise → SAE → un-normalise
        spliced = llama.bridge.run_with_hooks(
            tokens, fwd_hooks=[("blocks.1.hook_resid_post", lambda a, hook: sae(a))])
    assert torch.allclose(spliced, clean, atol=1e-4)
    out = downstream_metrics(llama.bridge, {"id": sae}, "blocks.1.hook_resid_post", tokens, 0,
                             torch.zeros(32), batch_contexts=2)["id"]
    assert out["ce_loss_with_sae"] == pytest.approx(out["ce_loss_clean"], abs=1e-4)
    assert out["kl_with_sae"] == pytest.approx(0.0, abs=1e-5)
    assert out["ce_recovered_zero"] == pytest.approx(1.0, abs=1e-3)
    assert out["ce_recovered_mean"] == pytest.approx(1.0, abs=1e-3)


def test_splice_without_inverting_the_normalisation_changes_the_model(llama, word_tokenizer):
    """The authors' defect: an SAE trained on normalised inputs but fed raw activations."""
    sae = identity_sae(32)
    tokens = torch.randint(2, len(word_tokenizer), (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        clean = llama.bridge(tokens)
        # rescale to √d without undoing it: what a splice that skips the inverse hands the model
        broken = llama.bridge.run_with_hooks(
            tokens, fwd_hooks=[("blocks.1.hook_resid_post", lambda a, hook: H.normalise(a))])
    assert (broken - clean).abs().max() > 1e-2


def test_our_ce_score_matches_sae_lens_run_evals(llama, word_tokenizer):
    from aenbench.llm.track import crosscheck_ce
    from aenbench.saes.aen import AENSAE, AENSAEConfig

    torch.manual_seed(0)
    sae = AENSAE(AENSAEConfig(d_in=32, d_sae=64, normalize_activations="constant_norm_rescale"))
    tokens = torch.randint(2, len(word_tokenizer), (4, 16), generator=torch.Generator().manual_seed(3))
    out = crosscheck_ce(llama, sae, tokens, "blocks.1.hook_resid_post", 0)
    assert abs(out["ours_ce_loss_score"] - out["sae_lens_ce_loss_score"]) < 1e-3
    assert out["ours_ce_loss_score"] != pytest.approx(1.0, abs=1e-3)  # a random SAE is not lossless


def test_pack_contexts_uses_separators_and_is_seeded():
    docs = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    a = H.pack_contexts(docs, context_size=4, separator_id=0, n_contexts=2, seed=0)
    b = H.pack_contexts(docs, context_size=4, separator_id=0, n_contexts=2, seed=0)
    assert torch.equal(a, b) and a.shape == (2, 4)
    assert (a == 0).sum() >= 1
    with pytest.raises(ValueError, match="fewer than"):
        H.pack_contexts(docs, context_size=8, separator_id=0, n_contexts=5, seed=0)
    mask = H.keep_mask(torch.tensor([[5, 0, 6, 7]]), 0)
    assert mask.tolist() == [[False, False, True, True]]


def test_normalise_to_sqrt_d():
    x = torch.randn(10, 49) * 37
    assert torch.allclose(H.normalise(x).norm(dim=-1), torch.full((10,), 7.0))


def test_latent_stats_and_coherence_known_answers():
    acts = torch.zeros(10, 20)
    acts[:, 0] = 1.0  # one latent fires always
    stats = latent_stats(acts)
    assert stats["firing_entropy_bits"] == 0.0 and stats["top10pct_mass"] == 1.0
    uniform = latent_stats(torch.ones(4, 16))
    assert uniform["firing_entropy_bits"] == pytest.approx(4.0) and uniform["top10pct_mass"] == pytest.approx(2 / 16)
    coh = decoder_coherence(torch.eye(5))
    assert coh["coherence_max"] == 0.0


def test_brown_tags_are_stripped():
    tagged = "\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.\n\n\tIt/pps did/dod n't/* ./."
    assert brown_plain_text(tagged) == 'The jury said " no ".\n\nIt didn\'t.'


def test_hook_layer_and_registry_errors():
    assert hook_layer("blocks.15.hook_resid_post") == 15
    with pytest.raises(ValueError, match="blocks"):
        hook_layer("resid_post")
    with pytest.raises(ValueError, match="registered models: .*smollm2-135m"):
        model_spec("gpt-5")
