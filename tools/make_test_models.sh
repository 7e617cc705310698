#!/usr/bin/env bash
# Makes the tiny random-weight test models and their numpy reference outputs under $1.
set -euo pipefail
out=${1:?usage: make_test_models.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
tokens=3,17,42,5,99,123,7,250,1,64,200,31
stamp_src=$(cat "$here/make_model.py" "$here/reference.py" "$0" | md5sum | cut -c1-12)
mkdir -p "$out"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp_src" ]; then
  echo "test models up to date in $out"
  exit 0
fi
for shape in tiny-llama tiny-llama2 tiny-qwen3 tiny-qwen2 tiny-mistral tiny-qwen3moe tiny-mixtral; do
  for dtype in f32 bf16; do
    dir="$out/$shape-$dtype"
    rm -rf "$dir"
    "$py" "$here/make_model.py" --shape "$shape" --dtype "$dtype" --seed 1 --std 0.1 --out "$dir"
    "$py" "$here/reference.py" --model "$dir" --tokens "$tokens" --out "$dir/ref_logits.bin" \
      --hidden-out "$dir/ref"
    echo "$tokens" > "$dir/ref_tokens.txt"
  done
done
# The same weights split over shards, to check the index path gives identical logits.
rm -rf "$out/tiny-qwen3-f32-sharded"
"$py" "$here/make_model.py" --shape tiny-qwen3 --dtype f32 --seed 1 --std 0.1 --shards 3 \
  --out "$out/tiny-qwen3-f32-sharded"
# Deeper models with KV heads divisible by 4, for tensor- and pipeline-parallel tests
# (tp up to 4, pp up to 3), with reference logits.
for shape in tiny-llama tiny-qwen3; do
  dir="$out/$shape-deep-f32"
  rm -rf "$dir"
  "$py" "$here/make_model.py" --shape "$shape" --dtype f32 --seed 2 --std 0.1 --layers 5 \
    --kv-heads 4 --out "$dir"
  "$py" "$here/reference.py" --model "$dir" --tokens "$tokens" --out "$dir/ref_logits.bin"
  echo "$tokens" > "$dir/ref_tokens.txt"
done
echo "$stamp_src" > "$out/.stamp"
echo "test models written to $out"
