#!/usr/bin/env bash
# The test command from README: every test, against a real nginx.
# Needs nginx installed (scripts/install-deps.sh); sets up the Python venv
# for the OpenAI SDK compatibility test and the dashboard's browser test
# (Selenium) on first run, and again when one of them is missing.
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
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import openai, selenium" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install -q -r tests/compat/requirements.txt
  fi
fi
# The real agent tests/agent.rs runs against (pinned; a no-op once installed).
scripts/install-openclaw.sh
# Unit tests and every integration test binary (examples are built by clippy
# in CI; they hold no tests), then the crates' doc examples, all of them even
# when one fails. The last line sums all binaries' results.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --no-fail-fast --lib --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$#" -eq 0 ]; then
  cargo test --no-fail-fast --doc --workspace 2>&1 | tee -a "$log"
  doc_status=${PIPESTATUS[0]}
  [ "$status" -ne 0 ] || status=$doc_status
fi
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
