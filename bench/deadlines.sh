#!/usr/bin/env bash
# How fast moltgate answers or fails in each failure mode of the fake
# provider (real figures for BENCHMARKS.md; the tests only assert loose bounds).
# Usage: bench/deadlines.sh        (release build; loopback only)
set -euo pipefail
cd "$(dirname "$0")/.."
FAKE_PORT=${FAKE_PORT:-18111}
GW_PORT=${GW_PORT:-18112}
cargo build --release -q --bin moltgate --example fake_provider
TMP=$(mktemp -d /tmp/moltgate-deadlines.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

target/release/examples/fake_provider "127.0.0.1:$FAKE_PORT" >/dev/null &
PIDS+=($!)
cat >"$TMP/m.toml" <<TOML
default_provider = "a"
request_timeout_ms = ${REQUEST_TIMEOUT_MS:-5000}
[circuit]
failure_threshold = 1000   # keep provider a in play for every scenario
[providers.a]
base_url = "http://127.0.0.1:$FAKE_PORT/v1"
ttfb_timeout_ms = 800
idle_timeout_ms = 400
total_timeout_ms = 3000
[providers.b]
base_url = "http://127.0.0.1:$FAKE_PORT/v1"
TOML
env -i PATH="$PATH" MOLTGATE_LOG=error MOLTGATE_STATE_DIR="$TMP/state" LLM_STREAMING=true \
  target/release/moltgate serve --config "$TMP/m.toml" --listen "127.0.0.1:$GW_PORT" &
PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$GW_PORT/health" >/dev/null && break; sleep 0.1; done

printf '%-28s %-7s %6s %9s %8s  %s\n' scenario stream status provider attempts seconds
case_() { # name model stream
  local body hdr out
  body=$(printf '{"model":"a/%s","fallbacks":["b/fake-ok"],"stream":%s,"messages":[{"role":"user","content":"hi"}]}' "$2" "$3")
  out=$(curl -s -D "$TMP/h" -o "$TMP/b" -w '%{http_code} %{time_total}' -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$GW_PORT/v1/chat/completions")
  hdr() { awk -v k="$1" 'tolower($1)==k":" {gsub("\r",""); print $2}' "$TMP/h"; }
  local note=""
  grep -q '"error"' "$TMP/b" && note="(error event/body)"
  printf '%-28s %-7s %6s %9s %8s  %s %s\n' "$1" "$3" "${out% *}" "$(hdr x-moltgate-provider)" "$(hdr x-moltgate-attempts)" "${out#* }" "$note"
}
case_ "normal" fake-ok false
case_ "normal, streamed" fake-stream-5 true
case_ "hang before headers" fake-hang-headers false
case_ "headers then nothing" fake-headers-then-nothing false
case_ "headers then nothing" fake-headers-then-nothing true
case_ "stall mid-stream" fake-stall-mid true
case_ "cut mid-stream" fake-cut-mid true
case_ "no [DONE]" fake-no-done true
case_ "500 once" fake-500-once false
case_ "503 forever" fake-503 false
case_ "reset" fake-reset false
case_ "429 Retry-After 1 (once)" fake-429-once-ra-1 false
case_ "429 no Retry-After" fake-429 false
case_ "context length" fake-context-length false
case_ "content policy" fake-content-policy false
