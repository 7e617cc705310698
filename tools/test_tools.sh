#!/bin/bash
# Self-check of make_model.py and reference.py: file layout, determinism, dtypes, sharding, maths.
# Usage: tools/test_tools.sh [--big]   (--big also builds qwen3-0.6b and llama-3.2-1b, ~4 GB)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
PY=/usr/bin/python3
TOOLS="$(cd "$(dirname "$0")" && pwd)"
TMP="$(mktemp -d /tmp/meshlm_tools.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

# The command lines the C++ tests use, verbatim.
$PY "$TOOLS/make_model.py" --shape tiny-qwen3 --dtype f32 --out "$TMP/cli" 2>/dev/null
$PY "$TOOLS/reference.py" --model "$TMP/cli" --tokens 3,17,42 --out "$TMP/cli/ref_logits.bin" \
  --hidden-out "$TMP/cli/ref" 2>/dev/null
test "$(stat -c %s "$TMP/cli/ref_logits.bin")" = $((3 * 300 * 4))
for f in hidden_0 hidden_1 final_norm; do test "$(stat -c %s "$TMP/cli/ref/$f.bin")" = $((3 * 64 * 4)); done

# The dense shapes (MoE models have their own checks in the C++ tests).
DENSE="tiny-llama tiny-llama2 tiny-qwen3 tiny-qwen2 tiny-mistral"
for shape in $DENSE; do
  for dt in bf16 f16 f32; do
    $PY "$TOOLS/make_model.py" --shape $shape --dtype $dt --out "$TMP/$shape-$dt" 2>/dev/null
  done
  $PY "$TOOLS/make_model.py" --shape $shape --dtype bf16 --out "$TMP/$shape-again" 2>/dev/null
  cmp "$TMP/$shape-bf16/model.safetensors" "$TMP/$shape-again/model.safetensors"
  $PY "$TOOLS/make_model.py" --shape $shape --dtype bf16 --seed 1 --out "$TMP/$shape-seed1" 2>/dev/null
  if cmp -s "$TMP/$shape-bf16/model.safetensors" "$TMP/$shape-seed1/model.safetensors"; then
    echo "FAIL: $shape: --seed 1 gives the same weights as --seed 0"; exit 1
  fi
  $PY "$TOOLS/make_model.py" --shape $shape --dtype bf16 --shards 3 --out "$TMP/$shape-sh3" 2>/dev/null
done

TMP="$TMP" TOOLS="$TOOLS" BIG="${1:-}" DENSE="$DENSE" $PY - <<'EOF'
import json, math, os, struct, subprocess, sys
import numpy as np
sys.path.insert(0, os.environ["TOOLS"])
import make_model, reference

TMP = os.environ["TMP"]
fails = []
def check(ok, what):
    if not ok:
        fails.append(what)
        print("FAIL:", what)

def read_st(path):
    """Parses a safetensors file strictly; returns {name: (dtype, shape, bytes)}."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    check(n % 8 == 0, f"{path}: header length {n} not a multiple of 8")
    h = json.loads(raw[8:8 + n])
    check(h.get("__metadata__") == {"format": "pt"}, f"{path}: __metadata__")
    spans = sorted(v["data_offsets"] for k, v in h.items() if k != "__metadata__")
    end = 0
    for b, e in spans:
        check(b == end, f"{path}: gap or overlap at {b}")
        end = e
    check(8 + n + end == len(raw), f"{path}: data size")
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        es = {"F32": 4, "BF16": 2, "F16": 2}[v["dtype"]]
        check(e - b == es * int(np.prod(v["shape"])), f"{path}: {k} size")
        out[k] = (v["dtype"], tuple(v["shape"]), raw[8 + n + b:8 + n + e])
    return out

def read_folder(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(idx):
        return read_st(os.path.join(d, "model.safetensors"))
    ix = json.load(open(idx))
    out = {}
    for fn in sorted(set(ix["weight_map"].values())):
        part = read_st(os.path.join(d, fn))
        for k in part:
            check(ix["weight_map"].get(k) == fn, f"{d}: index maps {k} to the wrong file")
        out.update(part)
    check(set(out) == set(ix["weight_map"]), f"{d}: index and files disagree")
    check(ix["metadata"]["total_size"] == sum(len(v[2]) for v in out.values()), f"{d}: total_size")
    return out

def as_f64(dt, b):
    if dt == "F32": return np.frombuffer(b, "<f4").astype(np.float64)
    if dt == "F16": return np.frombuffer(b, "<f2").astype(np.float64)
    return (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)

def expected_names(c):
    """Tensor names and shapes that HF's modeling code would create for config c."""
    D, F, V, H = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_attention_heads"]
    Hk, Dh, mt = c["num_key_value_heads"], c["head_dim"], c["model_type"]
    e = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    if not c["tie_word_embeddings"]:
        e["lm_head.weight"] = (V, D)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        e.update({p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
                  p + "self_attn.q_proj.weight": (H * Dh, D), p + "self_attn.k_proj.weight": (Hk * Dh, D),
                  p + "self_attn.v_proj.weight": (Hk * Dh, D), p + "self_attn.o_proj.weight": (D, H * Dh),
                  p + "mlp.gate_proj.weight": (F, D), p + "mlp.up_proj.weight": (F, D),
                  p + "mlp.down_proj.weight": (D, F)})
        if mt == "qwen2":
            e.update({p + "self_attn.q_proj.bias": (H * Dh,), p + "self_attn.k_proj.bias": (Hk * Dh,),
                      p + "self_attn.v_proj.bias": (Hk * Dh,)})
        if mt == "qwen3":
            e.update({p + "self_attn.q_norm.weight": (Dh,), p + "self_attn.k_norm.weight": (Dh,)})
    return e

# bf16 rounding on hand-picked bit patterns: ties go to even, carries propagate, NaN stays NaN.
def rne_scalar(u):
    if (u & 0x7F800000) == 0x7F800000 and (u & 0x7FFFFF):
        return 0x7FC0
    low, hi = u & 0xFFFF, u >> 16
    if low > 0x8000 or (low == 0x8000 and hi & 1):
        hi += 1
    return hi & 0xFFFF
pats = [0x3F800000, 0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF, 0x7F7FFFFF, 0xBF808000,
        0x00008000, 0x00018000, 0x7FC00000, 0x7F800001, 0xFF800000, 0x3FFFFFFF]
pats += list(np.random.default_rng(5).integers(0, 2**32, 10000, dtype=np.uint64))
u = np.array(pats, dtype=np.uint32)
got = make_model.ToBf16Bits(u.copy().view(np.float32))
check(all(int(g) == rne_scalar(int(p)) for g, p in zip(got, u)), "bf16 round-to-nearest-even")

for shape in os.environ["DENSE"].split():
    s = make_model.SHAPES[shape]
    nfails = len(fails)
    d = {dt: os.path.join(TMP, f"{shape}-{dt}") for dt in ("bf16", "f16", "f32", "sh3")}
    c = json.load(open(os.path.join(d["f32"], "config.json")))
    g = json.load(open(os.path.join(d["f32"], "generation_config.json")))
    for k in ("architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
              "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "rms_norm_eps",
              "rope_theta", "rope_scaling", "max_position_embeddings", "tie_word_embeddings",
              "torch_dtype", "bos_token_id", "eos_token_id"):
        check(k in c, f"{shape}: config.json lacks {k}")
    for k in ("bos_token_id", "eos_token_id", "do_sample", "temperature", "top_p", "top_k"):
        check(k in g, f"{shape}: generation_config.json lacks {k}")
    check(json.load(open(os.path.join(d["bf16"], "config.json")))["torch_dtype"] == "bfloat16",
          f"{shape}: torch_dtype")
    t = {k: read_folder(v) for k, v in d.items()}
    exp = expected_names(c)
    check({n: v[1] for n, v in t["f32"].items()} == exp, f"{shape}: tensor names/shapes")
    check(t["sh3"] == t["bf16"], f"{shape}: sharded tensors differ from unsharded")
    for n, (dt, shp, b) in t["f32"].items():
        f32 = np.frombuffer(b, "<f4")
        bf = np.frombuffer(t["bf16"][n][2], "<u2")
        check(np.array_equal(bf, [rne_scalar(int(x)) for x in f32.view(np.uint32)]) if f32.size < 5000
              else np.array_equal(bf, make_model.ToBf16Bits(f32.copy())), f"{shape}: {n} bf16 != rne(f32)")
        check(np.array_equal(np.frombuffer(t["f16"][n][2], "<f2"), f32.astype(np.float16)),
              f"{shape}: {n} f16 != f32 cast")
        x = f32.astype(np.float64)
        if n.endswith("norm.weight"):
            check(abs(x.mean() - 1) < 0.05 and 0.02 < x.std() < 0.08, f"{shape}: {n} stats")
        elif f32.size >= 1000:
            check(abs(x.mean()) < 0.005 and 0.017 < x.std() < 0.023, f"{shape}: {n} stats")

    # The reference on every dtype and on the sharded copy.
    toks = [3, 17, 42, 0, 199, 5, 5, 250, 1, 64]
    ref = {k: reference.Forward(v, toks) for k, v in d.items()}
    for k, v in ref.items():
        check(v.shape == (len(toks), c["vocab_size"]) and np.all(np.isfinite(v)), f"{shape} {k}: logits")
    check(np.array_equal(ref["sh3"], ref["bf16"]), f"{shape}: sharded logits differ")
    check(np.abs(ref["bf16"] - ref["f32"]).max() < 0.05, f"{shape}: bf16 far from f32")
    # Causality: a prefix's logits are the first rows of the full run.
    pre = reference.Forward(d["f32"], toks[:4])
    check(np.allclose(pre, ref["f32"][:4], rtol=0, atol=1e-12), f"{shape}: prefix logits differ")

    # A second forward pass with other formulations: one token at a time with a KV cache,
    # RoPE as complex multiplication, GQA by repeating KV heads, tied/untied resolved by config.
    W = {n: as_f64(v[0], v[2]).reshape(v[1]) for n, v in t["f32"].items()}
    D, H, Hk, Dh, eps = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], \
        c["head_dim"], c["rms_norm_eps"]
    half = Dh // 2
    base = c["rope_theta"] ** (-np.arange(half) * 2.0 / Dh)
    sc = c.get("rope_scaling")
    if sc:
        fac, lo, hi, old = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"], \
            sc["original_max_position_embeddings"]
        freq = []
        for f in base:
            wl = 2 * math.pi / f
            if wl < old / hi:
                freq.append(f)
            elif wl > old / lo:
                freq.append(f / fac)
            else:
                a = (old / wl - lo) / (hi - lo)
                freq.append((1 - a) * f / fac + a * f)
        freq = np.array(freq)
        if shape == "tiny-llama":  # all three bands must be present at this size
            wl = 2 * math.pi / base
            check((wl < old / hi).any() and (wl > old / lo).any() and
                  ((wl >= old / hi) & (wl <= old / lo)).any(), "tiny-llama: llama3 bands")
    else:
        freq = base
    def norm(x, w):
        return w * x / math.sqrt(float(np.dot(x, x)) / x.size + eps)
    def rot(v, pos):  # v: [heads, Dh]; pairs (i, i + Dh/2) form a complex number
        z = (v[:, :half] + 1j * v[:, half:]) * np.exp(1j * pos * freq)
        return np.concatenate([z.real, z.imag], axis=1)
    def lin(name, x):
        y = W[name + ".weight"] @ x
        return y + W[name + ".bias"] if name + ".bias" in W else y
    cache = [([], []) for _ in range(c["num_hidden_layers"])]
    head = W["model.embed_tokens.weight"] if c["tie_word_embeddings"] else W["lm_head.weight"]
    rows = []
    for pos, tok in enumerate(toks):
        x = W["model.embed_tokens.weight"][tok].copy()
        for l in range(c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = norm(x, W[p + "input_layernorm.weight"])
            q = lin(p + "self_attn.q_proj", h).reshape(H, Dh)
            k = lin(p + "self_attn.k_proj", h).reshape(Hk, Dh)
            v = lin(p + "self_attn.v_proj", h).reshape(Hk, Dh)
            if p + "self_attn.q_norm.weight" in W:
                q = np.stack([norm(r, W[p + "self_attn.q_norm.weight"]) for r in q])
                k = np.stack([norm(r, W[p + "self_attn.k_norm.weight"]) for r in k])
            cache[l][0].append(rot(k, pos))
            cache[l][1].append(v)
            K = np.repeat(np.stack(cache[l][0]), H // Hk, axis=1)  # [pos+1, H, Dh]
            Vv = np.repeat(np.stack(cache[l][1]), H // Hk, axis=1)
            q = rot(q, pos)
            o = []
            for hh in range(H):
                sc_ = K[:, hh] @ q[hh] / math.sqrt(Dh)
                pr = np.exp(sc_ - sc_.max())
                o.append((pr / pr.sum()) @ Vv[:, hh])
            x = x + lin(p + "self_attn.o_proj", np.concatenate(o))
            h = norm(x, W[p + "post_attention_layernorm.weight"])
            gg = lin(p + "mlp.gate_proj", h)
            x = x + lin(p + "mlp.down_proj", gg / (1 + np.exp(-gg)) * lin(p + "mlp.up_proj", h))
        rows.append(head @ norm(x, W["model.norm.weight"]))
    alt = np.stack(rows)
    err = np.abs(alt - ref["f32"]).max()
    check(err < 1e-10, f"{shape}: second forward pass differs by {err}")
    print(f"{shape}: {'ok' if len(fails) == nfails else 'FAILED'} (second pass max diff {err:.1e}, logit std {ref['f32'].std():.3f})")

# The CLI outputs: float32 logits equal the float64 pass rounded.
cli = os.path.join(TMP, "cli")
lg = np.fromfile(os.path.join(cli, "ref_logits.bin"), "<f4").reshape(3, 300)
check(np.array_equal(lg, reference.Forward(cli, [3, 17, 42]).astype(np.float32)), "cli logits")

if os.environ.get("BIG") == "--big":
    import time
    for shape in ("qwen3-0.6b", "llama-3.2-1b"):
        out = os.path.join(TMP, shape)
        t0 = time.time()
        subprocess.run([sys.executable, os.path.join(os.environ["TOOLS"], "make_model.py"), "--shape",
                        shape, "--out", out, "--shards", "2"], check=True)
        t1 = time.time()
        c = json.load(open(os.path.join(out, "config.json")))
        ix = json.load(open(os.path.join(out, "model.safetensors.index.json")))
        exp = expected_names(c)
        check(set(ix["weight_map"]) == set(exp), f"{shape}: tensor names")
        check(ix["metadata"]["total_size"] == 2 * sum(int(np.prod(v)) for v in exp.values()),
              f"{shape}: total_size")
        lg = reference.Forward(out, [1, 100, 1000, 7])
        check(np.all(np.isfinite(lg)), f"{shape}: logits")
        print(f"{shape}: ok (write {t1 - t0:.1f}s, reference {time.time() - t1:.1f}s)")
        subprocess.run(["rm", "-rf", out], check=True)

if fails:
    sys.exit(f"{len(fails)} check(s) failed")
print("all tool checks passed")
EOF
