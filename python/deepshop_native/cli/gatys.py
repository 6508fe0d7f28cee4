"""`deepshop gatys`: Gatys et al.'s optimisation-based style transfer (deepshop_native.pipelines.gatys).

    deepshop gatys -c CONTENT -s STYLE [-s STYLE2 --style-weights 0.7,0.3] [-r RATIO -n ITERS -l LENGTH
                   --init content|mixed|noise --model hed|vgg16|vgg19|FILE.onnx --pooling max|avg
                   --tv-weight W --style-scale S --original-colors --optimizer lbfgs|adam --save-every N
                   --seed N --device D --precision auto|fp32|bf16 --tile N --out FILE|DIR --overwrite]

Model names resolve to exported graphs (deepshop_native.pipelines.gatys.resolve_model; nothing downloads).
With ``--out`` a folder (or without ``--out``: the content photo's folder) the output is named
``CONTENT-STYLE-MODEL-POOLING-rRATIO-nITERS.jpg``; ``--save-every N`` writes the image every N
iterations beside it as ``...-iterK.jpg``.  Every output, snapshots included, is checked before
the optimisation starts (never replaced without ``--overwrite``, never an input: not the content or
a style image, whatever ``--overwrite`` says) and written atomically.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from ..core import options
from ..core.errors import OptionError, OutputExistsError
from ..core.files import InputFiles, check_not_an_input, output_exists_message
from ..image import is_image_name, is_writable_name, read_image, write_image
from ..image.formats import is_unwritable_image_name
from .common import add_max_pixels_option, add_output_flags, as_cli_option


def _weights(text: str):
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return values


def register(subparsers) -> argparse.ArgumentParser:
    from ..pipelines.gatys import (DEFAULT_COARSE_LENGTH, DEFAULT_MODEL, DEFAULT_TV_WEIGHT, INITS, MODEL_NAMES,
                                   MODELS_ENV, OPTIMIZERS, POOLINGS)
    p = subparsers.add_parser(
        "gatys", help="style transfer by optimisation (Gatys et al.): slow, any style image, no training",
        description="Optimise the pixels of an image until its VGG features match the content photo's and its "
                    "Gram matrices the style image's (L-BFGS-B or Adam, the loss and gradient run by the engine). "
                    f"Model names resolve to graphs exported by deepshop-export gatys in ${MODELS_ENV} or "
                    "~/.cache/deepshop/gatys.")
    p.add_argument("-c", "--content", required=True, metavar="IMAGE", help="content photo")
    p.add_argument("-s", "--style", required=True, action="append", metavar="IMAGE",
                   help="style image (repeat for several, blended by --style-weights)")
    p.add_argument("--style-weights", type=_weights, metavar="W1,W2", help="blend weights of the style images "
                                                                           "(default: equal)")
    p.add_argument("-r", "--ratio", type=float, default=1e4, help="style-to-content weight ratio (default: 1e4)")
    p.add_argument("-n", "--iterations", type=int, default=512, help="iterations (default: 512; at the coarsest "
                                                                     "level when coarse-to-fine)")
    p.add_argument("-l", "--length", type=int, default=512, help="longer side of the output (default: 512)")
    p.add_argument("--init", choices=INITS, default="content", help="start image (noise: 1/f spectrum; mixed: "
                                                                    "their mean); default content")
    p.add_argument("-m", "--model", default=DEFAULT_MODEL, metavar="|".join(MODEL_NAMES) + "|FILE.onnx",
                   help="feature network: vgg19 (ImageNet, the default), hed (HED's VGG16), vgg16 (a torchvision "
                        "weights file exported by you), or an exported .onnx graph; vgg19's and hed's graphs are made "
                        "on first use")
    p.add_argument("--pooling", choices=POOLINGS, default=None,
                   help="pooling of the named model's graph (default: max; a file keeps its own)")
    p.add_argument("--tv-weight", type=float, default=DEFAULT_TV_WEIGHT,
                   help=f"total-variation weight (default: {DEFAULT_TV_WEIGHT:g})")
    p.add_argument("--style-scale", type=float, default=1.0, help="style image size relative to the output "
                                                                  "(default: 1)")
    p.add_argument("--original-colors", action="store_true", help="keep the content photo's colours "
                                                                  "(luminance transfer)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs", help="default: lbfgs (L-BFGS-B, memory 8)")
    p.add_argument("--learning-rate", type=float, default=10.0, help="Adam's step size on 0..255 pixels "
                                                                     "(default: 10)")
    p.add_argument("--coarse-length", type=int, default=DEFAULT_COARSE_LENGTH,
                   help="coarse-to-fine: outputs longer than this start at half size or less "
                        f"(default: {DEFAULT_COARSE_LENGTH}); 0: one level")
    p.add_argument("--refine-iterations", type=int, default=None,
                   help="iterations of each finer level (default: a quarter of --iterations)")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="evaluate levels larger than N x N pixels tile by tile (needs the tile graph beside the "
                        "graph, NAME-tiled.onnx from deepshop-export gatys --tiled); 0: never; default: tiles of "
                        "768 for levels over 1536 x 1536 pixels where the tile graph is there")
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="also write the image every N iterations")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise start (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, openvino (default: auto: OpenVINO "
                                                    "where the openvino package is installed, else cpu)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="precision of the loss and gradient (default: auto = fp32, but on OpenVINO's CPU device "
                        "where the CPU has AVX512-BF16 or AMX: bf16, handing over to fp32 where bf16 stops "
                        "making progress (it rounds the Gram matrices to 8 bits, which near the optimum can "
                        "spoil the style gradient); fp32 or bf16 throughout when asked for)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    p.add_argument("-o", "--out", default=None, metavar="FILE|DIR",
                   help="output file, or folder for a name recording model, ratio and iterations "
                        "(default: the content photo's folder)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default: 95)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (never an input)")
    add_max_pixels_option(p, ", and outputs (--length) or styles (--style-scale) larger than this")
    add_output_flags(p, json_help="one JSON object on stdout (input, output, size, style, provider, precision, "
                                  "seconds, loss)")
    p.set_defaults(func=run)
    return p


def output_name(args, model_tag: str) -> str:
    styles = "+".join(Path(s).stem for s in args.style)
    return f"{Path(args.content).stem}-{styles}-{model_tag}-r{args.ratio:g}-n{args.iterations}.jpg"


def output_path(args, model_tag: str) -> Path:
    """--out as a file when it has an image extension and is not a folder; else a folder."""

    if args.out is None:
        return Path(args.content).parent / output_name(args, model_tag)
    out = Path(args.out)
    if not out.is_dir() and not args.out.endswith(("/", "\\")):
        if is_unwritable_image_name(out.name):     # x.gif, x.bmp: not a folder to make
            raise OptionError(f"--out: cannot write images of type {out.suffix} ({out}); give .jpg, .png, .webp "
                              "or .tif, or a folder")
        if is_image_name(out.name) and is_writable_name(out.name):
            return out
    return out / output_name(args, model_tag)


def snapshot_path(dst: Path, iteration: int) -> Path:
    return dst.with_name(f"{dst.stem}-iter{iteration:05d}{dst.suffix}")


def check_outputs(dst: Path, reads: InputFiles, save_every: int, last_iteration: int, overwrite: bool) -> None:
    """Before any work: the result and every snapshot the run may write (iterations save_every,
    2 save_every, ... up to last_iteration) are no input, and none exists unless ``overwrite``.
    A snapshot can exist only where a file of its name is: the folder is listed once."""
    check_not_an_input(dst, reads)
    if dst.exists() and not overwrite:
        raise OutputExistsError(output_exists_message(str(dst)))
    if not save_every:
        return
    pattern = re.compile(re.escape(dst.stem) + r"-iter(\d+)" + re.escape(dst.suffix) + "$")
    try:
        names = sorted(os.listdir(dst.parent))
    except OSError:       # no folder yet: nothing in it to replace
        return
    for name in names:
        match = pattern.match(name)
        if not match:
            continue
        n = int(match.group(1))
        if not (0 < n <= last_iteration and n % save_every == 0 and snapshot_path(dst, n).name == name):
            continue
        snapshot = snapshot_path(dst, n)
        check_not_an_input(snapshot, reads, what="snapshot")
        if not overwrite:
            raise OutputExistsError(output_exists_message(str(snapshot)) + f" (the snapshot of iteration {n}, "
                                    "--save-every)")


def run(args) -> int:
    from tqdm import tqdm

    from ..pipelines.gatys import GatysModel, gatys, level_sizes, resolve_model

    options.check_quality(args.quality)
    options.check_integer("--save-every", args.save_every, 0, 10 ** 7)
    options.check_integer("--coarse-length", args.coarse_length, 0, 1 << 16)
    options.check_integer("--length", args.length, 1, 1 << 16)
    options.check_integer("--iterations", args.iterations, 1, 10 ** 7)
    if args.style_weights is not None and len(args.style_weights) != len(args.style):
        raise OptionError(f"--style-weights: {len(args.style_weights)} weight(s) for {len(args.style)} style image(s) "
                          f"(-s); give one weight per style image")
    # Inputs first (a clear error naming the file; read once, under the pixel limit), then the
    # model, then the outputs: all before the work.
    content = read_image(args.content)
    styles = [read_image(s) for s in args.style]
    model = GatysModel(resolve_model(args.model, args.pooling), device=args.device, precision=args.precision,
                       threads=args.threads)
    model_tag = f"{Path(args.model).stem if args.model.lower().endswith('.onnx') else args.model}-{model.pooling}"
    dst = output_path(args, model_tag)
    coarse = args.coarse_length or args.length
    sides = level_sizes(args.length, coarse)
    refine = args.refine_iterations if args.refine_iterations is not None else max(1, args.iterations // 4)
    total = args.iterations + refine * (len(sides) - 1)
    check_outputs(dst, InputFiles([args.content, *args.style, model.model_path]), args.save_every, total,
                  args.overwrite)
    dst.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, desc="gatys", unit="it", disable=args.quiet or None, file=sys.stderr, dynamic_ncols=True)
    done = {"n": 0}

    def callback(p) -> bool:
        bar.update(1)
        done["n"] += 1
        bar.set_postfix_str(f"level {p.level + 1}/{p.levels} {p.size[1]}x{p.size[0]} loss {p.loss:.4g}", refresh=False)
        if args.save_every and done["n"] % args.save_every == 0:
            write_image(snapshot_path(dst, done["n"]), p.preview, quality=args.quality, overwrite=args.overwrite)
        return True

    try:
        result = gatys(content, styles, model=model, style_weights=args.style_weights, ratio=args.ratio,
                       iterations=args.iterations, length=args.length, init=args.init, pooling=args.pooling,
                       tv_weight=args.tv_weight, style_scale=args.style_scale, original_colors=args.original_colors,
                       optimizer=args.optimizer, learning_rate=args.learning_rate, seed=args.seed,
                       coarse_to_fine=args.coarse_length > 0, coarse_length=coarse,
                       refine_iterations=args.refine_iterations, callback=callback, callback_every=1,
                       tile=args.tile)
    except OptionError as e:      # the API's names (length: ...) as the command line spells them
        raise as_cli_option(e) from None
    finally:
        bar.close()
    write_image(dst, result.image, quality=args.quality, overwrite=args.overwrite)
    levels = ", ".join(f"{l['size'][1]}x{l['size'][0]}: {l['iterations']} it"
                       + (f" in {l['tiles']} tiles" if l['tiles'] > 1 else "") + f" {l['seconds']:.1f} s"
                       for l in result.levels)
    if args.json:
        print(json.dumps({"input": args.content, "output": str(dst), "size": [int(result.image.shape[1]),
                          int(result.image.shape[0])], "style": "+".join(args.style), "provider": result.provider,
                          "precision": result.precision, "seconds": round(result.seconds, 3),
                          "loss": float(result.loss)}))
    if not args.quiet:
        print(f"{dst}: loss {result.loss:.4g} ({levels}; {result.provider} {result.precision}, {result.seconds:.1f} s)",
              file=sys.stderr)
    return 0
