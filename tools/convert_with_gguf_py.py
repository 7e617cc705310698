#!/usr/bin/python3
"""Writes a GGUF file from a Hugging Face model folder with llama.cpp's own Python package
gguf-py, so that meshlm's loader meets a file it did not write itself.

    convert_with_gguf_py.py --model DIR --type f32|f16|bf16|q8_0|q4_0 --out FILE.gguf \
                            --gguf-py DIR [--dequant-out DIR]

--gguf-py is a gguf-py folder as tools/fetch_gguf_py.sh leaves it (DIR/gguf/__init__.py); it
is imported at run time. Everything in the file comes from gguf-py: the metadata keys
(GGUFWriter's add_* calls), the tensor names (TensorNameMap for the architecture), the block
encodings (gguf.quants.quantize), the special tokens, merges and chat template
(gguf.SpecialVocab). This script only makes the decisions that llama.cpp's converter
(convert_hf_to_gguf.py) makes, for architectures llama (Llama, Mistral, Mixtral), qwen2,
qwen3 and qwen3moe:

- tensors are read as float32 (as the converter reads f32 and bf16 checkpoints); for llama
  the rows of each q_proj/k_proj head are reordered for RoPE on adjacent pairs (k with the
  KV head count);
- each layer's experts are stacked into one [E, rows, cols] tensor per kind, under the name
  the converter gives the stack before mapping it (Mixtral:
  layers.N.feed_forward.experts.w1/w2/w3, Qwen3-MoE: model.layers.N.mlp.experts.gate_proj/
  up_proj/down_proj), and every name is mapped by gguf-py's TensorNameMap; a tensor it
  cannot map is an error, as in the converter (so a Qwen3-MoE with dense mlp_only_layers,
  which llama.cpp's qwen3moe has no tensor names for, is refused);
- 1-D tensors, norms, the router (ffn_gate_inp) and anything not named .weight stay F32;
  the other tensors take --type, and fall back to F16 when their rows are not whole blocks.
  The converter itself offers f32/f16/bf16/q8_0; q4_0 applies the same rules with Q4_0
  (llama-quantize would also pick another type for output.weight);
- Llama 3 rope scaling becomes the rope_freqs.weight tensor of divisors;
- metadata: the converter's keys for the config fields (block_count, context_length,
  embedding_length, feed_forward_length, head counts, rope freq_base, rms epsilon,
  expert_count / expert_used_count, key/value_length when config.json gives head_dim,
  file_type; qwen3moe: expert_feed_forward_length; llama: vocab_size,
  rope.dimension_count, tokenizer.ggml.add_space_prefix from tokenizer_config.json);
- the tokenizer as the converter's gpt2 path writes it: one token per id up to vocab_size
  ("[PAD{id}]" of type UNUSED where the vocabulary has no token), added tokens CONTROL
  when special or looking special (<|...|>), else USER_DEFINED, all others NORMAL.

Two steps of the converter need the transformers library and are done from tokenizer.json
instead: the token list (read from model.vocab and added_tokens), and the pre-tokenizer
name, which the converter finds by hashing the ids of a probe text (so it knows only
tokenizers listed in it). Here it is named from the pre_tokenizer itself: GPT-2's
ByteLevel splitting is "gpt-2", and the Llama 3 and Qwen2 split regexes are "llama-bpe" and
"qwen2"; any other is refused. Only byte-level BPE tokenizer.json files are converted.

--dequant-out writes a float32 Hugging Face folder holding exactly the values the GGUF file
holds (dequantized with gguf.quants.dequantize, rows and experts put back in Hugging Face
order and names), so that tools/reference.py gives the logits the file should produce.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quant_formats as qf  # noqa: E402
from reference import Weights  # noqa: E402
from write_gguf import RopeFreqFactors  # noqa: E402

# Hugging Face architecture -> gguf-py MODEL_ARCH member.
ARCH = {"LlamaForCausalLM": "LLAMA", "MistralForCausalLM": "LLAMA",
        "MixtralForCausalLM": "LLAMA", "Qwen2ForCausalLM": "QWEN2",
        "Qwen3ForCausalLM": "QWEN3", "Qwen3MoeForCausalLM": "QWEN3MOE"}

# Split regexes of tokenizer.json pre-tokenizers -> GGUF pre-tokenizer names.
PRE_REGEX = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "llama-bpe",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "qwen2",
}


def Fail(msg):
    raise SystemExit(f"[convert_with_gguf_py] {msg}")


def ImportGguf(folder):
    if not os.path.isfile(os.path.join(folder, "gguf", "__init__.py")):
        Fail(f"{folder}: no gguf/__init__.py (fetch it with tools/fetch_gguf_py.sh)")
    sys.path.insert(0, os.path.abspath(folder))
    try:
        import gguf
    except ImportError as e:  # gguf-py imports yaml (Debian's python3-yaml)
        Fail(f"importing gguf-py from {folder}: {e}")
    return gguf


def ReadJson(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def PreTokenizerName(tj):
    pre = tj.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    if (len(parts) == 2 and parts[0].get("type") == "Split" and
            parts[1].get("type") == "ByteLevel" and not parts[1].get("use_regex", True)):
        name = PRE_REGEX.get(parts[0].get("pattern", {}).get("Regex"))
        if name:
            return name
    Fail(f"pre-tokenizer {json.dumps(pre)[:200]} not recognised (known: GPT-2 ByteLevel, "
         f"the Llama 3 and Qwen2 splits)")


def WriteVocab(gguf, writer, model_dir, vocab_size):
    tj = ReadJson(os.path.join(model_dir, "tokenizer.json"))
    if tj is None:
        Fail(f"{model_dir}: no tokenizer.json (the converter takes the vocabulary from it)")
    model = tj["model"]
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        Fail("only byte-level BPE tokenizer.json files are converted")
    pre = PreTokenizerName(tj)
    by_id = {i: t for t, i in model["vocab"].items()}
    added = {}
    for a in tj.get("added_tokens", []):
        by_id[a["id"]] = a["content"]
        added[a["id"]] = a
    if max(by_id) >= vocab_size:
        Fail(f"token id {max(by_id)} is beyond vocab_size {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        t = by_id[i]
        if i in added:
            if added[i].get("special") or (t.startswith("<|") and t.endswith("|>")):
                types.append(gguf.TokenType.CONTROL)
            else:
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(t)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(model_dir, load_merges=True).add_to_gguf(writer, quiet=True)


def WriteParameters(gguf, writer, cfg, arch, ftype, model_dir):
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(os.path.basename(os.path.normpath(model_dir)))
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    rs = cfg.get("rope_scaling") or {}
    if (rs.get("rope_type") or rs.get("type")) == "linear" and rs.get("factor") is not None:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rs["factor"])
    writer.add_rope_freq_base(cfg["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    experts = cfg.get("num_local_experts") or cfg.get("num_experts")
    if experts is not None:
        writer.add_expert_count(experts)
    if cfg.get("num_experts_per_tok") is not None:
        writer.add_expert_used_count(cfg["num_experts_per_tok"])
    if cfg.get("head_dim") is not None:
        writer.add_key_length(cfg["head_dim"])
        writer.add_value_length(cfg["head_dim"])
    writer.add_file_type(ftype)
    if arch == "QWEN3MOE" and cfg.get("moe_intermediate_size") is not None:
        writer.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
    if arch == "LLAMA":
        writer.add_vocab_size(cfg["vocab_size"])
        writer.add_rope_dimension_count(cfg.get("head_dim") or
                                        cfg["hidden_size"] // cfg["num_attention_heads"])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def PermuteRows(w, heads):
    """Rotate-half row order -> adjacent-pair order, per head (weights or biases)."""
    return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2)
            .reshape(w.shape))


def UnpermuteRows(w, heads):
    return (w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2)
            .reshape(w.shape))


def IsExpertWeight(name):
    """model.layers.N.<block>.experts.E.<kind>.weight"""
    p = name.split(".")
    return len(p) == 8 and p[0] == "model" and p[4] == "experts" and p[7] == "weight"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--type", required=True, choices=["f32", "f16", "bf16", "q8_0", "q4_0"])
    ap.add_argument("--gguf-py", required=True, help="gguf-py folder (tools/fetch_gguf_py.sh)")
    ap.add_argument("--dequant-out", help="folder for a float32 HF copy of the stored values")
    a = ap.parse_args()

    gguf = ImportGguf(a.gguf_py)
    Q = gguf.GGMLQuantizationType
    cfg = ReadJson(os.path.join(a.model, "config.json"))
    if cfg is None:
        Fail(f"{a.model}: no config.json")
    arch = ARCH.get(cfg["architectures"][0])
    if arch is None:
        Fail(f"architecture {cfg['architectures'][0]} unsupported")
    model_arch = getattr(gguf.MODEL_ARCH, arch)
    n_layers = cfg["num_hidden_layers"]
    tensor_map = gguf.get_tensor_name_map(model_arch, n_layers)
    want = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0}[a.type]
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
             "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[a.type]
    heads = {"q_proj": cfg["num_attention_heads"], "k_proj": cfg["num_key_value_heads"]}
    n_experts = cfg.get("num_local_experts") or cfg.get("num_experts") or 0
    w = Weights(a.model)

    writer = gguf.GGUFWriter(a.out, gguf.MODEL_ARCH_NAMES[model_arch])
    deq = []  # (hf names, stored values in file order) for --dequant-out
    counts = {}

    def Add(name, data, hf_names):
        """Maps `name`, picks the type, quantizes and adds one tensor (data float32)."""
        mapped = tensor_map.get_type_and_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            Fail(f"can not map tensor {name!r} for {gguf.MODEL_ARCH_NAMES[model_arch]}")
        kind, new_name = mapped
        qtype = want
        if (data.ndim <= 1 or new_name.endswith("_norm.weight") or not new_name.endswith(".weight")
                or kind == gguf.MODEL_TENSOR.FFN_GATE_INP):
            qtype = Q.F32
        try:
            stored = gguf.quants.quantize(data, qtype)
        except gguf.QuantError:
            qtype = Q.F16
            stored = gguf.quants.quantize(data, qtype)
        writer.add_tensor(new_name, stored, raw_dtype=qtype)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
        if a.dequant_out:
            deq.append((hf_names, gguf.quants.dequantize(stored, qtype).reshape(data.shape)))

    if arch == "LLAMA":
        rs = cfg.get("rope_scaling") or {}
        if (rs.get("rope_type") or rs.get("type") or "").lower() == "llama3":
            Add("rope_freqs.weight", RopeFreqFactors(cfg), None)
    experts = {}  # layer -> {hf name: float32 matrix}
    for name in w.where:
        data = w.Get(name).astype(np.float32)
        bid = int(name.split(".")[2]) if name.startswith("model.layers.") else None
        proj = name.split(".")[-2]
        if arch == "LLAMA" and proj in heads and name.endswith((".weight", ".bias")):
            data = PermuteRows(data, heads[proj])
        if not IsExpertWeight(name):
            Add(name, data, name)
            continue
        experts.setdefault(bid, {})[name] = data
        if len(experts[bid]) < n_experts * 3:
            continue
        # The converter's stacking order and the names it maps the stacks by.
        prefix = name.rsplit(".", 4)[0]  # model.layers.N.mlp or ...block_sparse_moe
        kinds = ["w1", "w2", "w3"] if arch == "LLAMA" else ["down_proj", "gate_proj", "up_proj"]
        for kind in kinds:
            names = [f"{prefix}.experts.{e}.{kind}.weight" for e in range(n_experts)]
            stack = np.stack([experts[bid].pop(n) for n in names])
            merged = (f"layers.{bid}.feed_forward.experts.{kind}.weight" if arch == "LLAMA"
                      else f"model.layers.{bid}.mlp.experts.{kind}.weight")
            Add(merged, stack, names)
    left = [n for d in experts.values() for n in d]
    if left:
        Fail(f"unprocessed experts: {left[:4]}")

    WriteParameters(gguf, writer, cfg, arch, ftype, a.model)
    if arch == "LLAMA":
        tc = ReadJson(os.path.join(a.model, "tokenizer_config.json")) or {}
        if tc.get("add_prefix_space") is not None:
            writer.add_add_space_prefix(tc["add_prefix_space"])
    WriteVocab(gguf, writer, a.model, cfg["vocab_size"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"[convert_with_gguf_py] {a.out}: {sum(counts.values())} tensors {counts}, "
          f"{os.path.getsize(a.out)} bytes", file=sys.stderr)

    if a.dequant_out:
        tensors = []
        for hf, values in deq:
            if hf is None:  # rope_freqs: config.json's rope_scaling says the same
                continue
            names = hf if isinstance(hf, list) else [hf]
            values = values if isinstance(hf, list) else values[None]
            for n, v in zip(names, values):
                proj = n.split(".")[-2]
                if arch == "LLAMA" and proj in heads and n.endswith((".weight", ".bias")):
                    v = UnpermuteRows(v, heads[proj])
                tensors.append((n, np.ascontiguousarray(v, np.float32), "F32"))
        os.makedirs(a.dequant_out, exist_ok=True)
        qf.WriteSafetensors(os.path.join(a.dequant_out, "model.safetensors"), tensors,
                            {"format": "pt"})
        with open(os.path.join(a.dequant_out, "config.json"), "w") as f:
            json.dump(dict(cfg, torch_dtype="float32"), f, indent=2)
        gen = os.path.join(a.model, "generation_config.json")
        if os.path.exists(gen):
            shutil.copy(gen, a.dequant_out)


if __name__ == "__main__":
    main()
