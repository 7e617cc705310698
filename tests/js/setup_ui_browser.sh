#!/usr/bin/env bash
# Gets what the web page's browser test needs: Debian's chromium (installed with apt-get
# when missing and we are root) and playwright-core from npm into DIR (a build folder;
# never committed).
#   tests/js/setup_ui_browser.sh DIR
# Exits 77 (the test's skip code) when chromium cannot be had; 1 when npm fails.
set -euo pipefail
dir=${1:?usage: setup_ui_browser.sh DIR}
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be missing on a fresh machine: update once if the first try fails.
    timeout 400 apt-get install -y -qq chromium >/dev/null 2>&1 ||
      { timeout 300 apt-get update -qq &&
        timeout 400 apt-get install -y -qq chromium >/dev/null; } || true
  fi
fi
if ! command -v chromium >/dev/null; then
  echo "chromium is not installed and could not be (apt-get install chromium): skipping" >&2
  exit 77
fi
mkdir -p "$dir"
if [ -f "$dir/node_modules/playwright-core/package.json" ]; then
  echo "playwright-core present in $dir; $(chromium --version 2>/dev/null || echo chromium)"
  exit 0
fi
cd "$dir"
[ -f package.json ] || echo '{"name":"meshlm-ui-test","private":true,"type":"module"}' > package.json
timeout 240 npm install --silent --no-audit --no-fund playwright-core@1 || {
  echo "npm install playwright-core failed (is the npm registry reachable?)" >&2
  exit 1
}
echo "playwright-core installed in $dir"
