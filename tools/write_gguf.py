#!/usr/bin/python3
"""Writes a GGUF v3 file from a Hugging Face model folder (as made by make_model.py).

    write_gguf.py --model DIR --out FILE.gguf --type q8_0|q4_0|q4_k|q6_k|q4_k_m|f32|f16|bf16
                  [--dequant-out DIR]

Follows the published GGUF specification: header (magic, version 3, counts), metadata
key/values, tensor infos (dims innermost first), data aligned to general.alignment (32).
Architectures llama (also for Mistral and Mixtral), qwen2, qwen3 and qwen3moe, with the
metadata keys and tensor names llama.cpp uses: a layer's experts are stacked into
ffn_{gate,up,down}_exps [E, rows, cols] (dims innermost first: cols, rows, E), the router is
ffn_gate_inp (kept F32), and expert_count / expert_used_count / expert_feed_forward_length
describe them. As llama.cpp's converter does, the rows of each llama attn_q / attn_k
head are reordered for RoPE on adjacent pairs, and Llama 3 rope scaling is written as the
'rope_freqs.weight' tensor of per-frequency divisors.

Types: a block type applies to every 2-D weight whose row length is a multiple of its block
(32, or 256 for the K types); others fall back to Q8_0, then F16. Norms and biases are F32.
q4_k_m mixes Q4_K with Q6_K for the output matrix and for attn_v / ffn_down in the first and
last eighth of the layers and every third layer between (the published Q4_K_M recipe).

--dequant-out writes a float32 Hugging Face folder holding exactly the values the GGUF file
holds, so that tools/reference.py gives the logits the file should produce.
"""

import argparse
import math
import os
import shutil
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quant_formats as qf  # noqa: E402
from reference import Weights  # noqa: E402

ARCH = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama",
        "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
        "Qwen3MoeForCausalLM": "qwen3moe", "MixtralForCausalLM": "llama"}

# Per-expert Hugging Face matrices ("experts.{e}.<name>") -> the stacked GGUF tensor.
EXPERT_KINDS = {"gate_proj": "ffn_gate_exps", "w1": "ffn_gate_exps",
                "up_proj": "ffn_up_exps", "w3": "ffn_up_exps",
                "down_proj": "ffn_down_exps", "w2": "ffn_down_exps"}


def ExpertOf(name):
    """(layer, module prefix, expert, kind) of a per-expert weight name, else None."""
    parts = name.split(".")
    if len(parts) == 8 and parts[0] == "model" and parts[4] == "experts":
        return int(parts[2]), ".".join(parts[:4]), int(parts[5]), parts[6]
    return None
ALIGN = 32

# GGUF metadata value types.
U32, I32, F32, BOOL, STRING, ARRAY, U64 = 4, 5, 6, 7, 8, 9, 10


def Str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def Kv(key, vtype, value):
    out = Str(key) + struct.pack("<I", vtype)
    if vtype == U32:
        out += struct.pack("<I", value)
    elif vtype == I32:
        out += struct.pack("<i", value)
    elif vtype == F32:
        out += struct.pack("<f", value)
    elif vtype == BOOL:
        out += struct.pack("<B", 1 if value else 0)
    elif vtype == STRING:
        out += Str(value)
    elif vtype == ARRAY:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        if etype == STRING:
            out += b"".join(Str(s) for s in items)
        elif etype == F32:
            out += np.asarray(items, "<f4").tobytes()
        elif etype == I32:
            out += np.asarray(items, "<i4").tobytes()
    return out


def HfToGguf(name):
    """HF tensor name -> GGUF name."""
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight":
             "output_norm.weight", "lm_head.weight": "output.weight"}
    if name in fixed:
        return fixed[name]
    parts = name.split(".")
    layer, rest = parts[2], ".".join(parts[3:])
    table = {"input_layernorm.weight": "attn_norm.weight",
             "mlp.gate.weight": "ffn_gate_inp.weight",
             "block_sparse_moe.gate.weight": "ffn_gate_inp.weight",
             "post_attention_layernorm.weight": "ffn_norm.weight",
             "self_attn.o_proj.weight": "attn_output.weight",
             "self_attn.q_norm.weight": "attn_q_norm.weight",
             "self_attn.k_norm.weight": "attn_k_norm.weight",
             "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
             "mlp.down_proj.weight": "ffn_down.weight"}
    for p in "qkv":
        for kind in ("weight", "bias"):
            table[f"self_attn.{p}_proj.{kind}"] = f"attn_{p}.{kind}"
    return f"blk.{layer}.{table[rest]}"


def PermuteRows(w, heads):
    """HF rotate-half row order -> llama.cpp's adjacent-pair order, per head."""
    n, k = w.shape
    return w.reshape(heads, 2, n // heads // 2, k).swapaxes(1, 2).reshape(n, k)


def ChooseType(kind, gguf_name, cols, layer, n_layers):
    # Routers stay F32, as llama.cpp's converter and quantizer keep them.
    if gguf_name.endswith(("norm.weight", ".bias", "ffn_gate_inp.weight")) or kind == "F32":
        return "F32"
    want = kind
    if kind == "Q4_K_M":
        more = layer is not None and (layer < n_layers // 8 or layer >= 7 * n_layers // 8 or
                                      (layer - n_layers // 8) % 3 == 2)
        if gguf_name == "output.weight" or (more and gguf_name.endswith(("attn_v.weight",
                                                                         "ffn_down.weight"))):
            want = "Q6_K"
        else:
            want = "Q4_K"
    for t in (want, "Q8_0", "F16"):
        if cols % qf.GGML_TYPES[t][1] == 0:
            return t
    return "F32"


def RopeFreqFactors(cfg):
    """Llama 3 scaling as divisors of each inverse frequency, as llama.cpp stores it."""
    rs = cfg["rope_scaling"]
    dh = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    inv = 1.0 / (np.float32(cfg["rope_theta"]) ** (np.arange(0, dh, 2, dtype=np.float32) / dh))
    old = rs["original_max_position_embeddings"]
    low_wl, high_wl = old / rs["low_freq_factor"], old / rs["high_freq_factor"]
    out = []
    for f in inv:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(rs["factor"])
        else:
            smooth = (old / wl - rs["low_freq_factor"]) / (rs["high_freq_factor"] -
                                                          rs["low_freq_factor"])
            out.append(1.0 / ((1 - smooth) / rs["factor"] + smooth))
    return np.asarray(out, np.float32)


def TokenizerMetadata(model_dir, vocab_size):
    """tokenizer.ggml.* keys for the byte-level BPE tokenizer.json of `model_dir`, as a GGUF
    converter writes them (tokens by id, types 1 normal / 3 control / 4 user-defined, "a b"
    merges, the chat template); None when the folder has no tokenizer.json."""
    import json
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        tj = json.load(f)
    cfg = {}
    if os.path.exists(os.path.join(model_dir, "tokenizer_config.json")):
        with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
    model = tj["model"]
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise SystemExit("[write_gguf] only byte-level BPE tokenizer.json files are converted")
    pre = tj.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        raise SystemExit("[write_gguf] only the GPT-2 (ByteLevel) pre-tokenizer is converted")
    tokens = [f"<unused{i}>" for i in range(vocab_size)]
    types = [5] * vocab_size
    for t, i in model["vocab"].items():
        tokens[i], types[i] = t, 1
    for a in tj.get("added_tokens", []):
        tokens[a["id"]], types[a["id"]] = a["content"], 3 if a.get("special") else 4
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    kv = [Kv("tokenizer.ggml.model", STRING, "gpt2"), Kv("tokenizer.ggml.pre", STRING, "gpt-2"),
          Kv("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
          Kv("tokenizer.ggml.token_type", ARRAY, (I32, types)),
          Kv("tokenizer.ggml.merges", ARRAY, (STRING, merges))]
    if cfg.get("chat_template"):
        kv.append(Kv("tokenizer.chat_template", STRING, cfg["chat_template"]))
    return kv


def Metadata(cfg, arch, n_tensors_hint, model_dir):
    dh = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    v = cfg["vocab_size"]
    kv = [Kv("general.architecture", STRING, arch), Kv("general.name", STRING, "meshlm-test"),
          Kv("general.alignment", U32, ALIGN),
          Kv(f"{arch}.context_length", U32, cfg["max_position_embeddings"]),
          Kv(f"{arch}.embedding_length", U32, cfg["hidden_size"]),
          Kv(f"{arch}.block_count", U32, cfg["num_hidden_layers"]),
          Kv(f"{arch}.feed_forward_length", U32, cfg["intermediate_size"]),
          Kv(f"{arch}.attention.head_count", U32, cfg["num_attention_heads"]),
          Kv(f"{arch}.attention.head_count_kv", U32, cfg["num_key_value_heads"]),
          Kv(f"{arch}.attention.key_length", U32, dh),
          Kv(f"{arch}.attention.value_length", U32, dh),
          Kv(f"{arch}.attention.layer_norm_rms_epsilon", F32, cfg["rms_norm_eps"]),
          Kv(f"{arch}.rope.freq_base", F32, cfg["rope_theta"]),
          Kv(f"{arch}.vocab_size", U32, v)]
    experts = cfg.get("num_experts") or cfg.get("num_local_experts")
    if experts:
        kv += [Kv(f"{arch}.expert_count", U32, experts),
               Kv(f"{arch}.expert_used_count", U32, cfg["num_experts_per_tok"])]
        if cfg.get("moe_intermediate_size"):
            kv.append(Kv(f"{arch}.expert_feed_forward_length", U32, cfg["moe_intermediate_size"]))
    rs = cfg.get("rope_scaling")
    if rs and (rs.get("rope_type") or rs.get("type")) == "linear":
        kv += [Kv(f"{arch}.rope.scaling.type", STRING, "linear"),
               Kv(f"{arch}.rope.scaling.factor", F32, rs["factor"])]
    bos, eos = cfg.get("bos_token_id"), cfg.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    tokenizer = TokenizerMetadata(model_dir, v)
    if tokenizer is not None:
        kv += tokenizer
    else:
        # A minimal byte-level BPE vocabulary: one placeholder string per id.
        tokens = [f"<tok{i}>" for i in range(v)]
        kv += [Kv("tokenizer.ggml.model", STRING, "gpt2"),
               Kv("tokenizer.ggml.pre", STRING, "default"),
               Kv("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
               Kv("tokenizer.ggml.token_type", ARRAY, (I32, [1] * v)),
               Kv("tokenizer.ggml.merges", ARRAY, (STRING, [])),
               Kv("tokenizer.chat_template", STRING,
                  "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")]
    if bos is not None:
        kv.append(Kv("tokenizer.ggml.bos_token_id", U32, bos))
    if eos is not None:
        kv.append(Kv("tokenizer.ggml.eos_token_id", U32, eos))
    return kv


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--type", required=True,
                    choices=["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k", "q4_k_m"])
    ap.add_argument("--dequant-out", help="folder for a float32 HF copy of the stored values")
    a = ap.parse_args()

    import json
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    arch = ARCH.get(cfg["architectures"][0])
    if arch is None:
        raise SystemExit(f"[write_gguf] architecture {cfg['architectures'][0]} unsupported")
    w = Weights(a.model)
    names = sorted(w.where, key=lambda n: (n.count("layers"), n))
    n_layers = cfg["num_hidden_layers"]
    heads = {"q": cfg["num_attention_heads"], "k": cfg["num_key_value_heads"]}
    kind = a.type.upper()

    # Each layer's per-expert matrices of one kind become one [E, rows, cols] tensor.
    stacks = {}  # (layer, kind) -> [hf names by expert]
    for name in names:
        ex = ExpertOf(name)
        if ex:
            stacks.setdefault((ex[0], EXPERT_KINDS[ex[3]]), []).append((ex[2], name))
    plan = []  # (hf name or [names], gguf name, type, dims innermost first, nbytes)
    for name in names:
        ex = ExpertOf(name)
        if ex:
            key = (ex[0], EXPERT_KINDS[ex[3]])
            group = [n for _, n in sorted(stacks[key])]
            if name != group[0]:
                continue
            rows, cols = w.Shape(name)
            g = f"blk.{ex[0]}.{key[1]}.weight"
            t = ChooseType(kind, g, cols, ex[0], n_layers)
            _, be, bb = qf.GGML_TYPES[t]
            plan.append((group, g, t, [cols, rows, len(group)], len(group) * rows * cols // be * bb))
            continue
        shape = w.Shape(name)
        g = HfToGguf(name)
        layer = int(name.split(".")[2]) if name.startswith("model.layers.") else None
        cols = shape[-1]
        t = ChooseType(kind, g, cols, layer, n_layers) if len(shape) == 2 else "F32"
        _, be, bb = qf.GGML_TYPES[t]
        rows = shape[0] if len(shape) == 2 else 1
        plan.append((name, g, t, list(reversed(shape)), rows * cols // be * bb))
    if cfg.get("rope_scaling") and (cfg["rope_scaling"].get("rope_type") or
                                    cfg["rope_scaling"].get("type")) == "llama3":
        factors = RopeFreqFactors(cfg)
        plan.append((None, "rope_freqs.weight", "F32", [len(factors)], factors.nbytes))

    kv = Metadata(cfg, arch, len(plan), a.model)
    head = struct.pack("<IIQQ", 0x46554747, 3, len(plan), len(kv)) + b"".join(kv)
    off = 0
    for _, g, t, dims, nbytes in plan:
        head += Str(g) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d)
                                                                  for d in dims)
        head += struct.pack("<IQ", qf.GGML_TYPES[t][0], off)
        off += (nbytes + ALIGN - 1) // ALIGN * ALIGN
    head += b"\0" * ((-len(head)) % ALIGN)

    deq_tensors = []
    with open(a.out, "wb") as f:
        f.write(head)
        for name, g, t, dims, nbytes in plan:
            if name is None:
                data = factors.tobytes()
            elif isinstance(name, list):  # stacked experts, quantized expert by expert
                chunks = []
                for n in name:
                    b, d = qf.QuantizeGguf(w.Get(n).astype(np.float32), t)
                    chunks.append(np.ascontiguousarray(b).reshape(b.shape[0], -1))
                    if a.dequant_out:
                        deq_tensors.append((n, d.astype(np.float32), "F32"))
                data = np.concatenate(chunks).tobytes()
            else:
                shape = w.Shape(name)
                rows, cols = (shape[0], shape[1]) if len(shape) == 2 else (1, shape[0])
                rows_bytes = []
                deq = np.empty((rows, cols), np.float32) if a.dequant_out else None
                # Row chunks of ~4M weights keep memory small for the real shapes.
                step = max(1, (1 << 22) // cols)
                for r0 in range(0, rows, step):
                    r1 = min(rows, r0 + step)
                    x = (w.Get(name, (r0, r1)) if len(shape) == 2 else w.Get(name)[None, :])
                    b, d = qf.QuantizeGguf(x.astype(np.float32), t)
                    rows_bytes.append(np.ascontiguousarray(b).reshape(b.shape[0], -1))
                    if deq is not None:
                        deq[r0:r1] = d
                packed = np.concatenate(rows_bytes)
                proj = name.split(".")[-2] if name.startswith("model.layers.") else ""
                if arch == "llama" and proj in ("q_proj", "k_proj") and name.endswith("weight"):
                    packed = PermuteRows(packed, heads[proj[0]])
                data = packed.tobytes()
                if a.dequant_out:
                    deq_tensors.append((name, deq.reshape(shape), "F32"))
            assert len(data) == nbytes, (g, len(data), nbytes)
            f.write(data)
            f.write(b"\0" * ((-len(data)) % ALIGN))
    counts = {}
    for p in plan:
        counts[p[2]] = counts.get(p[2], 0) + 1
    print(f"[write_gguf] {a.out}: {len(plan)} tensors {counts}, {os.path.getsize(a.out)} bytes",
          file=sys.stderr)
    if a.dequant_out:
        os.makedirs(a.dequant_out, exist_ok=True)
        qf.WriteSafetensors(os.path.join(a.dequant_out, "model.safetensors"), deq_tensors,
                            {"format": "pt"})
        cfg2 = dict(cfg, torch_dtype="float32")
        with open(os.path.join(a.dequant_out, "config.json"), "w") as f:
            json.dump(cfg2, f, indent=2)
        gen = os.path.join(a.model, "generation_config.json")
        if os.path.exists(gen):
            shutil.copy(gen, a.dequant_out)


if __name__ == "__main__":
    main()
