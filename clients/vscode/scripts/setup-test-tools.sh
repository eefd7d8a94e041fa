#!/usr/bin/env bash
# Installs what the real-VS-Code test needs, idempotently: Debian's chromium (driven by playwright-core), and
# code-server 4.100.3 (VS Code 1.100.3, the last release for Node 20) into clients/vscode/.tools.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"

if ! command -v chromium >/dev/null 2>&1 || ! command -v rg >/dev/null 2>&1 || ! dpkg -s libkrb5-dev >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-test-tools: need root to apt-get install chromium libkrb5-dev ripgrep" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libkrb5-dev ripgrep >/dev/null
fi

if [ ! -x "$TOOLS/node_modules/.bin/code-server" ] || [ ! -d "$TOOLS/node_modules/playwright-core" ]; then
    # @vscode/ripgrep downloads rg at install time, which fails offline: seed its cache with Debian's rg.
    cache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-1.15.11"
    mkdir -p "$cache"
    tarball="$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"
    if [ ! -f "$tarball" ]; then
        tmp="$(mktemp -d)"
        cp "$(command -v rg)" "$tmp/rg"
        tar -czf "$tarball" -C "$tmp" rg
        rm -rf "$tmp"
    fi
    mkdir -p "$TOOLS"
    [ -f "$TOOLS/package.json" ] || echo '{"name": "engram-ls-test-tools", "private": true}' > "$TOOLS/package.json"
    (cd "$TOOLS" && npm_config_unsafe_perm=true npm_config_yes=true JOBS=2 \
        npm install --no-audit --no-fund --foreground-scripts code-server@4.100.3 playwright-core@1.65.1 >"$TOOLS/install.log" 2>&1) \
        || { tail -40 "$TOOLS/install.log" >&2; exit 1; }
fi
echo "setup-test-tools: ready ($TOOLS)"
