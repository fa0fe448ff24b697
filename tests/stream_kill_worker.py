"""Worker of tests/test_llm_stream.py's kill -9 test: trains a small grid (a stack of two AEN SAEs
and a sae-lens TopK) in lockstep from the model stream of a streamed harvest on the test's
random-init Llama, checkpointing, and saves the final weights.

    python tests/stream_kill_worker.py ACTS TOKENIZER_DIR CKPT_DIR OUT.safetensors [--slow]
"""
import sys
import time

import torch
from safetensors.torch import save_file

torch.set_num_threads(1)


def main(acts, tok_dir, ckpt, out, slow):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from aenbench.llm.models import load_model
    from aenbench.llm.track import streamed_training_stream
    from aenbench.lockstep import Member, train_lockstep
    from aenbench.training import build_training_sae

    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    loaded = load_model("llama-3.1-8b", hf_model=LlamaForCausalLM(cfg), tokenizer=tok)
    aen = {"adaptive": True, "l1_coefficient": 0.01, "l2_coefficient": 0.001, "warmup_steps": 10, "ramp_steps": 5,
           "beta": 0.9, "decoder_norm": "project", "loss_convention": "authors"}
    groups = [("stacked", [build_training_sae("aen", 32, 64, aen, 0) for _ in range(2)], ["a", "b"]),
              ("per_sae", [build_training_sae("topk", 32, 64, {"k": 4}, 0)], ["t"])]
    if slow:  # so that the kill lands mid-run
        real = Member.step
        Member.step = lambda self, batch: (time.sleep(0.02), real(self, batch))[1]
    stream = streamed_training_stream(loaded, acts, {"batch_size": 32, "buffer_tokens": 96}, seed=0)
    res = train_lockstep(groups, stream, steps=120, batch_size=32, lr=1e-3, dead_window_steps=10,
                         auxk_dead_window_steps=10, device="cpu", checkpoint_dir=ckpt if ckpt != "-" else None,
                         checkpoint_every=10, run_fingerprint="kill-test", max_grad_norm=1.0)
    tensors = {f"{name}.{k}": v.detach().contiguous() for _, saes, names in groups
               for name, sae in zip(names, saes) for k, v in sae.state_dict().items()}
    save_file(tensors, out)
    print(f"resumed_at {res.resumed_at}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5], slow="--slow" in sys.argv)
