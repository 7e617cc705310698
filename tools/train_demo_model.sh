#!/usr/bin/env bash
# Installs the demo-model trainer's Debian packages if missing, then runs tools/train_demo_model.py at the lowest CPU priority.
#
# Usage (from anywhere): tools/train_demo_model.sh [--seed N] [--steps N] [--minutes M] [--out DIR] ...
# See tools/train_demo_model.py --help for every option.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py=/usr/bin/python3  # Debian's interpreter: the Debian torch/numpy packages are installed for it
openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread

need=()
[ -x "$py" ] && "$py" -c 'import torch, numpy, regex' 2>/dev/null || need+=(python3 python3-torch python3-numpy python3-regex)
[ -r /usr/share/games/fortunes/cookie ] && [ -r /usr/share/games/fortunes/fortunes ] || need+=(fortunes fortunes-min)
[ -r "$openblas/libblas.so.3" ] || need+=(libopenblas0-pthread)

if ((${#need[@]})); then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "installing: ${need[*]}" >&2
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"; then
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
  fi
fi

# torch's CPU matrix products go through the system BLAS; the reference BLAS is ~15x slower than
# OpenBLAS, so load OpenBLAS for this process only (single-threaded, like torch itself here).
export LD_LIBRARY_PATH="$openblas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

cd "$here/.."
exec nice -n 19 "$py" tools/train_demo_model.py "$@"
