#!/usr/bin/env bash
# The test command from README: every test, against a real nginx.
# Needs nginx installed (scripts/install-deps.sh); sets up the Python venv
# for the OpenAI SDK compatibility test on first run.
set -euo pipefail
cd "$(dirname "$0")/.."
nginx_bin=""
for c in /usr/sbin/nginx /usr/local/sbin/nginx /opt/homebrew/bin/nginx /usr/local/bin/nginx; do
  [ -x "$c" ] && nginx_bin="$c" && break
done
if [ -z "$nginx_bin" ]; then
  echo "nginx is not installed: run scripts/install-deps.sh first" >&2
  exit 1
fi
if [ -d .venv ] || [ -f tests/compat/requirements.txt ]; then
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import openai" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install -q -r tests/compat/requirements.txt
  fi
fi
cargo test --all-targets "$@"
