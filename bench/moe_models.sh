#!/usr/bin/env bash
# meshlm bench on Qwen3-30B-A3B's layer shape (12 of its 48 layers: hidden 2048, 128
# experts, 8 active, expert width 768, 32 heads, 4 KV heads, vocabulary 151936) in GGUF
# Q4_0 and Q8_0, at 1 and 2 threads, prompt 128 / generation 32, beside llama-bench on the
# same file when LLAMA_BENCH names its binary. Runs alternate between the two programs.
# Then expert parallelism: ep=2 on loopback with 1 thread per rank, against one process
# with 2 threads, with every rank's peak RSS.
# Models are made once under WORK (13 GB of GGUF files; the 16 GB bf16 source is deleted).
# meshlm figures are the median of 2 repeats, llama-bench's the mean of 2 after its warm-up,
# so page faults of a file that left the page cache do not count.
# Usage: bench/moe_models.sh BUILD_DIR WORK_DIR   (LLAMA_BENCH=path/to/llama-bench optional)
set -euo pipefail
build=${1:?usage: moe_models.sh BUILD_DIR WORK_DIR}
work=${2:?usage: moe_models.sh BUILD_DIR WORK_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
meshlm="$build/src/cli/meshlm"
shape=qwen3-30b-a3b-12l
mkdir -p "$work"
for t in q4_0 q8_0; do
  [ -f "$work/$shape-$t.gguf" ] && continue
  [ -f "$work/hf/model.safetensors" ] || "$py" "$here/tools/make_model.py" --shape "$shape" \
    --dtype bf16 --seed 1 --out "$work/hf"
  "$py" "$here/tools/write_gguf.py" --model "$work/hf" --type "$t" --out "$work/$shape-$t.gguf"
done
# The bf16 folder is only the source: its 16 GB would compete for the page cache.
rm -rf "$work/hf"
lscpu | grep -m1 'Model name'
printf "%-8s %-5s %-8s %10s %10s\n" program type threads prompt_tps gen_tps
field() { "$py" -c "import json,sys; j=json.loads(sys.stdin.read()); print(f\"{j['$1']:.2f}\")"; }
for t in q4_0 q8_0; do
  model="$work/$shape-$t.gguf"
  for threads in 1 2; do
    for rep in 1 2; do
      out=$("$meshlm" bench --model "$model" --threads "$threads" --ctx 512 --prompt-tokens 128 \
        --gen-tokens 32 --repeats 2 --json 2>/dev/null | grep '^{')
      printf "%-8s %-5s %-8s %10s %10s\n" meshlm "$t" "$threads" \
        "$(echo "$out" | field prompt_tokens_per_sec)" "$(echo "$out" | field tokens_per_sec)"
      if [ -n "${LLAMA_BENCH:-}" ]; then
        res=$("$LLAMA_BENCH" -m "$model" -p 128 -n 32 -t "$threads" -r 2 -o csv 2>/dev/null |
          "$py" -c "
import csv, sys
rows = list(csv.DictReader(sys.stdin))
pp = [r['avg_ts'] for r in rows if r['n_prompt'] != '0']
tg = [r['avg_ts'] for r in rows if r['n_gen'] != '0']
print(f'{float(pp[0]):.2f} {float(tg[0]):.2f}')")
        read -r pp tg <<< "$res"
        printf "%-8s %-5s %-8s %10s %10s\n" llama "$t" "$threads" "$pp" "$tg"
      fi
    done
  done
done
# Expert parallelism on loopback: 2 ranks x 1 thread against 1 process x 2 threads.
model="$work/$shape-q4_0.gguf"
for rep in 1 2; do
  one=$("$meshlm" bench --model "$model" --threads 2 --ctx 512 --prompt-tokens 128 \
    --gen-tokens 32 --repeats 2 --json 2>/dev/null | grep '^{')
  two=$("$meshlm" launch -n 2 -- "$meshlm" bench --model "$model" --threads 1 --ep 2 \
    --ctx 512 --prompt-tokens 128 --gen-tokens 32 --repeats 2 --json 2>/dev/null |
    sed 's/^\[0\] //' | grep '^{')
  echo "one process, 2 threads: $one"
  echo "ep=2, 1 thread each:    $two"
done
