#!/usr/bin/env bash
# What a breaker transition costs end to end (one `moltguard breaker …`
# process: settle, write-ahead, render, nginx -t twice, reload, verify,
# audit, commit) and what `status` costs (settle, one probe), against a real
# nginx on a private prefix. Figures for BENCHMARKS.md.
#
# Usage: bench/breaker.sh [ROUNDS]            (release build; loopback only)
#        BASELINE=/path/to/old/moltguard bench/breaker.sh   (the same, for an older build too)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-30}
cargo build --release -q --bin moltguard

run() { # label binary
  local label=$1 bin=$2 home port
  home=$(mktemp -d /tmp/moltguard-bench.XXXXXX)
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  "$bin" --home "$home" init --edge-port "$port" --upstream-port 1 >/dev/null
  echo "correct-horse-battery" | "$bin" --home "$home" auth add-user bench --password-stdin >/dev/null
  "$bin" --home "$home" nginx start >/dev/null
  python3 - "$bin" "$home" "$ROUNDS" "$label" <<'PY'
import statistics, subprocess, sys, time
bin, home, rounds, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def timed(*args):
    t = time.perf_counter()
    subprocess.run([bin, "--home", home, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return (time.perf_counter() - t) * 1000
samples = {"close (OPEN -> CLOSED)": [], "open (CLOSED -> OPEN)": [], "status": []}
for _ in range(rounds):
    samples["close (OPEN -> CLOSED)"].append(timed("breaker", "close"))
    samples["status"].append(timed("status"))
    samples["open (CLOSED -> OPEN)"].append(timed("breaker", "open"))
for name, xs in samples.items():
    xs.sort()
    print(f"{label:<10} {name:<24} p50 {statistics.median(xs):7.1f} ms   p90 {xs[int(len(xs)*0.9)-1]:7.1f} ms   max {xs[-1]:7.1f} ms   (n={len(xs)})")
PY
  "$bin" --home "$home" nginx stop >/dev/null
  rm -rf "$home"
}

run current target/release/moltguard
if [ -n "${BASELINE:-}" ]; then
  run baseline "$BASELINE"
fi
