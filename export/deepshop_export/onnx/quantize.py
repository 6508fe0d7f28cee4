"""``deepshop-export quantize MODEL``: the int8 form of a feedforward style model, written beside it
as NAME.int8.onnx, where ``precision="int8"`` (and ``"auto"``, on CPUs where it pays:
cpp/engine/execution_providers.h, auto_cpu_precision) finds it.

Post-training static quantization with ONNX Runtime's quantizer in QDQ form (QuantizeLinear /
DequantizeLinear pairs around each quantized Conv, read by OpenVINO and ONNX Runtime alike):
int8 weights per output channel, uint8 activations per tensor, ranges calibrated (min/max) on
photos.  The first and the last convolution (the 9 x 9 ones that read and write RGB, 10% of a
TransformerNet's arithmetic) stay in fp32: quantized, they cost about 3 dB of PSNR.  Everything
else (instance norm, padding, upsampling, a global-statistics graph's measuring operators) stays
in float as well.

The photos are split with a fixed seed: calibration photos set the ranges, held-out photos are
only used to measure the int8 model against the fp32 one (PSNR and mean abs on 0..255 outputs,
through the engine on the route ``device`` takes).  The least held-out PSNR is written into the
file (deepshop.quantized_psnr) with the source's fingerprint (deepshop.quantized_from) and the
whole provenance (deepshop.quantization: method, photos, figures, command), next to a copy of
the source's metadata.  The file is written atomically and never replaces one unless asked.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import random
import sys
import tempfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from deepshop_native.core.errors import DeepshopError, ModelError, OptionError
from deepshop_native.core.files import atomic_write, check_not_an_input, output_exists_message, sha256_of

PROG = "deepshop-export quantize"
#: Families measured in int8 (plain TransformerNet graphs and their global-statistics graphs).
FAMILIES = ("transformer_net",)
DEFAULT_CALIBRATION = 32
DEFAULT_HELD_OUT = 8
DEFAULT_SIZE = 512
SPLIT_SEED = 0
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
#: The photos scikit-image ships (public domain / CC0, no download), the default photo set.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "immunohistochemistry",
                  "hubble_deep_field", "retina", "camera")


def quantized_path(model: str | os.PathLike) -> str:
    """NAME.int8.onnx for NAME.onnx: where the engine looks (cpp/engine/quantized_model.h)."""
    model = os.fspath(model)
    return (model[:-5] if model.endswith(".onnx") and len(model) > 5 else model) + ".int8.onnx"


def fingerprint(path: str | os.PathLike) -> str:
    """"BYTES:CRC32" of a file, as the engine computes it (deepshop.quantized_from)."""
    crc, size = 0, 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return f"{size}:{crc & 0xFFFFFFFF:08x}"


@dataclass
class Photo:
    name: str
    pixels: np.ndarray  # H x W x 3 uint8
    licence: str = ""   # from the folder's manifest.csv (fetch_photos.sh writes one), if any

    def label(self) -> str:
        return f"{self.name} ({self.licence})" if self.licence else self.name


def _manifest_licences(folder: str) -> dict:
    """file -> licence from a manifest.csv (columns "file" and "licence") in the folder, if any."""
    import csv
    path = os.path.join(folder, "manifest.csv")
    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row.get("file", ""): row.get("licence", "") for row in csv.DictReader(f)}


def _fit(pixels: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, -1)
    im = Image.fromarray(np.ascontiguousarray(pixels[..., :3]).astype(np.uint8))
    scale = size / max(im.size)
    if scale < 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC)
    return np.asarray(im)


def load_photos(folders: list[str], size: int) -> tuple[list[Photo], str]:
    """Every image under the folders (sorted), or the scikit-image photos when none is given, with
    the longer side brought down to ``size``; and a description of the set for the provenance."""
    from PIL import Image, UnidentifiedImageError
    photos = []
    if not folders:
        import skimage.data as sd
        for name in SKIMAGE_PHOTOS:
            try:
                arr = getattr(sd, name)()
            except Exception:  # an image that needs scikit-image's optional download: skipped
                continue
            photos.append(Photo(name, _fit(np.asarray(arr), size)))
        return photos, "the photos scikit-image ships (skimage.data, public domain / CC0)"
    for folder in folders:
        if not os.path.isdir(folder):
            raise OptionError(f"--photos {folder}: no such folder")
        found = []
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            found += [os.path.join(root, f) for f in sorted(files)
                      if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")]
        licences = _manifest_licences(folder)
        for path in found:
            try:
                with Image.open(path) as im:
                    pixels = np.asarray(im.convert("RGB"))
            except (OSError, UnidentifiedImageError, ValueError):
                continue  # unreadable files are skipped; the provenance lists the photos used
            name = os.path.relpath(path, folder)
            photos.append(Photo(name, _fit(pixels, size), licences.get(name, "")))
    what = f"{len(photos)} photos under " + ", ".join((os.path.basename(os.path.normpath(f)) or f) + "/" for f in folders)
    if any(p.licence for p in photos):
        what += " (each photo's licence from the folder's manifest.csv, as listed)"
    return photos, what


def split(photos: list[Photo], calibration: int, held_out: int) -> tuple[list[Photo], list[Photo]]:
    """A seeded shuffle: the first ``held_out`` are held out (at most a third of the photos, at
    least one), the next ``calibration`` calibrate."""
    if len(photos) < 2:
        raise OptionError(f"quantizing needs at least 2 photos (1 to calibrate, 1 held out), found {len(photos)}")
    order = list(photos)
    random.Random(SPLIT_SEED).shuffle(order)
    n_held = max(1, min(held_out, len(order) // 3))
    return order[n_held:n_held + calibration], order[:n_held]


def _graph_feeds(session_inputs: list, statistics: dict | None, pixels: np.ndarray, stride: int) -> dict:
    """The model's inputs for one photo (cropped to a multiple of the stride): the image, and for a
    global-statistics graph its own statistics (mix 0, the whole photo measured): the plain
    network's computation."""
    pixels = pixels[:pixels.shape[0] // stride * stride, :pixels.shape[1] // stride * stride]
    x = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], dtype=np.float32)
    feeds = {session_inputs[0]: x}
    if statistics:
        names, channels = statistics["inputs"], int(statistics["total_channels"])
        h, w = pixels.shape[:2]
        feeds.update({names["mean"]: np.zeros(channels, np.float32), names["var"]: np.ones(channels, np.float32),
                      names["mix"]: np.zeros(1, np.float32), names["mask"]: np.ones((1, 1, h, w), np.float32)})
    return feeds


@contextlib.contextmanager
def _quiet_root_logger():
    """ONNX Runtime's quantizer logs advice on the root logger ("consider pre-processing"): muted."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@dataclass
class QuantizeReport:
    path: str
    psnr_db: list = field(default_factory=list)  # per held-out photo
    mean_abs: list = field(default_factory=list)
    device: str = ""
    calibration: int = 0

    def summary(self) -> str:
        return (f"{self.path}: int8, calibrated on {self.calibration} photos; against fp32 on "
                f"{len(self.psnr_db)} held-out photos ({self.device}): PSNR min {min(self.psnr_db):.2f} dB, "
                f"mean {np.mean(self.psnr_db):.2f} dB; mean abs {np.mean(self.mean_abs):.3f} (0..255)")


def _check_source(model: str) -> dict:
    from deepshop_native.core.metadata import PREFIX, MetadataReadError, read_metadata
    try:
        meta = read_metadata(model)
    except FileNotFoundError:
        raise ModelError(f"{model}: no such model file") from None
    except (OSError, MetadataReadError) as e:
        raise ModelError(f"{model}: not a readable ONNX model ({e})") from None
    family = meta.get(PREFIX + "family", "")
    if family not in FAMILIES:
        raise ModelError(f"{model}: family {family or '(none)'!r} is not one measured in int8 "
                         f"({', '.join(FAMILIES)}: feedforward style networks)")
    precision = meta.get(PREFIX + "precision", "fp32")
    if precision != "fp32":
        raise ModelError(f"{model}: its precision is {precision}; quantize its fp32 export")
    return meta


def _write_metadata(model, values: dict) -> None:
    from .metadata import write_metadata
    write_metadata(model, values)


def _measure(source: str, candidate: str, photos: list[Photo], device: str) -> tuple[list, list, str]:
    import deepshop_native as ds
    fp32 = ds.Stylizer(source, device=device, precision="fp32")
    int8 = ds.Stylizer(candidate, device=device, precision="int8")
    psnr, mean_abs = [], []
    for p in photos:
        a = fp32(p.pixels).astype(np.float64)
        b = int8(p.pixels).astype(np.float64)
        mse = float(np.mean((a - b) ** 2))
        psnr.append(float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse)))
        mean_abs.append(float(np.mean(np.abs(a - b))))
    return psnr, mean_abs, f"{int8.device_used} ({int8.provider})"


def quantize_model(model: str | os.PathLike, output: str | os.PathLike | None = None, *,
                   photos: list[str] | None = None, calibration: int = DEFAULT_CALIBRATION,
                   held_out: int = DEFAULT_HELD_OUT, size: int = DEFAULT_SIZE, device: str = "auto",
                   overwrite: bool = False, command: str = "", log=None) -> QuantizeReport:
    """Quantize ``model`` (fp32 ONNX, family transformer_net) to ``output`` (default
    NAME.int8.onnx beside it) and measure it; see the module's docstring."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, \
        quantize_static
    from deepshop_native.core.metadata import PREFIX

    model = os.fspath(model)
    output = quantized_path(model) if output is None else os.fspath(output)
    for name, value, lo in (("--calibration", calibration, 1), ("--held-out", held_out, 1), ("--size", size, 64)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= 100_000:
            raise OptionError(f"{name}: must be an integer from {lo} to 100000, got {value!r}")
    check_not_an_input(output, [model])
    if not overwrite and os.path.lexists(output):
        from deepshop_native.core.files import OutputExistsError
        raise OutputExistsError(output_exists_message(output))
    meta = _check_source(model)
    statistics = json.loads(meta[PREFIX + "statistics"]) if PREFIX + "statistics" in meta else None
    say = log or (lambda text: None)

    all_photos, photo_set = load_photos(list(photos or []), size)
    calib, held = split(all_photos, calibration, held_out)
    say(f"{len(calib)} calibration and {len(held)} held-out photos ({photo_set})")
    source = onnx.load(model)
    convs = [n.name for n in source.graph.node if n.op_type == "Conv"]
    if len(convs) < 3:
        raise ModelError(f"{model}: {len(convs)} convolutions; the int8 form quantizes all but the first and last")
    kept_float = [convs[0], convs[-1]]
    input_names = [i.name for i in ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_inputs()]
    stride = int(meta.get(PREFIX + "stride_multiple", "1") or 1)

    class Photos(CalibrationDataReader):
        def __init__(self):
            self._feeds = iter([_graph_feeds(input_names, statistics, p.pixels, stride) for p in calib])

        def get_next(self):
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(prefix="deepshop-quantize-") as tmp, _quiet_root_logger():
        candidate = os.path.join(tmp, "model.int8.onnx")
        try:
            quantize_static(model, candidate, Photos(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["Conv"],
                            nodes_to_exclude=kept_float, calibrate_method=CalibrationMethod.MinMax)
        except Exception as e:  # ONNX Runtime's own errors (a graph it cannot run or quantize)
            raise ModelError(f"{model}: ONNX Runtime could not quantize it ({str(e).splitlines()[0][:300]})") from e
        quantized = onnx.load(candidate)
        # The source's deepshop keys (quantize_static keeps them; set again so that none is lost).
        source_keys = {p.key[len(PREFIX):]: p.value for p in source.metadata_props if p.key.startswith(PREFIX)}
        _write_metadata(quantized, {**source_keys, "precision": "int8", "quantized_from": fingerprint(model),
                                    "quantized_psnr": "0"})
        onnx.save(quantized, candidate)
        say(f"measuring against fp32 on {len(held)} held-out photos")
        psnr, mean_abs, used = _measure(model, candidate, held, device)

    report = QuantizeReport(output, psnr, mean_abs, used, len(calib))
    provenance = {
        "method": f"onnxruntime {ort.__version__} quantize_static, QDQ: int8 weights per output channel, uint8 "
                  "activations per tensor, MinMax calibration",
        "quantized": f"{len(convs) - len(kept_float)} of {len(convs)} Conv nodes",
        "kept_float": kept_float,
        "source": {"file": os.path.basename(model), "sha256": sha256_of(model)},
        "photos": photo_set,
        "size": f"longer side at most {size} px",
        "calibration": sorted(p.label() for p in calib),
        "held_out": {"photos": [p.label() for p in held], "device": used,
                     "psnr_db": [round(v, 2) for v in psnr], "mean_abs": [round(v, 4) for v in mean_abs]},
        "command": command or f"{PROG} {os.path.basename(model)}",
        "created_utc": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    }
    _write_metadata(quantized, {"quantized_psnr": f"{min(psnr):.2f}", "quantization": json.dumps(provenance)})
    data = quantized.SerializeToString()
    atomic_write(output, lambda f: f.write(data), overwrite, error=ModelError)
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("model", help="fp32 ONNX style model (family transformer_net, plain or global-statistics graph)")
    p.add_argument("-o", "--output", help="the int8 file (default: NAME.int8.onnx beside NAME.onnx, where the engine "
                                          "looks for it)")
    p.add_argument("--photos", action="append", metavar="DIR",
                   help="folder of photos, searched recursively (repeatable; default: the scikit-image photos)")
    p.add_argument("--calibration", type=int, default=DEFAULT_CALIBRATION,
                   help=f"photos that set the activation ranges (default {DEFAULT_CALIBRATION})")
    p.add_argument("--held-out", type=int, default=DEFAULT_HELD_OUT,
                   help=f"photos kept out of calibration to measure the error (default {DEFAULT_HELD_OUT}, at most a "
                        "third of the photos)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE,
                   help=f"longer side the photos are brought down to (default {DEFAULT_SIZE})")
    p.add_argument("--device", default="auto", help="where the error is measured (default: auto, the route the "
                                                    "engine takes for int8)")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    # Recorded in the file's provenance: paths shortened to their last part.
    command = " ".join([PROG] + [os.path.basename(os.path.normpath(a)) if os.sep in a else a for a in argv])
    try:
        report = quantize_model(args.model, args.output, photos=args.photos, calibration=args.calibration,
                                held_out=args.held_out, size=args.size, device=args.device, overwrite=args.overwrite,
                                command=command, log=lambda text: print(f"{PROG}: {text}", file=sys.stderr))
    except DeepshopError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
