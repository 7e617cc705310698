#!/usr/bin/env bash
# The main job: start a 2-rank local cluster serving the bundled demo model (or, without
# one, a freshly made random-weight model), ask it one question over the OpenAI API
# with curl, print the answer and stop the cluster. Uses the meshlm binary in build
# dir $1.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
meshlm="$build/src/cli/meshlm"
model=""
for d in "$here"/models/*/; do
  if [ -f "$d/config.json" ] && [ -f "$d/tokenizer.json" ]; then model=${d%/}; break; fi
done
if [ -z "$model" ]; then
  model="$build/demo-model"
  if [ ! -f "$model/config.json" ]; then
    /usr/bin/python3 "$here/tools/make_model.py" --shape tiny-qwen3 --dtype bf16 --out "$model"
  fi
fi
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
echo "== meshlm serve -n 2 on $model (port $port)"
"$meshlm" serve --model "$model" -n 2 --port "$port" --detach
trap '"$meshlm" stop --port "$port"' EXIT
curl -sS "$url/health"; echo
if [ -f "$model/tokenizer.json" ]; then
  request='{"messages":[{"role":"user","content":"Tell me a fortune."}],"max_tokens":64,"temperature":0.8,"seed":7}'
  path=/v1/chat/completions
else
  # A random model has no tokenizer: prompt with token ids.
  request='{"prompt":[1,2,3,4],"max_tokens":16,"temperature":0}'
  path=/v1/completions
fi
echo "== POST $path $request"
answer=$(curl -sS --max-time 120 "$url$path" -H 'Content-Type: application/json' -d "$request")
echo "$answer" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
if "error" in r:
    sys.exit("error: " + r["error"]["message"])
c = r["choices"][0]
print("== answer:", c["message"]["content"] if "message" in c else c["text"])
print("== usage:", r["usage"], "finish:", c["finish_reason"])
'
