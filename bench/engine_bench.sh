#!/usr/bin/env bash
# End-to-end speed of meshlm on the real model shapes: one process at 1 and 2 threads,
# then tensor- and pipeline-parallel runs on loopback. Prints one JSON line per run.
# Usage: bench/engine_bench.sh BUILD_DIR [MODELS_DIR]
set -euo pipefail
build=${1:?usage: engine_bench.sh BUILD_DIR [MODELS_DIR]}
models=${2:-/tmp/meshlm-bench-models}
here=$(cd "$(dirname "$0")/.." && pwd)
meshlm="$build/src/cli/meshlm"
mkdir -p "$models"
for shape in qwen3-0.6b llama-3.2-1b; do
  [ -f "$models/$shape/config.json" ] ||
    /usr/bin/python3 "$here/tools/make_model.py" --shape "$shape" --out "$models/$shape"
done
args="--prompt-tokens 128 --gen-tokens 64 --repeats 3 --json"
for shape in qwen3-0.6b llama-3.2-1b; do
  m="$models/$shape"
  # Warm the page cache so no run pays for reading the file.
  cat "$m"/*.safetensors > /dev/null
  for t in 1 2; do
    echo "{\"run\": \"$shape one process, $t thread(s)\"}"
    "$meshlm" bench --model "$m" --threads "$t" $args
  done
  echo "{\"run\": \"$shape tp=2, 1 thread per rank\"}"
  "$meshlm" launch -n 2 -- "$meshlm" bench --model "$m" --threads 1 --tp 2 $args 2>/dev/null |
    sed 's/^\[0\] //'
  echo "{\"run\": \"$shape pp=2, 1 thread per rank\"}"
  "$meshlm" launch -n 2 -- "$meshlm" bench --model "$m" --threads 1 --pp 2 $args 2>/dev/null |
    sed 's/^\[0\] //'
done
