#!/usr/bin/env bash
# Build paq8px, the context-mixing compressor the ladder compares with, from its public source:
#   bash benchmarks/paq8px.sh [SOURCE]      # SOURCE: a git URL or a local clone
# It lands in ~/.cache/wordgpt/tools/paq8px; benchmarks/evaluation.py and quality.py --ladder
# use it from there (or from PATH, or $PAQ8PX) and say "not installed" without it.
# Needs git, cmake and a C++17 compiler (Debian: build-essential cmake).
set -euo pipefail
src="${1:-https://github.com/hxim/paq8px}"
out="${XDG_CACHE_HOME:-$HOME/.cache}/wordgpt/tools"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q --depth 1 "$src" "$work/paq8px" 2>/dev/null || git clone -q "$src" "$work/paq8px"
mkdir -p "$work/paq8px/build/out" "$out"
cd "$work/paq8px/build/out"
cmake -G "Unix Makefiles" -DNDEBUG=ON ../.. >/dev/null
make -j"$(nproc)" >/dev/null
cp paq8px "$out/paq8px"
echo "built $out/paq8px ($(git -C "$work/paq8px" rev-parse --short HEAD))"
