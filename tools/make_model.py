#!/usr/bin/python3
"""Writes a random-weight Llama-family model folder in the Hugging Face layout (config, safetensors)."""

import argparse
import json
import math
import os
import struct
import sys
import zlib

import numpy as np

# Each shape lists the config fields that differ between shapes; the rest is filled in by
# BuildConfig. Token ids are small for tiny vocabularies and the real ones for real shapes.
LLAMA3_TINY_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}
LLAMA3_1B_SCALING = {
    "rope_type": "llama3",
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}

SHAPES = {
    "tiny-llama": dict(
        arch="LlamaForCausalLM", model_type="llama", hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=160,
        vocab_size=300, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=256,
        tie_word_embeddings=False, rope_scaling=LLAMA3_TINY_SCALING,
        bos_token_id=1, eos_token_id=2, gen_eos=[2, 3],
        sampling=dict(temperature=0.6, top_p=0.9, top_k=50)),
    "tiny-llama2": dict(
        arch="LlamaForCausalLM", model_type="llama", hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, head_dim=16, intermediate_size=128,
        vocab_size=256, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=256,
        tie_word_embeddings=True, rope_scaling=None,
        bos_token_id=1, eos_token_id=2, gen_eos=2,
        sampling=dict(temperature=0.6, top_p=0.9, top_k=50)),
    "tiny-qwen3": dict(
        arch="Qwen3ForCausalLM", model_type="qwen3", hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, intermediate_size=160,
        vocab_size=300, rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=256,
        tie_word_embeddings=True, rope_scaling=None,
        bos_token_id=1, eos_token_id=2, gen_eos=[2, 1],
        sampling=dict(temperature=0.6, top_p=0.95, top_k=20)),
    "tiny-qwen2": dict(
        arch="Qwen2ForCausalLM", model_type="qwen2", hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=160,
        vocab_size=300, rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=256,
        tie_word_embeddings=False, rope_scaling=None,
        bos_token_id=1, eos_token_id=2, gen_eos=[2, 1],
        sampling=dict(temperature=0.7, top_p=0.8, top_k=20)),
    "tiny-mistral": dict(
        arch="MistralForCausalLM", model_type="mistral", hidden_size=64, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, head_dim=8, intermediate_size=128,
        vocab_size=256, rope_theta=1000000.0, rms_norm_eps=1e-5, max_position_embeddings=256,
        tie_word_embeddings=False, rope_scaling=None,
        bos_token_id=1, eos_token_id=2, gen_eos=2,
        sampling=dict(temperature=0.7, top_p=1.0, top_k=50)),
    # Widths that are multiples of 256, the block of the GGUF K-quant types.
    "small-llama": dict(
        arch="LlamaForCausalLM", model_type="llama", hidden_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, intermediate_size=512,
        vocab_size=512, rope_theta=500000.0, rms_norm_eps=1e-5, max_position_embeddings=256,
        tie_word_embeddings=False, rope_scaling=LLAMA3_TINY_SCALING,
        bos_token_id=1, eos_token_id=2, gen_eos=[2, 3],
        sampling=dict(temperature=0.6, top_p=0.9, top_k=50)),
    "small-qwen3": dict(
        arch="Qwen3ForCausalLM", model_type="qwen3", hidden_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, intermediate_size=768,
        vocab_size=512, rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=256,
        tie_word_embeddings=True, rope_scaling=None,
        bos_token_id=1, eos_token_id=2, gen_eos=[2, 1],
        sampling=dict(temperature=0.6, top_p=0.95, top_k=20)),
    # Mixtures of experts. tiny-qwen3moe has a dense layer (mlp_only_layers) between sparse
    # ones and 12 experts, so ep can be 2, 3 or 4; small-* widths suit every GGUF type.
    "tiny-qwen3moe": dict(
        arch="Qwen3MoeForCausalLM", model_type="qwen3_moe", hidden_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, intermediate_size=160,
        moe_intermediate_size=32, num_experts=12, num_experts_per_tok=4, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[1],
        vocab_size=300, rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=256,
        tie_word_embeddings=False, rope_scaling=None,
        bos_token_id=1, eos_token_id=2, gen_eos=[2, 1],
        sampling=dict(temperature=0.7, top_p=0.8, top_k=20)),
    "tiny-mixtral": dict(
        arch="MixtralForCausalLM", model_type="mixtral", hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=96,
        num_local_experts=4, num_experts_per_tok=2,
        vocab_size=256, rope_theta=1000000.0, rms_norm_eps=1e-5, max_position_embeddings=256,
        tie_word_embeddings=False, rope_scaling=None,
        bos_token_id=1, eos_token_id=2, gen_eos=2,
        sampling=dict(temperature=0.7, top_p=1.0, top_k=50)),
    "small-qwen3moe": dict(
        arch="Qwen3MoeForCausalLM", model_type="qwen3_moe", hidden_size=256,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
        intermediate_size=512, moe_intermediate_size=256, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
        vocab_size=512, rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=256,
        tie_word_embeddings=False, rope_scaling=None,
        bos_token_id=1, eos_token_id=2, gen_eos=[2, 1],
        sampling=dict(temperature=0.7, top_p=0.8, top_k=20)),
    "small-mixtral": dict(
        arch="MixtralForCausalLM", model_type="mixtral", hidden_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, intermediate_size=256,
        num_local_experts=4, num_experts_per_tok=2,
        vocab_size=512, rope_theta=1000000.0, rms_norm_eps=1e-5, max_position_embeddings=256,
        tie_word_embeddings=False, rope_scaling=None,
        bos_token_id=1, eos_token_id=2, gen_eos=2,
        sampling=dict(temperature=0.7, top_p=1.0, top_k=50)),
    # Qwen3-30B-A3B's layer shape (12 of its 48 layers), for speed measurements.
    "qwen3-30b-a3b-12l": dict(
        arch="Qwen3MoeForCausalLM", model_type="qwen3_moe", hidden_size=2048,
        num_hidden_layers=12, num_attention_heads=32, num_key_value_heads=4, head_dim=128,
        intermediate_size=6144, moe_intermediate_size=768, num_experts=128,
        num_experts_per_tok=8, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
        vocab_size=151936, rope_theta=1000000.0, rms_norm_eps=1e-6,
        max_position_embeddings=40960, tie_word_embeddings=False, rope_scaling=None,
        bos_token_id=151643, eos_token_id=151645, gen_eos=[151645, 151643],
        sampling=dict(temperature=0.6, top_p=0.95, top_k=20)),
    "qwen3-0.6b": dict(
        arch="Qwen3ForCausalLM", model_type="qwen3", hidden_size=1024, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, intermediate_size=3072,
        vocab_size=151936, rope_theta=1000000.0, rms_norm_eps=1e-6,
        max_position_embeddings=40960, tie_word_embeddings=True, rope_scaling=None,
        bos_token_id=151643, eos_token_id=151645, gen_eos=[151645, 151643],
        sampling=dict(temperature=0.6, top_p=0.95, top_k=20)),
    "llama-3.2-1b": dict(
        arch="LlamaForCausalLM", model_type="llama", hidden_size=2048, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, intermediate_size=8192,
        vocab_size=128256, rope_theta=500000.0, rms_norm_eps=1e-5,
        max_position_embeddings=131072, tie_word_embeddings=True, rope_scaling=LLAMA3_1B_SCALING,
        bos_token_id=128000, eos_token_id=128001, gen_eos=[128001, 128008, 128009],
        sampling=dict(temperature=0.6, top_p=0.9, top_k=50)),
}

TORCH_DTYPE = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}
ST_DTYPE = {"bf16": "BF16", "f16": "F16", "f32": "F32"}
ELEM_BYTES = {"bf16": 2, "f16": 2, "f32": 4}

# Rows are generated in chunks of about this many elements so that a 150M-element
# embedding never needs more than a few hundred MB of temporaries.
CHUNK_ELEMS = 1 << 22


def BuildConfig(s, dtype):
    """config.json contents for shape s, in the field set Hugging Face writes."""
    c = {
        "architectures": [s["arch"]],
        "model_type": s["model_type"],
        "hidden_size": s["hidden_size"],
        "intermediate_size": s["intermediate_size"],
        "num_hidden_layers": s["num_hidden_layers"],
        "num_attention_heads": s["num_attention_heads"],
        "num_key_value_heads": s["num_key_value_heads"],
        "head_dim": s["head_dim"],
        "vocab_size": s["vocab_size"],
        "hidden_act": "silu",
        "rms_norm_eps": s["rms_norm_eps"],
        "rope_theta": s["rope_theta"],
        "rope_scaling": s["rope_scaling"],
        "max_position_embeddings": s["max_position_embeddings"],
        "tie_word_embeddings": s["tie_word_embeddings"],
        "torch_dtype": TORCH_DTYPE[dtype],
        "bos_token_id": s["bos_token_id"],
        "eos_token_id": s["eos_token_id"],
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "use_cache": True,
        "transformers_version": "4.51.0",
    }
    mt = s["model_type"]
    if mt == "llama":
        c.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
    elif mt == "mistral":
        c.update(sliding_window=None)
    elif mt == "qwen2":
        c.update(attention_bias=True, use_sliding_window=False, sliding_window=None,
                 max_window_layers=s["num_hidden_layers"])
    elif mt == "qwen3":
        c.update(attention_bias=False, use_sliding_window=False, sliding_window=None,
                 max_window_layers=s["num_hidden_layers"])
    elif mt == "qwen3_moe":
        c.update(attention_bias=False, use_sliding_window=False, sliding_window=None,
                 max_window_layers=s["num_hidden_layers"],
                 moe_intermediate_size=s["moe_intermediate_size"], num_experts=s["num_experts"],
                 num_experts_per_tok=s["num_experts_per_tok"],
                 norm_topk_prob=s["norm_topk_prob"],
                 decoder_sparse_step=s["decoder_sparse_step"],
                 mlp_only_layers=s["mlp_only_layers"], output_router_logits=False,
                 router_aux_loss_coef=0.001)
    elif mt == "mixtral":
        c.update(sliding_window=None, num_local_experts=s["num_local_experts"],
                 num_experts_per_tok=s["num_experts_per_tok"], output_router_logits=False,
                 router_aux_loss_coef=0.02, router_jitter_noise=0.0)
    return c


def IsMoeLayer(s, i):
    """Whether layer i's FFN is a mixture of experts (Qwen3-MoE's rule; Mixtral: all)."""
    if s["model_type"] == "mixtral":
        return True
    if s["model_type"] != "qwen3_moe":
        return False
    return i not in s["mlp_only_layers"] and (i + 1) % s["decoder_sparse_step"] == 0


def BuildGenerationConfig(s):
    g = {
        "bos_token_id": s["bos_token_id"],
        "eos_token_id": s["gen_eos"],
        "do_sample": True,
        "transformers_version": "4.51.0",
    }
    g.update(s["sampling"])
    return g


def TensorList(s):
    """[(name, shape, kind)] in the order Hugging Face models declare them.

    kind is "w" (linear / embedding), "b" (bias), "n" (norm weight) or "r" (MoE router)."""
    D, F, V = s["hidden_size"], s["intermediate_size"], s["vocab_size"]
    H, Hk, Dh = s["num_attention_heads"], s["num_key_value_heads"], s["head_dim"]
    mt = s["model_type"]
    out = [("model.embed_tokens.weight", (V, D), "w")]
    for i in range(s["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out.append((p + "input_layernorm.weight", (D,), "n"))
        for proj, rows in (("q", H * Dh), ("k", Hk * Dh), ("v", Hk * Dh)):
            out.append((p + f"self_attn.{proj}_proj.weight", (rows, D), "w"))
            if mt == "qwen2":
                out.append((p + f"self_attn.{proj}_proj.bias", (rows,), "b"))
        out.append((p + "self_attn.o_proj.weight", (D, H * Dh), "w"))
        if mt in ("qwen3", "qwen3_moe"):
            out.append((p + "self_attn.q_norm.weight", (Dh,), "n"))
            out.append((p + "self_attn.k_norm.weight", (Dh,), "n"))
        out.append((p + "post_attention_layernorm.weight", (D,), "n"))
        if IsMoeLayer(s, i) and mt == "mixtral":
            E, Fe = s["num_local_experts"], F
            m = p + "block_sparse_moe."
            out.append((m + "gate.weight", (E, D), "r"))
            for e in range(E):
                out.append((m + f"experts.{e}.w1.weight", (Fe, D), "w"))
                out.append((m + f"experts.{e}.w2.weight", (D, Fe), "w"))
                out.append((m + f"experts.{e}.w3.weight", (Fe, D), "w"))
            continue
        if IsMoeLayer(s, i):
            E, Fe = s["num_experts"], s["moe_intermediate_size"]
            out.append((p + "mlp.gate.weight", (E, D), "r"))
            for e in range(E):
                for proj, shape in (("gate", (Fe, D)), ("up", (Fe, D)), ("down", (D, Fe))):
                    out.append((p + f"mlp.experts.{e}.{proj}_proj.weight", shape, "w"))
            continue
        out.append((p + "mlp.gate_proj.weight", (F, D), "w"))
        out.append((p + "mlp.up_proj.weight", (F, D), "w"))
        out.append((p + "mlp.down_proj.weight", (D, F), "w"))
    out.append(("model.norm.weight", (D,), "n"))
    if not s["tie_word_embeddings"]:
        out.append(("lm_head.weight", (V, D), "w"))
    return out


def ToBf16Bits(x):
    """f32 array -> uint16 bf16 bits, round to nearest even (NaN stays NaN). Consumes x."""
    u = x.view(np.uint32)
    nan = np.isnan(x)
    lsb = (u >> 16) & 1
    lsb += 0x7FFF
    u += lsb
    u >>= 16
    out = u.astype(np.uint16)
    if nan.any():
        out[nan] = 0x7FC0
    return out


def Encode(x, dtype):
    if dtype == "f32":
        return x
    if dtype == "f16":
        return x.astype(np.float16)
    return ToBf16Bits(x)


def WriteTensorData(f, name, shape, kind, dtype, seed, std):
    """Generates one tensor chunk by chunk and appends its bytes to f."""
    # A per-tensor stream makes every tensor independent of order and of sharding.
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    rows = shape[0]
    row_elems = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    rows_per_chunk = max(1, CHUNK_ELEMS // row_elems)
    for r0 in range(0, rows, rows_per_chunk):
        n = min(rows_per_chunk, rows - r0) * row_elems
        x = rng.standard_normal(n, dtype=np.float32)
        if kind == "n":
            x *= np.float32(0.05)
            x += np.float32(1.0)
        elif kind == "r":
            # Router logits of std ~2 whatever D: the top-k weights are mixed (not one
            # expert taking all) and the choices have margins that rounding cannot flip
            # (near-uniform logits from tiny weights would leave near-ties).
            x *= np.float32(2.0 / math.sqrt(shape[1]))
        else:
            x *= np.float32(std)
        f.write(memoryview(Encode(x, dtype)).cast("B"))


def SafetensorsHeader(entries, metadata):
    """entries: (name, safetensors dtype, shape, byte count) in file order. Returns the
    JSON header padded with spaces to a multiple of 8 bytes, and the data section's size."""
    header = {"__metadata__": metadata}
    off = 0
    for name, dt, shape, nbytes in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    hj = json.dumps(header, separators=(",", ":")).encode()
    return hj + b" " * ((-len(hj)) % 8), off


def WriteSafetensors(path, tensors, dtype, seed, std):
    """Writes one .safetensors file: u64 header length, JSON header, tensor data."""
    eb = ELEM_BYTES[dtype]
    hj, off = SafetensorsHeader(
        [(name, ST_DTYPE[dtype], shape, int(np.prod(shape)) * eb) for name, shape, _ in tensors],
        {"format": "pt"})
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, shape, kind in tensors:
            WriteTensorData(f, name, shape, kind, dtype, seed, std)
        if f.tell() != 8 + len(hj) + off:
            raise RuntimeError(f"[make_model] {path}: wrote {f.tell()} bytes, expected "
                               f"{8 + len(hj) + off}")
    return off


def SplitShards(tensors, k, eb):
    """Assigns contiguous runs of tensors to k non-empty shards of roughly equal bytes."""
    n = len(tensors)
    if k > n:
        raise SystemExit(f"[make_model] --shards {k} exceeds the {n} tensors of this shape")
    sizes = [int(np.prod(s)) * eb for _, s, _ in tensors]
    total = sum(sizes)
    shard_of, start, prev = [], 0, 0
    for i, sz in enumerate(sizes):
        want = min(k - 1, (start + sz // 2) * k // total)
        lo = prev if i else 0
        lo = max(lo, k - (n - i))
        hi = prev + 1 if i else 0
        s = min(max(want, lo), hi)
        shard_of.append(s)
        prev = s
        start += sz
    return [[t for t, s in zip(tensors, shard_of) if s == j] for j in range(k)]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--out", required=True, help="output folder (created if missing)")
    ap.add_argument("--dtype", default="bf16", choices=sorted(TORCH_DTYPE))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--std", type=float, default=0.02,
                    help="standard deviation of linear/embedding weights and biases")
    ap.add_argument("--layers", type=int, default=0, help="override the shape's layer count")
    ap.add_argument("--kv-heads", type=int, default=0, help="override the shape's KV heads")
    ap.add_argument("--vocab", type=int, default=0,
                    help="override the shape's vocabulary size (to pair it with a real tokenizer)")
    ap.add_argument("--mlp-only-layers",
                    help="override a Qwen3-MoE shape's dense layers (comma list, '' for none)")
    a = ap.parse_args()
    if a.shards < 1:
        raise SystemExit("[make_model] --shards must be >= 1")

    s = dict(SHAPES[a.shape])
    if a.layers:
        s["num_hidden_layers"] = a.layers
    if a.vocab:
        s["vocab_size"] = a.vocab
    if a.mlp_only_layers is not None:
        if "mlp_only_layers" not in s:
            raise SystemExit("[make_model] --mlp-only-layers applies to Qwen3-MoE shapes")
        s["mlp_only_layers"] = [int(x) for x in a.mlp_only_layers.split(",") if x]
    if a.kv_heads:
        if s["num_attention_heads"] % a.kv_heads:
            raise SystemExit("[make_model] --kv-heads must divide the attention heads")
        s["num_key_value_heads"] = a.kv_heads
    os.makedirs(a.out, exist_ok=True)
    # Remove weight files of an earlier run so a folder never mixes layouts.
    for fn in os.listdir(a.out):
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            os.remove(os.path.join(a.out, fn))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(BuildConfig(s, a.dtype), f, indent=2)
        f.write("\n")
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump(BuildGenerationConfig(s), f, indent=2)
        f.write("\n")

    tensors = TensorList(s)
    if a.shards == 1:
        total = WriteSafetensors(os.path.join(a.out, "model.safetensors"), tensors, a.dtype,
                                 a.seed, a.std)
    else:
        groups = SplitShards(tensors, a.shards, ELEM_BYTES[a.dtype])
        weight_map, total = {}, 0
        for j, group in enumerate(groups):
            fn = f"model-{j + 1:05d}-of-{a.shards:05d}.safetensors"
            total += WriteSafetensors(os.path.join(a.out, fn), group, a.dtype, a.seed, a.std)
            for name, _, _ in group:
                weight_map[name] = fn
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f,
                      indent=2)
            f.write("\n")
    params = total // ELEM_BYTES[a.dtype]
    print(f"[make_model] {a.shape} {a.dtype}: {len(tensors)} tensors, {params} parameters, "
          f"{total} bytes -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
