#!/usr/bin/env bash
# Builds llama.cpp's C++ `llama-server` — the engine the team tests and bench run against — from the llama.cpp sources
# vendored in the llama-cpp-python sdist on PyPI (the same version the workers use), into .tools/ (gitignored).
# No PyPI package ships it prebuilt; only the server target and what it links are compiled, statically, without the
# web UI (its assets would be downloaded) and without OpenSSL (the tests speak plain HTTP on 127.0.0.1).
# Usage: bash tests/install_llama_server.sh   -> prints the binary's path; a second run reuses it (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.3.36
TOOLS="$PWD/.tools"
BIN="$TOOLS/llama-server-$VERSION/llama-server"
if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi
# A binary built before on this machine (by another checkout) is reused; a fresh machine builds it.
CACHED="${XDG_CACHE_HOME:-$HOME/.cache}/engram-ls/llama-server-$VERSION/llama-server"
if [ -x "$CACHED" ] && "$CACHED" --version >/dev/null 2>&1; then
    mkdir -p "$(dirname "$BIN")"
    cp "$CACHED" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
    echo "$BIN"
    exit 0
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p "$TOOLS/dl"
SDIST="$TOOLS/dl/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
    echo "== downloading the llama-cpp-python $VERSION sdist (llama.cpp sources)" >&2
    "$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$TOOLS/dl" >&2
fi
SRC="$TOOLS/llama_cpp_python-$VERSION/vendor/llama.cpp"
if [ ! -f "$SRC/tools/server/server.cpp" ]; then
    tar -xzf "$SDIST" -C "$TOOLS"
fi

BUILD="$TOOLS/llama-server-build-$VERSION"
echo "== building llama-server from llama.cpp in llama-cpp-python $VERSION (about 10 min on 2 cores)" >&2
start=$(date +%s)
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF >"$BUILD.log" 2>&1 \
    || { tail -30 "$BUILD.log" >&2; exit 1; }
cmake --build "$BUILD" --target llama-server --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" >>"$BUILD.log" 2>&1 \
    || { tail -30 "$BUILD.log" >&2; exit 1; }
mkdir -p "$(dirname "$BIN")"
cp "$BUILD/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
mkdir -p "$(dirname "$CACHED")" && cp "$BIN" "$CACHED.tmp" && mv "$CACHED.tmp" "$CACHED" || true
echo "== llama-server built in $(( $(date +%s) - start )) s" >&2
echo "$BIN"
