#!/usr/bin/env bash
# Builds the extension with AddressSanitizer + UndefinedBehaviorSanitizer into its own folder
# (build/sanitize, never over the installed package) and runs the engine and kernel tests on it.
#
#   bash tools/sanitize.sh                      # engine + kernel tests
#   bash tools/sanitize.sh tests/test_gram.py   # any pytest arguments instead
#
# Needs what .ci/setup installs (run it first).  The build takes several minutes on 2 cores.
# Leak checking is off: CPython itself keeps allocations alive at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BUILD=build/sanitize
STAGE=$BUILD/stage

# The Python sources beside the sanitized module (copied: the build never writes into python/),
# without any module a development build left there.
mkdir -p "$STAGE/deepshop_native"
cp -r python/deepshop_native/. "$STAGE/deepshop_native/"
rm -f "$STAGE"/deepshop_native/_native*.so
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDEEPSHOP_SANITIZE=ON \
      -DPython_EXECUTABLE="$(command -v "$PY")" -DDEEPSHOP_MODULE_DIR="$PWD/$STAGE/deepshop_native" >/dev/null
cmake --build "$BUILD" -j "${JOBS:-2}"

ASAN_LIB=$(gcc -print-file-name=libasan.so)
UBSAN_LIB=$(gcc -print-file-name=libubsan.so)
[ $# -gt 0 ] || set -- tests/test_engine.py tests/test_engine_core.py tests/test_gram.py tests/test_posterize.py
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The tests skip OpenVINO here (tests/conftest.py): its TBB dlopens with RTLD_DEEPBIND, which
# AddressSanitizer aborts on.
export DEEPSHOP_SANITIZED=1
LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB" PYTHONPATH="$PWD/$STAGE:$PWD/export" \
  "$PY" -c "import deepshop_native._native as n, sys; sys.exit(0 if '$STAGE' in n.__file__ else 'not the sanitized build: ' + n.__file__)"
LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB" PYTHONPATH="$PWD/$STAGE:$PWD/export" \
  "$PY" -m pytest -q -p no:cacheprovider "$@"
