"""Option values, validated once, at the edge: the Python API (:class:`~deepshop_native.Stylizer`,
:func:`~deepshop_native.stylize`, the kernels) and the ``deepshop`` commands call these functions
before anything reaches the C++ core, so that a bad value is refused with an
:class:`~deepshop_native.errors.OptionError` (a ``DeepshopError`` and a ``ValueError``) naming
the option and the reason, never a pybind11 signature dump, a crash or thousands of threads.

Every size is bounded by :data:`MAX_SIDE` (2^20 pixels: far beyond any image the pixel limit
lets through, and small enough that no tile arithmetic can overflow int64), threads by
:data:`THREADS_PER_CORE` times the cores.  Imports nothing of the package but the errors (no C++ extension).
"""
from __future__ import annotations

import math
import numbers
import os
import re
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .errors import OptionError

#: Largest tile, overlap, halo, harmonize size, max side and stride multiple (pixels).
MAX_SIDE = 1 << 20
#: Most tiles per network call.
MAX_BATCH = 256
#: Threads are refused beyond this many per core (more only thrash, and thousands of threads
#: exhaust the address space).
THREADS_PER_CORE = 4
#: Pixel-format values (value range ends, means) are refused beyond this magnitude.
MAX_PIXEL_VALUE = 1e6
#: Least width of a value range: narrower ranges turn every pixel step into a huge jump.
MIN_VALUE_SPAN = 1e-3

CHANNEL_ORDERS = ("RGB", "BGR")
#: Statistics modes of models carrying a global-statistics graph (cpp/engine/statistics_mode.h).
STATISTICS_MODES = ("auto", "thumbnail", "exact", "off")
#: The smallest thumbnail the statistics modes take (smaller ones say nothing about a photo).
MIN_STATISTICS_SIZE = 16
#: Device names, and whether they take an index ("cuda:1").
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:(?P<index>\d{1,4}))?|openvino(:[A-Za-z0-9_.]{1,32})?)$")


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_integer(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int within [lo, hi]: bools, floats with a fraction, strings are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise OptionError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise OptionError(f"{name}: must be from {lo} to {hi}, got {value}")
    return value


def check_number(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a finite float within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise OptionError(f"{name}: must be a finite number, got {value}")
    if not lo <= value <= hi:
        raise OptionError(f"{name}: must be within [{lo:g}, {hi:g}], got {value:g}")
    return value


def check_size(name: str, value: Any, *, lo: int = 0, none_ok: bool = False) -> Optional[int]:
    """A size in pixels, lo..MAX_SIDE (None allowed when ``none_ok``)."""
    if value is None and none_ok:
        return None
    return check_integer(name, value, lo, MAX_SIDE)


def check_threads(value: Any, name: str = "threads") -> int:
    """Threads: 0 (the runtime's default, every core) up to THREADS_PER_CORE x the cores."""
    cores = cpu_count()
    most = THREADS_PER_CORE * cores
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > most:
        raise OptionError(f"{name}: {int(value)} is more than {THREADS_PER_CORE} per core ({cores} "
                          f"core(s) here, so at most {most}); 0 uses every core")
    return check_integer(name, value, 0, most)


def check_device(value: Any, name: str = "device") -> str:
    """"auto", "cpu", "cuda", "cuda:N" (N < 10000) or "openvino[:TARGET]"."""
    if not isinstance(value, str):
        raise OptionError(f"{name}: expected a string such as 'auto', 'cpu' or 'cuda:0', got {value!r}")
    text = value.strip().lower()
    if not _DEVICE_RE.match(text):
        raise OptionError(f"{name}: {value!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'openvino', "
                          f"'openvino:CPU', 'openvino:GPU', 'openvino:NPU'")
    return text


def check_channel_order(value: Any, name: str = "channel_order") -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in CHANNEL_ORDERS:
        raise OptionError(f"{name}: must be 'RGB' or 'BGR', got {value!r}")
    return value.upper()


def _check_numbers(name: str, value: Any, count: int) -> Tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "__len__"):
        raise OptionError(f"{name}: expected {count} numbers, got {value!r}")
    try:
        items = list(value)
    except TypeError:
        raise OptionError(f"{name}: expected {count} numbers, got {value!r}") from None
    if len(items) != count:
        raise OptionError(f"{name}: expected {count} numbers, got {len(items)}")
    return tuple(check_number(name, v, -MAX_PIXEL_VALUE, MAX_PIXEL_VALUE) for v in items)


def check_value_range(value: Any, name: str = "value_range") -> Optional[Tuple[float, float]]:
    """(lo, hi): finite, ordered and at least MIN_VALUE_SPAN apart."""
    if value is None:
        return None
    lo, hi = _check_numbers(name, value, 2)
    if not hi - lo >= MIN_VALUE_SPAN:
        raise OptionError(f"{name}: needs lo < hi (at least {MIN_VALUE_SPAN:g} apart), got ({lo:g}, {hi:g})")
    return lo, hi


def check_mean(value: Any, name: str = "mean") -> Optional[Tuple[float, float, float]]:
    """Three finite per-channel means."""
    if value is None:
        return None
    return _check_numbers(name, value, 3)  # type: ignore[return-value]


def check_strength(value: Any) -> float:
    return check_number("strength", value, 0.0, 1.0)


def check_quality(value: Any) -> int:
    return check_integer("quality", value, 0, 100)


def check_max_side(value: Any) -> Optional[int]:
    """None for no limit; otherwise 1..MAX_SIDE (0 is refused: it used to mean "no limit" silently)."""
    return check_size("max_side", value, lo=1, none_ok=True)


def check_statistics(value: Any, name: str = "statistics") -> str:
    if not isinstance(value, str) or value.lower() not in STATISTICS_MODES:
        raise OptionError(f"{name}: must be one of {', '.join(STATISTICS_MODES)}, got {value!r}")
    return value.lower()


def engine_options(*, device: Any = "auto", tile: Any = None, halo: Any = None, overlap: Any = 0, batch: Any = 1,
                   threads: Any = 0, harmonize: Any = 0, statistics: Any = "auto", statistics_size: Any = None,
                   value_range: Any = None, channel_order: Any = None, mean: Any = None,
                   stride_multiple: Any = None) -> dict:
    """Every engine option of :class:`~deepshop_native.Stylizer`, validated (tile None means 0:
    the whole image; halo None: from the model)."""
    return dict(
        device=check_device(device),
        tile=check_size("tile", 0 if tile is None else tile),
        halo=check_size("halo", halo, none_ok=True),
        overlap=check_size("overlap", overlap),
        batch=check_integer("batch", batch, 1, MAX_BATCH),
        threads=check_threads(threads),
        harmonize=check_size("harmonize", harmonize),
        statistics=check_statistics(statistics),
        statistics_size=None if statistics_size is None
        else check_integer("statistics_size", statistics_size, MIN_STATISTICS_SIZE, MAX_SIDE),
        value_range=check_value_range(value_range),
        channel_order=check_channel_order(channel_order),
        mean=check_mean(mean),
        stride_multiple=None if stride_multiple is None else check_integer("stride_multiple", stride_multiple, 1, 1 << 16),
    )


def check_blend_weights(count: int, weights: Optional[Sequence[float]]) -> np.ndarray:
    """Blend weights of ``count`` styles, normalised to sum 1 (None: equal): one finite weight
    >= 0 per style, not all 0; OptionError naming style_weights otherwise."""
    import numpy as np
    if weights is None:
        return np.full(count, 1.0 / count)
    try:
        w = np.asarray([float(v) for v in weights], dtype=np.float64)
    except (TypeError, ValueError):
        raise OptionError(f"style_weights: expected numbers, got {weights!r}") from None
    if len(w) != count:
        raise OptionError(f"style_weights: {len(w)} weight(s) for {count} style image(s); give one weight per style")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise OptionError(f"style_weights: must be finite, >= 0 and not all 0, got {list(w)}")
    return w / w.sum()
