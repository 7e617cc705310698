#!/usr/bin/python3
"""Writes an MLX-style affine-quantized model folder from a Hugging Face folder.

    quantize_mlx.py --model DIR --out DIR [--bits 4|8] [--group-size 32|64|128]
                    [--override MODULE=BITS[:GROUP]] ... [--scale-dtype f32|f16|bf16]
                    [--dequant-out DIR]

The layout mlx-lm writes: every linear and embedding weight whose row length is a multiple of
the group size becomes `<module>.weight` (U32, [rows, cols * bits / 32], 32 / bits values per
word, lowest bits first), `<module>.scales` and `<module>.biases` ([rows, cols / group], in the
model's dtype unless --scale-dtype), with w = scale * q + bias per group; other tensors are
copied. config.json gains "quantization" (and "quantization_config") = {"group_size", "bits"},
plus one entry per --override module, as mlx-lm records per-layer settings.

Mixtures of experts are written as mlx-lm stores them: a layer's per-expert matrices
(`experts.{e}.{gate,up,down}_proj`, Mixtral's `w1`/`w3`/`w2`) become one stacked
`switch_mlp.{gate,up,down}_proj` module ([E, rows, …] weight, scales and biases), and the
router (`mlp.gate` / `block_sparse_moe.gate`) is quantized like any other linear layer.

--dequant-out writes a float32 Hugging Face folder of exactly the values the quantized folder
holds, for tools/reference.py.
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bits", type=int, default=4, choices=[4, 8])
    ap.add_argument("--group-size", type=int, default=64, choices=[32, 64, 128])
    ap.add_argument("--override", action="append", default=[],
                    help="MODULE=BITS[:GROUP], e.g. lm_head=8 or model.layers.0.mlp.down_proj=8:32")
    ap.add_argument("--scale-dtype", choices=["f32", "f16", "bf16"])
    ap.add_argument("--dequant-out")
    a = ap.parse_args()

    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    src_dtype = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(
        cfg.get("torch_dtype"), "bf16")
    sdt = a.scale_dtype or src_dtype
    overrides = {}
    for o in a.override:
        mod, spec = o.split("=")
        bits, _, gs = spec.partition(":")
        overrides[mod] = (int(bits), int(gs) if gs else a.group_size)

    w = Weights(a.model)
    out, deq = [], []
    counts = {"quantized": 0, "kept": 0}
    # (module prefix, stacked kind) -> [(expert, name)] of the per-expert matrices.
    kinds = {"gate_proj": "gate_proj", "w1": "gate_proj", "up_proj": "up_proj",
             "w3": "up_proj", "down_proj": "down_proj", "w2": "down_proj"}
    stacks = {}
    for name in w.where:
        parts = name.split(".")
        if len(parts) == 8 and parts[4] == "experts" and parts[6] in kinds:
            key = (".".join(parts[:4]), kinds[parts[6]])
            stacks.setdefault(key, []).append((int(parts[5]), name))
    for (prefix, kind), members in sorted(stacks.items()):
        names = [n for _, n in sorted(members)]
        module = f"{prefix}.switch_mlp.{kind}"
        bits, gs = overrides.get(module, (a.bits, a.group_size))
        packed, sc, bi = [], [], []
        for n in names:
            x = w.Get(n).astype(np.float32)
            p_, s_, b_, q = qf.QuantizeMlx(x, bits, gs)
            s_enc, s_dt = qf.EncodeDtype(s_, sdt)
            b_enc, _ = qf.EncodeDtype(b_, sdt)
            packed.append(p_)
            sc.append(s_enc)
            bi.append(b_enc)
            if a.dequant_out:
                s32, b32 = qf.DecodeDtype(s_enc, sdt), qf.DecodeDtype(b_enc, sdt)
                r, k = x.shape
                v = s32[..., None] * q.reshape(r, k // gs, gs).astype(np.float32) + b32[..., None]
                deq.append((n, v.reshape(r, k).astype(np.float32), "F32"))
        out += [(module + ".weight", np.stack(packed), "U32"),
                (module + ".scales", np.stack(sc), s_dt),
                (module + ".biases", np.stack(bi), s_dt)]
        counts["quantized"] += 1
    stacked = {n for members in stacks.values() for _, n in members}
    for name in sorted(w.where):
        if name in stacked:
            continue
        shape = w.Shape(name)
        module = name[: -len(".weight")] if name.endswith(".weight") else None
        bits, gs = overrides.get(module, (a.bits, a.group_size))
        is_matrix = len(shape) == 2 and (name.endswith(("_proj.weight", "mlp.gate.weight",
                                                        "block_sparse_moe.gate.weight")) or
                                         name in ("model.embed_tokens.weight", "lm_head.weight"))
        if is_matrix and shape[1] % gs == 0:
            parts = {"packed": [], "s": [], "b": [], "deq": []}
            step = max(1, (1 << 22) // shape[1])  # row chunks of ~4M weights
            for r0 in range(0, shape[0], step):
                x = w.Get(name, (r0, min(shape[0], r0 + step))).astype(np.float32)
                packed, scales, biases, q = qf.QuantizeMlx(x, bits, gs)
                s_enc, s_dt = qf.EncodeDtype(scales, sdt)
                b_enc, _ = qf.EncodeDtype(biases, sdt)
                parts["packed"].append(packed)
                parts["s"].append(s_enc)
                parts["b"].append(b_enc)
                if a.dequant_out:
                    # With the scales as stored, in float32 as the loader computes.
                    s32, b32 = qf.DecodeDtype(s_enc, sdt), qf.DecodeDtype(b_enc, sdt)
                    n, k = x.shape
                    v = s32[..., None] * q.reshape(n, k // gs, gs).astype(np.float32) + b32[..., None]
                    parts["deq"].append(v.reshape(n, k).astype(np.float32))
            out += [(name, np.concatenate(parts["packed"]), "U32"),
                    (module + ".scales", np.concatenate(parts["s"]), s_dt),
                    (module + ".biases", np.concatenate(parts["b"]), s_dt)]
            if a.dequant_out:
                deq.append((name, np.concatenate(parts["deq"]), "F32"))
            counts["quantized"] += 1
        else:
            x = w.Get(name).astype(np.float32)
            enc, dt = qf.EncodeDtype(x, src_dtype)
            out.append((name, enc, dt))
            if a.dequant_out:
                deq.append((name, qf.DecodeDtype(enc, src_dtype).astype(np.float32), "F32"))
            counts["kept"] += 1

    os.makedirs(a.out, exist_ok=True)
    for fn in os.listdir(a.out):
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            os.remove(os.path.join(a.out, fn))
    qf.WriteSafetensors(os.path.join(a.out, "model.safetensors"), out)
    quant = {"group_size": a.group_size, "bits": a.bits}
    for mod, (bits, gs) in overrides.items():
        quant[mod] = {"group_size": gs, "bits": bits}
    qcfg = dict(cfg, quantization=quant, quantization_config=quant)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(qcfg, f, indent=2)
    for extra in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(a.model, extra)):
            shutil.copy(os.path.join(a.model, extra), a.out)
    print(f"[quantize_mlx] {a.out}: {a.bits}-bit, group {a.group_size}, {counts}", file=sys.stderr)
    if a.dequant_out:
        os.makedirs(a.dequant_out, exist_ok=True)
        qf.WriteSafetensors(os.path.join(a.dequant_out, "model.safetensors"), deq, {"format": "pt"})
        with open(os.path.join(a.dequant_out, "config.json"), "w") as f:
            json.dump(dict(cfg, torch_dtype="float32"), f, indent=2)
        if os.path.exists(os.path.join(a.model, "generation_config.json")):
            shutil.copy(os.path.join(a.model, "generation_config.json"), a.dequant_out)


if __name__ == "__main__":
    main()
