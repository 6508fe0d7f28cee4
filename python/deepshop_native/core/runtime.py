"""Finding and loading the ONNX Runtime shared library for the native engine, and the
execution-provider plugins it can use.

The engine is compiled against ORT's headers only; the library comes from whichever of the
onnxruntime / onnxruntime-gpu wheels is installed (both install the package folder
``onnxruntime/`` with ``capi/libonnxruntime.so.<version>``), or from the system.  The OpenVINO
plugin comes from the onnxruntime-ep-openvino wheel (``onnxruntime_ep_openvino/``).  Neither
Python module is imported (the plugin's would load OpenVINO): only their folders are looked up.
"""
from __future__ import annotations

import importlib.util
import os
import re
import threading
from pathlib import Path

from .. import _native
from .errors import RuntimeNotFoundError

ENV_LIBRARY = "DEEPSHOP_ORT_LIBRARY"
#: The OpenVINO plugin library to use instead of the installed wheel's; set to a path that does not
#: exist (e.g. "none") to hide the plugin.
ENV_OPENVINO_LIBRARY = "DEEPSHOP_OPENVINO_EP_LIBRARY"
OPENVINO_PLUGIN_FILE = "libonnxruntime_providers_openvino_plugin.so"
#: OpenVINO's own C API library (the direct backend, used where the plugin serves no device) to use
#: instead of the `openvino` wheel's; a path that does not exist (e.g. "none") turns it off.
ENV_OPENVINO_DIRECT_LIBRARY = "DEEPSHOP_OPENVINO_LIBRARY"
_lock = threading.Lock()


def _version_key(path: Path):
    return tuple(int(p) for p in re.findall(r"\d+", path.name.split(".so", 1)[-1]))


def find_onnxruntime_library() -> str:
    """Path of the ONNX Runtime library to load: $DEEPSHOP_ORT_LIBRARY, else the installed wheel's,
    else "" (the system's libonnxruntime.so from the loader's search path)."""
    explicit = os.environ.get(ENV_LIBRARY)
    if explicit:
        return explicit
    spec = importlib.util.find_spec("onnxruntime")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            capi = Path(folder) / "capi"
            libs = [p for p in capi.glob("libonnxruntime.so*") if "providers" not in p.name]
            if libs:
                return str(max(libs, key=_version_key))
    return ""


def _find_library(env_var: str, package: str, pattern: str, turned_off: str, not_installed: str) -> tuple[str, str]:
    """(path, "") of a library, or ("", why it is unavailable): $env_var when set (a path that is not
    a file turns the library off), else the newest file matching `pattern` in the installed
    `package`'s folder, found without importing it."""
    explicit = os.environ.get(env_var)
    if explicit:
        if Path(explicit).is_file():
            return explicit, ""
        return "", f"${env_var} is {explicit!r}, which is not a file (so {turned_off} is off)"
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            libs = [p for p in Path(folder).glob(pattern) if p.is_file()]
            if libs:
                return str(max(libs, key=_version_key)), ""
    return "", not_installed


def find_openvino_plugin() -> tuple[str, str]:
    """(path, "") of the OpenVINO execution-provider plugin, or ("", why it is unavailable):
    $DEEPSHOP_OPENVINO_EP_LIBRARY when set, else the onnxruntime-ep-openvino wheel's library."""
    return _find_library(ENV_OPENVINO_LIBRARY, "onnxruntime_ep_openvino", OPENVINO_PLUGIN_FILE, "the OpenVINO plugin",
                         "the OpenVINO plugin is not installed (pip install 'deepshop-native[openvino]', or point "
                         f"${ENV_OPENVINO_LIBRARY} at {OPENVINO_PLUGIN_FILE})")


def find_openvino_library() -> tuple[str, str]:
    """(path, "") of OpenVINO's C API library (libopenvino_c.so) for calling OpenVINO directly, or
    ("", why it is unavailable): $DEEPSHOP_OPENVINO_LIBRARY when set, else the `openvino` wheel's
    (``openvino/libs/libopenvino_c.so.<version>``)."""
    return _find_library(ENV_OPENVINO_DIRECT_LIBRARY, "openvino", "libs/libopenvino_c.so*", "direct OpenVINO",
                         "the openvino package is not installed (pip install 'deepshop-native[openvino]', or point "
                         f"${ENV_OPENVINO_DIRECT_LIBRARY} at libopenvino_c.so)")


def openvino_direct_devices() -> tuple[str, list[str], str]:
    """(OpenVINO's version, the devices it serves, "") when OpenVINO can be called directly here,
    else ("", [], why not)."""
    from .errors import DeviceError
    path, missing = find_openvino_library()
    if not path:
        return "", [], missing
    try:
        version, devices = _native.openvino_direct_devices(path)
    except DeviceError as e:
        return "", [], str(e)
    return version, list(devices), ""


def ensure_runtime() -> str:
    """Load ONNX Runtime once per process; returns its version."""
    with _lock:
        if _native.runtime_loaded():
            return _native.runtime_version()
        path = find_onnxruntime_library()
        try:
            return _native.load_runtime(path)
        except RuntimeNotFoundError as e:
            hint = ("" if path else " No onnxruntime package was found.") + (
                " Install one of: `pip install onnxruntime` (CPU) or `pip install onnxruntime-gpu` (CUDA),"
                f" or point ${ENV_LIBRARY} at libonnxruntime.so.")
            raise RuntimeNotFoundError(f"{e}.{hint}") from None


def runtime_version() -> str:
    return ensure_runtime()


def available_providers() -> list[str]:
    ensure_runtime()
    return list(_native.available_providers())


def runtime_library() -> str:
    ensure_runtime()
    return _native.runtime_library()


def execution_devices() -> list[tuple[str, str, str]]:
    """(provider, device type, vendor) for every device ONNX Runtime's providers can run on, the
    OpenVINO plugin's included when it is installed and serves this machine."""
    ensure_runtime()
    path, missing = find_openvino_plugin()
    _native.register_openvino(path, missing)
    return [tuple(d) for d in _native.ep_devices()]
