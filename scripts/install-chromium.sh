#!/usr/bin/env bash
# Installs Debian's chromium for the Temporal UI test (test/temporal-ui.test.ts), unless it is already there.
# Playwright drives this system browser: it never downloads a browser build of its own.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
