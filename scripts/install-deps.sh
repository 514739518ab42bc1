#!/usr/bin/env bash
# Installs what moltguard's stack and tests need besides Rust: nginx, htpasswd
# (for cross-checking hashes), python3-venv (the OpenAI SDK compatibility test
# and the Selenium driver of the dashboard test), Chromium with its
# chromedriver and a font (the dashboard test in a headless browser), wrk
# (benchmarks), man (the generated man pages are rendered with `man -l`),
# iproute2 and nftables (network namespaces and the guardian's containment
# in tests), fail2ban (its own filter is run on the edge's log), systemd
# (`systemd-analyze verify` and `security` on the units `install` writes), and npm
# (scripts/install-openclaw.sh: the real agent the tests run against).
# Debian/Ubuntu via apt-get, macOS via Homebrew.
set -euo pipefail
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends \
    nginx-light apache2-utils python3-venv python3-pip wrk man-db ca-certificates curl \
    chromium chromium-driver fonts-dejavu-core iproute2 nftables fail2ban systemd >/dev/null
  command -v npm >/dev/null 2>&1 || $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
elif command -v brew >/dev/null 2>&1; then
  brew install nginx wrk python
  # The dashboard test looks for Debian's /usr/bin/chromium and
  # /usr/bin/chromedriver; elsewhere it is skipped (outside CI).
else
  echo "install nginx (1.18 or newer), python3 with venv, and wrk with your package manager" >&2
  exit 1
fi
echo "dependencies installed"
