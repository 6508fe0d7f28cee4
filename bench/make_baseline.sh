#!/usr/bin/env bash
# Builds the deepshop_native of an earlier commit as the package `deepshop_base` in DIR, so that
# bench/bench_engine_regression.py can time the old and the new engine in one process, one run:
#
#     bash bench/make_baseline.sh <git-ref> /tmp/deepshop_baseline
#     DEEPSHOP_BASELINE=/tmp/deepshop_baseline python -m pytest bench/bench_engine_regression.py --benchmark-only
#
# The old extension is compiled with a different pybind11 ABI tag (PYBIND11_COMPILER_TYPE): that
# keeps the two modules' pybind11 type registries apart, and changes nothing in the generated code.
set -euo pipefail
ref=${1:?usage: make_baseline.sh GIT_REF DIR}
out=${2:?usage: make_baseline.sh GIT_REF DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git -C "$repo" archive --format=tar "$ref" | tar -x -C "$src"
if [ -d "$repo/.deps" ]; then cp -r "$repo/.deps" "$src/"; fi
site=$(mktemp -d)
CXXFLAGS='-DPYBIND11_COMPILER_TYPE=\"_deepshop_baseline\"' \
  "${PYTHON:-python3}" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
  --target "$site" "$src"
rm -rf "$out"
mkdir -p "$out"
mv "$site/deepshop_native" "$out/deepshop_base"
rm -rf "$site"
echo "baseline of $ref ($(git -C "$repo" rev-parse --short "$ref")) in $out/deepshop_base"
