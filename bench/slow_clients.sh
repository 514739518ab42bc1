#!/usr/bin/env bash
# Slow-client benchmark (issue #13): a normal client's p50/p99 while one
# address holds SLOW (default 2000) slowloris connections, against moltgate
# directly and against the edge (moltguard's managed nginx in front of it,
# breaker CLOSED, Basic auth). The normal client comes from 127.0.0.1, the
# attacker from 127.0.0.2; everything listens on 127.0.0.1 and stops when
# the script exits.
#
# Usage: bench/slow_clients.sh            SLOW=4000 REQUESTS=1000 bench/slow_clients.sh
# Needs: nginx; a release build (done here).
set -euo pipefail
cd "$(dirname "$0")/.."
GW_PORT=${GW_PORT:-18202}
EDGE_PORT=${EDGE_PORT:-18203}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx not found (apt-get install nginx-light)"; exit 1; }
# 2000 slow connections plus the client's: more than the default 1024 files.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== building (release)"
cargo build --release -q --bin moltgate --bin moltguard --example slow_clients_bench

TMP=$(mktemp -d /tmp/moltgate-slow.XXXXXX)
chmod 755 "$TMP"
MG() { env -i PATH="$PATH" target/release/moltguard --home "$TMP" "$@"; }
cleanup() {
  MG nginx stop >/dev/null 2>&1 || true
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/moltgate.toml" <<TOML
default_provider = "ollama"
[providers.ollama]
base_url = "http://127.0.0.1:9/v1"
TOML
env -i PATH="$PATH" MOLTGATE_LOG=warn MOLTGATE_STATE_DIR="$TMP/state" \
  target/release/moltgate serve --config "$TMP/moltgate.toml" --listen "127.0.0.1:$GW_PORT" 2>"$TMP/moltgate.log" &
GW_PID=$!

MG init --edge-port "$EDGE_PORT" --upstream-port "$GW_PORT" >/dev/null
printf 'bench-password-123\n' | MG auth add-user bench --password-stdin >/dev/null
MG nginx start >/dev/null
MG breaker close >/dev/null
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null && break; sleep 0.1; done

B=target/release/examples/slow_clients_bench
echo "== moltgate directly (127.0.0.1:$GW_PORT): GET /health"
"$B" "127.0.0.1:$GW_PORT" /health
echo "== the edge (127.0.0.1:$EDGE_PORT, nginx + Basic auth, then moltgate): GET /health"
"$B" "127.0.0.1:$EDGE_PORT" /health bench:bench-password-123
echo "(load $(cut -d' ' -f1-3 /proc/loadavg))"
