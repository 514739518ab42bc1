#!/usr/bin/env bash
# moltgate benchmark: the fake provider alone (direct), moltgate in front of
# it (with its default security layers: API key, scopes, rate limits, bans,
# request firewall), moltgate with those layers off ("bare", to show what
# they cost), and nginx proxy_pass in front of it, at 1 and 64 connections
# with wrk.
# Prints p50/p99 latency, added latency vs direct, requests/s, CPU time per
# request, and RSS.
#
# Usage: bench/gateway.sh [DURATION]      (default 10s per run)
#        ROUNDS=5 bench/gateway.sh 5s     (64-connection rounds, default 3)
#        STREAM_UPSTREAM=false bench/gateway.sh   (ask the provider for whole
#          answers, as nginx and "direct" do; the default, true, streams them
#          from the provider and assembles them, as moltgate does by default)
#
# On a shared machine a single pair of runs can be off by 2x, so the
# 64-connection runs alternate moltgate and nginx ROUNDS times and the table
# shows medians; the ratio is the median of each round's own ratio. CPU time
# per request (from /proc/PID/stat: moltgate, nginx's workers, the fake
# provider for "direct") is steadier than req/s under foreign load.
# Needs: wrk, nginx (non-root, private prefix), a release build (done here).
# Everything listens on 127.0.0.1 only and stops when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
ROUNDS=${ROUNDS:-3}
FAKE_PORT=${FAKE_PORT:-18101}
GW_PORT=${GW_PORT:-18102}
NGX_PORT=${NGX_PORT:-18103}
BARE_PORT=${BARE_PORT:-18104}
STREAM_UPSTREAM=${STREAM_UPSTREAM:-true}

command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx not found (apt-get install nginx-light)"; exit 1; }

echo "== building (release)"
cargo build --release -q --bin moltgate --bin moltguard --example fake_provider

TMP=$(mktemp -d /tmp/moltgate-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened"; exit 1
}

target/release/examples/fake_provider "127.0.0.1:$FAKE_PORT" >/dev/null &
FAKE_PID=$!
PIDS+=($FAKE_PID)

cat >"$TMP/moltgate.toml" <<TOML
default_provider = "fake"
stream_upstream = $STREAM_UPSTREAM
[providers.fake]
base_url = "http://127.0.0.1:$FAKE_PORT/v1"
TOML
# A write key without a per-key limit (the client is this machine, which no
# per-IP limit applies to), sent by every wrk run to every target alike.
KEY=$(env -i PATH="$PATH" target/release/moltguard --home "$TMP" keys create --label bench \
  --scopes operator.write --rate-limit 0 2>/dev/null)
env -i PATH="$PATH" MOLTGATE_LOG=warn MOLTGATE_STATE_DIR="$TMP/state" \
  target/release/moltgate serve --config "$TMP/moltgate.toml" --listen "127.0.0.1:$GW_PORT" 2>"$TMP/moltgate.log" &
GW_PID=$!
PIDS+=($GW_PID)
env -i PATH="$PATH" MOLTGATE_LOG=warn MOLTGATE_STATE_DIR="$TMP/bare-state" GATEWAY_AUTH_REQUIRED=false SECURITY_FIREWALL=false \
  target/release/moltgate serve --config "$TMP/moltgate.toml" --listen "127.0.0.1:$BARE_PORT" 2>"$TMP/bare.log" &
BARE_PID=$!
PIDS+=($BARE_PID)

mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx/nginx.conf" <<NGX
daemon off;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/client_body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  upstream fake { server 127.0.0.1:$FAKE_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGX
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/logs/stderr.log" &
NGX_PID=$!
PIDS+=($NGX_PID)

wait_port "$FAKE_PORT"; wait_port "$GW_PORT"; wait_port "$NGX_PORT"; wait_port "$BARE_PORT"
NGX_WORKERS=$(pgrep -P "$NGX_PID" | tr '\n' ' ')

cat >"$TMP/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"fake-ok","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
RSS_IDLE=$(rss_kb "$GW_PID")

# Sanity: every path answers the same request with 200.
for port in "$FAKE_PORT" "$GW_PORT" "$NGX_PORT" "$BARE_PORT"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -H "authorization: Bearer $KEY" \
    -d '{"model":"fake-ok","messages":[{"role":"user","content":"hi"}]}' "http://127.0.0.1:$port/v1/chat/completions")
  [ "$code" = 200 ] || { echo "port $port answered $code"; cat "$TMP/moltgate.log"; exit 1; }
done

# Convert wrk's "45.12us" / "1.20ms" / "1.00s" to microseconds.
to_us() { awk -v v="$1" 'BEGIN{ n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n }'; }

# CPU time (user + system, clock ticks) used so far by the given processes.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
HZ=$(getconf CLK_TCK)
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

declare -A P50 P99 RPS CPU
run() { # name port conns threads pid... (the processes whose CPU time to count)
  local name=$1 port=$2 c=$3 t=$4 out t0 n
  shift 4
  t0=$(cpu_ticks "$@")
  wrk -t"$t" -c"$c" -d"$DUR" --latency -s "$TMP/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >"$TMP/wrk.out"
  out=$(cat "$TMP/wrk.out")
  if grep -q "Non-2xx" <<<"$out"; then echo "$name c=$c: non-2xx responses!"; grep -E "Non-2xx|Socket errors" <<<"$out"; fi
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  P50[$name/$c]=$(to_us "$(awk '$1=="50%"{print $2}' <<<"$out")")
  P99[$name/$c]=$(to_us "$(awk '$1=="99%"{print $2}' <<<"$out")")
  RPS[$name/$c]=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
  CPU[$name/$c]=$(awk -v d=$(($(cpu_ticks "$@") - t0)) -v n="$n" -v hz="$HZ" 'BEGIN {printf "%.1f", n ? d * 1e6 / hz / n : 0}')
}

echo "== warm-up (moltgate stream_upstream = $STREAM_UPSTREAM)"
for port in "$FAKE_PORT" "$GW_PORT" "$NGX_PORT" "$BARE_PORT"; do
  wrk -t1 -c4 -d2s -s "$TMP/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
done

echo "== 1 connection, $DUR each"
run direct "$FAKE_PORT" 1 1 "$FAKE_PID"
run moltgate "$GW_PORT" 1 1 "$GW_PID"
run bare "$BARE_PORT" 1 1 "$BARE_PID"
run nginx "$NGX_PORT" 1 1 $NGX_WORKERS

echo "== 64 connections, $DUR each: direct, then $ROUNDS rounds of moltgate and nginx"
run direct "$FAKE_PORT" 64 2 "$FAKE_PID"
declare -A R
RATIOS=()
for r in $(seq 1 "$ROUNDS"); do
  # Alternate which goes first, so a load trend does not favour one side.
  if ((r % 2)); then
    run moltgate "$GW_PORT" 64 2 "$GW_PID"
    run nginx "$NGX_PORT" 64 2 $NGX_WORKERS
    run bare "$BARE_PORT" 64 2 "$BARE_PID"
  else
    run bare "$BARE_PORT" 64 2 "$BARE_PID"
    run nginx "$NGX_PORT" 64 2 $NGX_WORKERS
    run moltgate "$GW_PORT" 64 2 "$GW_PID"
  fi
  for n in moltgate nginx bare; do
    R[P50/$n]+="${P50[$n/64]} "; R[P99/$n]+="${P99[$n/64]} "
    R[RPS/$n]+="${RPS[$n/64]} "; R[CPU/$n]+="${CPU[$n/64]} "
  done
  RATIOS+=("$(awk -v a="${RPS[moltgate/64]}" -v b="${RPS[nginx/64]}" 'BEGIN{printf "%.2f", a/b}')")
  printf '   round %d: moltgate %8s req/s %5s us CPU/req   nginx %8s req/s %5s us CPU/req   ratio %s   (load %s)\n' \
    "$r" "${RPS[moltgate/64]}" "${CPU[moltgate/64]}" "${RPS[nginx/64]}" "${CPU[nginx/64]}" "${RATIOS[-1]}" "$(cut -d' ' -f1 /proc/loadavg)"
done
for n in moltgate nginx bare; do
  # shellcheck disable=SC2086 # word splitting of the per-round lists is intended
  { P50[$n/64]=$(median ${R[P50/$n]}); P99[$n/64]=$(median ${R[P99/$n]}); RPS[$n/64]=$(median ${R[RPS/$n]}); CPU[$n/64]=$(median ${R[CPU/$n]}); }
done
RSS_LOADED=$(rss_kb "$GW_PID")

echo
printf '%-9s %5s %10s %10s %12s %12s %10s %10s\n' path conns p50_us p99_us added_p50_us added_p99_us req/s cpu_us/req
for c in 1 64; do
  for n in direct moltgate bare nginx; do
    k=$n/$c
    ap50=$(awk -v a="${P50[$k]}" -v b="${P50[direct/$c]}" 'BEGIN{printf "%.1f", a-b}')
    ap99=$(awk -v a="${P99[$k]}" -v b="${P99[direct/$c]}" 'BEGIN{printf "%.1f", a-b}')
    printf '%-9s %5s %10s %10s %12s %12s %10s %10s\n' "$n" "$c" "${P50[$k]}" "${P99[$k]}" "$ap50" "$ap99" "${RPS[$k]}" "${CPU[$k]}"
  done
done
echo "(64 connections: moltgate, bare and nginx rows are medians of $ROUNDS rounds; cpu_us/req of direct is the fake provider's)"
echo "(moltgate = default security layers on; bare = GATEWAY_AUTH_REQUIRED=false SECURITY_FIREWALL=false)"
echo
ratio=$(median "${RATIOS[@]}")
echo "moltgate/nginx throughput at 64 connections: ${ratio}x median of ${RATIOS[*]}   (target >= 0.70x)"
echo "moltgate RSS: idle $((RSS_IDLE / 1024)) MiB ($RSS_IDLE kB), after load $((RSS_LOADED / 1024)) MiB ($RSS_LOADED kB)   (target idle <= 30 MB)"
echo "targets at 1 connection: added p50 <= 300 us, added p99 <= 1000 us"
echo "security layers: p50 $(awk -v a="${P50[moltgate/1]}" -v b="${P50[bare/1]}" 'BEGIN{printf "%+.1f", a-b}') us at 1 connection, CPU $(awk -v a="${CPU[moltgate/64]}" -v b="${CPU[bare/64]}" 'BEGIN{printf "%+.1f", a-b}') us/request at 64"
