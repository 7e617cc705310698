#!/usr/bin/env bash
# Fetches llama.cpp's Python package gguf-py (GGUFWriter, the tensor name map, the quantizers)
# into DEST, for tools/convert_with_gguf_py.py. It comes from the npm package
# node-llama-cpp, which ships the llama.cpp source as a git bundle (llama/gitRelease.bundle);
# only the bundle's gguf-py/ folder is kept (DEST/gguf/__init__.py, ...). Safe to run again:
# a complete DEST is left as it is.
#
#   tools/fetch_gguf_py.sh DEST
set -euo pipefail

dest=${1:?usage: fetch_gguf_py.sh DEST}
package=node-llama-cpp@3.22.1
if [ -f "$dest/.complete" ] && [ -f "$dest/gguf/__init__.py" ]; then
  echo "[gguf-py] up to date in $dest"
  exit 0
fi
for tool in npm git tar; do
  command -v "$tool" >/dev/null || { echo "[gguf-py] '$tool' not found" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[gguf-py] fetching $package from npm"
tarball=$(cd "$tmp" && npm pack --silent "$package" 2>/dev/null | tail -1) || tarball=
if [ -z "$tarball" ] || [ ! -f "$tmp/$tarball" ]; then
  echo "[gguf-py] npm pack $package failed (is the npm registry reachable?)" >&2
  exit 1
fi
if ! tar -xzf "$tmp/$tarball" -C "$tmp" package/llama/gitRelease.bundle 2>/dev/null; then
  echo "[gguf-py] $package holds no llama/gitRelease.bundle" >&2
  exit 1
fi
rm -f "$tmp/$tarball"
git clone -q --no-checkout "$tmp/package/llama/gitRelease.bundle" "$tmp/llama.cpp"
commit=$(git -C "$tmp/llama.cpp" rev-parse HEAD)
rm -rf "$dest" && mkdir -p "$dest"
if ! git -C "$tmp/llama.cpp" archive HEAD gguf-py | tar -x -C "$dest" --strip-components=1 ||
   [ ! -f "$dest/gguf/__init__.py" ]; then
  echo "[gguf-py] the bundle of $package (commit $commit) has no gguf-py/gguf" >&2
  exit 1
fi
echo "$package llama.cpp $commit" > "$dest/.complete"
echo "[gguf-py] llama.cpp $commit gguf-py in $dest"
