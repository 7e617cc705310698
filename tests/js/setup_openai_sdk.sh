#!/usr/bin/env bash
# Installs the official OpenAI SDK for Node, and zod for its schema helpers, into DIR (a
# build folder; never committed).
#   tests/js/setup_openai_sdk.sh DIR
set -euo pipefail
dir=${1:?usage: setup_openai_sdk.sh DIR}
mkdir -p "$dir"
if [ -f "$dir/node_modules/openai/package.json" ] && [ -f "$dir/node_modules/zod/package.json" ]; then
  echo "openai SDK present in $dir"
  exit 0
fi
cd "$dir"
[ -f package.json ] || echo '{"name":"meshlm-sdk-test","private":true,"type":"module"}' > package.json
npm install --silent --no-audit --no-fund openai@5 zod@3 || {
  echo "npm install openai failed (is the npm registry reachable?)" >&2
  exit 1
}
echo "openai SDK installed in $dir"
