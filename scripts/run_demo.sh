#!/usr/bin/env bash
# The main job: generate from the bundled demo model (or, without one, a freshly made
# random-weight model) with the meshlm binary in build dir $1.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
meshlm="$build/src/cli/meshlm"
model=$(ls -d "$here"/models/*/ 2>/dev/null | head -n 1 || true)
if [ -z "$model" ]; then
  model="$build/demo-model"
  if [ ! -f "$model/config.json" ]; then
    /usr/bin/python3 "$here/tools/make_model.py" --shape tiny-llama --dtype bf16 --out "$model"
  fi
fi
echo "== meshlm generate on $model"
"$meshlm" generate --model "$model" --ids 1,2,3,4 --max-tokens 24 --seed 1
echo "== meshlm bench on $model"
"$meshlm" bench --model "$model" --prompt-tokens 32 --gen-tokens 16
