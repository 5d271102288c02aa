#!/usr/bin/env bash
# Debian's Chromium for the browser test (tests/ui), installed once with apt; never a browser download.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "Installing Debian's chromium for the browser test"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
