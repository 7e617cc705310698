#!/usr/bin/env bash
# meshlm bench on quantized random-weight models of the real shapes: GGUF Q8_0, Q4_0, Q4_K_M
# and MLX 4-bit (group 64) for qwen3-0.6b and llama-3.2-1b, at 1 and 2 threads, prompt
# 128 / generation 64. Models are made once under WORK (about 6 GB).
# Usage: bench/quant_models.sh BUILD_DIR WORK_DIR [shape ...]   (REPEATS=3 by default; the
# median run is reported, so the first run's page faults on the mapped files do not count)
# Prints one line per run: shape, format, threads, prompt tok/s, generation tok/s, and
# the CPU seconds the run used per wall second (below the thread count when other
# processes share the cores; the figures then understate an idle machine).
set -euo pipefail
build=${1:?usage: quant_models.sh BUILD_DIR WORK_DIR [shape ...]}
work=${2:?usage: quant_models.sh BUILD_DIR WORK_DIR [shape ...]}
shift 2
shapes=("$@")
[ ${#shapes[@]} -eq 0 ] && shapes=(qwen3-0.6b llama-3.2-1b)
here=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
mkdir -p "$work"
for shape in "${shapes[@]}"; do
  hf="$work/$shape"
  [ -f "$hf/model.safetensors" ] || "$py" "$here/tools/make_model.py" --shape "$shape" \
    --dtype bf16 --seed 1 --out "$hf"
  for t in q8_0 q4_0 q4_k_m; do
    [ -f "$work/$shape-$t.gguf" ] || "$py" "$here/tools/write_gguf.py" --model "$hf" --type "$t" \
      --out "$work/$shape-$t.gguf"
  done
  [ -f "$work/$shape-mlx4/model.safetensors" ] || "$py" "$here/tools/quantize_mlx.py" \
    --model "$hf" --out "$work/$shape-mlx4" --bits 4 --group-size 64
done
printf "%-14s %-6s %-7s %10s %10s %8s\n" shape format threads prompt_tps gen_tps cpu/wall
for shape in "${shapes[@]}"; do
  for fmt in q8_0.gguf q4_0.gguf q4_k_m.gguf mlx4; do
    for threads in 1 2; do
      out=$( { /usr/bin/time -f "TIME %e %U %S" "$build/src/cli/meshlm" bench \
        --model "$work/$shape-$fmt" --threads "$threads" --ctx 512 --prompt-tokens 128 \
        --gen-tokens 64 --repeats "${REPEATS:-3}" --json; } 2>&1 )
      json=$(echo "$out" | grep '^{')
      read -r _ wall user sys <<< "$(echo "$out" | grep '^TIME')"
      "$py" - "$shape" "$fmt" "$threads" "$json" "$wall" "$user" "$sys" <<'PY'
import json, sys
shape, fmt, threads, js, wall, user, sys_t = sys.argv[1:8]
j = json.loads(js)
cpu = (float(user) + float(sys_t)) / float(wall)
print(f"{shape:<14} {fmt.split('.')[0]:<6} {threads:<7} {j['prompt_tokens_per_sec']:10.2f} "
      f"{j['tokens_per_sec']:10.2f} {cpu:8.2f}")
PY
    done
  done
done
