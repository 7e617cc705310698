#!/usr/bin/python3
"""Reference float64 numpy forward pass of Llama/Mistral/Qwen2/Qwen3/Qwen3-MoE/Mixtral Hugging
Face checkpoints."""

# Written from the architecture definitions, independently of the C++ engine, so the two can
# check each other. Shapes: T tokens, D width, H / Hk query / KV heads, Dh head dim,
# F FFN width, V vocab. Weights are [out, in] and y = x @ W.T.

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

ARCHS = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
         "Qwen3MoeForCausalLM", "MixtralForCausalLM"}


class Weights:
    """Tensors of a model folder (model.safetensors or an index plus shards), read lazily."""

    def __init__(self, folder):
        self.where = {}  # name -> (mmap, dtype, shape, begin, end, file)
        index = os.path.join(folder, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        elif os.path.exists(os.path.join(folder, "model.safetensors")):
            files = ["model.safetensors"]
        else:
            raise SystemExit(f"[reference] {folder}: no model.safetensors or index")
        for fn in files:
            self._Open(os.path.join(folder, fn))

    def _Open(self, path):
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            (hlen,) = struct.unpack("<Q", f.read(8))
            if hlen > size - 8:
                raise SystemExit(f"[reference] {path}: header length {hlen} exceeds file")
            header = json.loads(f.read(hlen))
        data = np.memmap(path, dtype=np.uint8, mode="r")
        base = 8 + hlen
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            if not 0 <= b <= e <= size - base:
                raise SystemExit(f"[reference] {path}: tensor '{name}' offsets out of range")
            if name in self.where:
                raise SystemExit(f"[reference] tensor '{name}' appears twice")
            self.where[name] = (data, info["dtype"], tuple(info["shape"]), base + b, base + e,
                                path)

    def Has(self, name):
        return name in self.where

    def Shape(self, name):
        return self.where[name][2]

    def Get(self, name, rows=None):
        """Tensor as float64; rows=(r0, r1) reads only that range of the first axis."""
        if name not in self.where:
            raise SystemExit(f"[reference] missing tensor '{name}'")
        data, dt, shape, b, e, path = self.where[name]
        elem = {"F32": 4, "F16": 2, "BF16": 2}.get(dt)
        if elem is None:
            raise SystemExit(f"[reference] {path}: tensor '{name}': dtype {dt} unsupported")
        n = int(np.prod(shape)) if shape else 1
        if e - b != n * elem:
            raise SystemExit(f"[reference] {path}: tensor '{name}': {e - b} bytes for shape "
                             f"{list(shape)} {dt}")
        if rows is not None:
            row = n // shape[0] if shape[0] else 0
            b, shape = b + rows[0] * row * elem, (rows[1] - rows[0],) + tuple(shape[1:])
            e = b + (rows[1] - rows[0]) * row * elem
        raw = data[b:e]
        if dt == "F32":
            x = raw.view("<f4").astype(np.float64)
        elif dt == "F16":
            x = raw.view("<f2").astype(np.float64)
        else:  # bf16 is the top half of an f32
            x = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return x.reshape(shape)


def RmsNorm(x, w, eps):
    """x: [..., N]; w: [N]. Normalises over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def InvFreq(cfg, dh):
    """Rotary inverse frequencies [Dh/2], with llama3 scaling when the config asks for it."""
    theta = float(cfg.get("rope_theta", 10000.0))
    inv = theta ** (-np.arange(0, dh, 2, dtype=np.float64) / dh)
    sc = cfg.get("rope_scaling")
    if not sc:
        return inv
    kind = sc.get("rope_type", sc.get("type"))
    if kind == "default":
        return inv
    if kind != "llama3":
        raise SystemExit(f"[reference] rope_scaling type '{kind}' unsupported")
    factor = float(sc["factor"])
    low, high = float(sc["low_freq_factor"]), float(sc["high_freq_factor"])
    old_ctx = float(sc["original_max_position_embeddings"])
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv
    # Long wavelengths (low frequencies) are slowed by factor, short ones kept, and the band
    # between the two thresholds interpolated linearly in old_ctx / wavelen.
    out = np.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, smoothed, out)


def Rope(x, cos, sin):
    """x: [T, heads, Dh]; cos, sin: [T, Dh]. rotate_half layout: i pairs with i + Dh/2."""
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, None, :] + rot * sin[:, None, :]


def Linear(w, x, name):
    y = x @ w.Get(name + ".weight").T
    if w.Has(name + ".bias"):
        y = y + w.Get(name + ".bias")
    return y


def MoeLayer(cfg, arch, l):
    """Whether layer l is a mixture of experts: Mixtral's every layer; Qwen3-MoE's where
    (l + 1) % decoder_sparse_step == 0 and l is not in mlp_only_layers."""
    if arch == "MixtralForCausalLM":
        return True
    if arch != "Qwen3MoeForCausalLM":
        return False
    step = cfg.get("decoder_sparse_step") or 1
    return l not in (cfg.get("mlp_only_layers") or []) and (l + 1) % step == 0


def SwiGlu(w, h, gate, up, down):
    g = h @ w.Get(gate).T
    return (g / (1 + np.exp(-g)) * (h @ w.Get(up).T)) @ w.Get(down).T


def Moe(cfg, arch, w, h, p):
    """Sparse MoE block on h: [T, D], token by token: softmax over every expert's router
    logit, the top k experts, their probabilities renormalised to sum to 1 (Mixtral always,
    Qwen3-MoE when norm_topk_prob), and the weighted sum of those experts' SwiGLU outputs."""
    if arch == "MixtralForCausalLM":
        m, E, norm = p + "block_sparse_moe.", cfg["num_local_experts"], True
        names = ("w1", "w3", "w2")
    else:
        m, E, norm = p + "mlp.", cfg["num_experts"], bool(cfg.get("norm_topk_prob", False))
        names = ("gate_proj", "up_proj", "down_proj")
    k = cfg["num_experts_per_tok"]
    logits = h @ w.Get(m + "gate.weight").T  # [T, E]
    if logits.shape[1] != E:
        raise SystemExit(f"[reference] router of {logits.shape[1]} experts, config says {E}")
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    out = np.zeros_like(h)
    for t in range(h.shape[0]):
        top = sorted(range(E), key=lambda e: (-probs[t, e], e))[:k]
        wt = probs[t, top]
        if norm:
            wt = wt / wt.sum()
        for e, g in zip(top, wt):
            gate, up, down = (m + f"experts.{e}.{n}.weight" for n in names)
            out[t] += g * SwiGlu(w, h[t:t + 1], gate, up, down)[0]
    return out


def UsesSlidingWindow(cfg):
    """Mistral applies sliding_window whenever it is set; Qwen only with use_sliding_window."""
    if cfg.get("model_type") in ("qwen2", "qwen3", "qwen3_moe"):
        return bool(cfg.get("use_sliding_window"))
    return True


def Forward(folder, tokens, hidden_out=None):
    """Returns logits [T, V] float64 for tokens at positions 0..T-1."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or ["?"])[0]
    if arch not in ARCHS:
        raise SystemExit(f"[reference] architecture '{arch}' unsupported")
    D = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    Hk = cfg.get("num_key_value_heads") or H
    Dh = cfg.get("head_dim") or D // H
    L = cfg["num_hidden_layers"]
    V = cfg["vocab_size"]
    eps = float(cfg.get("rms_norm_eps", 1e-6))
    if H % Hk:
        raise SystemExit(f"[reference] num_attention_heads={H} not a multiple of "
                         f"num_key_value_heads={Hk}")
    w = Weights(folder)
    if arch == "Qwen3ForCausalLM" and not w.Has("model.layers.0.self_attn.q_norm.weight"):
        raise SystemExit("[reference] Qwen3 checkpoint without self_attn.q_norm")
    if arch == "Qwen2ForCausalLM" and not w.Has("model.layers.0.self_attn.q_proj.bias"):
        raise SystemExit("[reference] Qwen2 checkpoint without q/k/v biases")

    T = len(tokens)
    if any(t < 0 or t >= V for t in tokens):
        raise SystemExit(f"[reference] token ids must lie in [0, {V})")
    window = cfg.get("sliding_window")
    if UsesSlidingWindow(cfg) and window and T > window:
        raise SystemExit(f"[reference] {T} tokens exceed sliding_window={window}; "
                         "sliding-window attention is not implemented")
    emb = "model.embed_tokens.weight"
    x = np.stack([w.Get(emb, rows=(t, t + 1))[0] for t in tokens])  # [T, D]

    pos = np.arange(T, dtype=np.float64)
    freqs = pos[:, None] * InvFreq(cfg, Dh)[None, :]  # [T, Dh/2]
    ang = np.concatenate([freqs, freqs], axis=-1)  # [T, Dh]
    cos, sin = np.cos(ang), np.sin(ang)
    causal = np.triu(np.ones((T, T), dtype=bool), k=1)  # True where key is in the future
    group = H // Hk

    for l in range(L):
        p = f"model.layers.{l}."
        h = RmsNorm(x, w.Get(p + "input_layernorm.weight"), eps)
        q = Linear(w, h, p + "self_attn.q_proj").reshape(T, H, Dh)
        k = Linear(w, h, p + "self_attn.k_proj").reshape(T, Hk, Dh)
        v = Linear(w, h, p + "self_attn.v_proj").reshape(T, Hk, Dh)
        if w.Has(p + "self_attn.q_norm.weight"):
            q = RmsNorm(q, w.Get(p + "self_attn.q_norm.weight"), eps)
            k = RmsNorm(k, w.Get(p + "self_attn.k_norm.weight"), eps)
        q, k = Rope(q, cos, sin), Rope(k, cos, sin)
        att = np.empty((T, H, Dh))
        for hh in range(H):
            kv = hh // group
            s = q[:, hh, :] @ k[:, kv, :].T / math.sqrt(Dh)  # [T, T]
            s[causal] = -np.inf
            s -= s.max(axis=-1, keepdims=True)
            e = np.exp(s)
            att[:, hh, :] = (e / e.sum(axis=-1, keepdims=True)) @ v[:, kv, :]
        x = x + Linear(w, att.reshape(T, H * Dh), p + "self_attn.o_proj")
        h = RmsNorm(x, w.Get(p + "post_attention_layernorm.weight"), eps)
        if MoeLayer(cfg, arch, l):
            x = x + Moe(cfg, arch, w, h, p)
        else:
            g = Linear(w, h, p + "mlp.gate_proj")
            u = Linear(w, h, p + "mlp.up_proj")
            x = x + Linear(w, g / (1 + np.exp(-g)) * u, p + "mlp.down_proj")
        if hidden_out:
            x.astype("<f4").tofile(os.path.join(hidden_out, f"hidden_{l}.bin"))

    x = RmsNorm(x, w.Get("model.norm.weight"), eps)
    if hidden_out:
        x.astype("<f4").tofile(os.path.join(hidden_out, "final_norm.bin"))
    if cfg.get("tie_word_embeddings", False):
        head = emb
    elif w.Has("lm_head.weight"):
        head = "lm_head.weight"
    else:
        raise SystemExit("[reference] tie_word_embeddings is false but lm_head.weight is missing")
    # The head is read in row blocks so a 150k x 1k table never exists in float64 at once.
    logits = np.empty((T, V))
    step = 8192
    for r0 in range(0, V, step):
        r1 = min(V, r0 + step)
        logits[:, r0:r1] = x @ w.Get(head, rows=(r0, r1)).T
    return logits


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="Hugging Face model folder")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", required=True, help="logits file: float32 [T, V] little-endian")
    ap.add_argument("--hidden-out", help="folder for hidden_{l}.bin and final_norm.bin")
    a = ap.parse_args()
    try:
        tokens = [int(t) for t in a.tokens.split(",") if t.strip()]
    except ValueError:
        raise SystemExit(f"[reference] --tokens '{a.tokens}': expected comma-separated ints")
    if not tokens:
        raise SystemExit("[reference] --tokens is empty")
    if a.hidden_out:
        os.makedirs(a.hidden_out, exist_ok=True)
    logits = Forward(a.model, tokens, a.hidden_out)
    if not np.all(np.isfinite(logits)):
        raise SystemExit("[reference] logits are not finite")
    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    logits.astype("<f4").tofile(a.out)
    print(f"[reference] {len(tokens)} tokens x {logits.shape[1]} logits -> {a.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
