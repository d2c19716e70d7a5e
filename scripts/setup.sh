#!/bin/sh
# Installs the Debian packages txscan needs, only those missing. Idempotent.
set -eu
PKGS="build-essential cmake pkg-config libjavascriptcoregtk-4.1-dev libjansson-dev
libcmocka-dev libmicrohttpd-dev libgnutls28-dev libhiredis-dev libseccomp-dev libjemalloc-dev libglib2.0-dev libcurl4-openssl-dev redis-server curl openssl python3 chromium prometheus wrk clang libclang-rt-14-dev esbuild"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "setup: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "setup: missing packages:$missing; run as root, or: apt-get install$missing" >&2
    exit 1
  fi
else SUDO=""; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
