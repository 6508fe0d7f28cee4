"""`deepshop stylize --style IMAGE`: the style image of an MSG-Net model (deepshop_native.stylenet)
on the command line.  register() adds the options to the stylize parser; open_stylizer() gives the
object _cmd_stylize runs: a Stylizer, or a StyleNet with its style set, after checking that model
and options fit (a style for a model without a style input, an MSG-Net model without one)."""
from __future__ import annotations

import argparse

from .errors import ModelError, OptionError


def register(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("style image (MSG-Net models, deepshop-export msgnet)")
    g.add_argument("--style", action="append", default=None, metavar="IMAGE",
                   help="style image for an MSG-Net model; repeat to blend several")
    g.add_argument("--style-weights", default=None, metavar="W1,W2",
                   help="weights of the --style images in the blend (default: equal)")
    g.add_argument("--style-size", type=int, default=None,
                   help="longer side the style image is resized to before the encoder (default 512)")


def _weights(text, count: int):
    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise OptionError(f"--style-weights: expected comma-separated numbers, got {text!r}") from None
    if len(values) != count:
        raise OptionError(f"--style-weights: {len(values)} weights for {count} --style images")
    return values


def open_stylizer(args, engine: dict):
    from .stylenet import DEFAULT_STYLE_SIZE, StyleNet, is_msgnet
    from .stylizer import Stylizer, resolve_model

    styles = args.style or []
    path = resolve_model(args.model)
    if not is_msgnet(path):
        if styles or args.style_weights is not None or args.style_size is not None:
            option = "--style" if styles else ("--style-weights" if args.style_weights is not None else "--style-size")
            raise ModelError(f"{path}: {option}: this model has no style input (family is not msgnet); "
                             "a style image needs an MSG-Net model (deepshop-export msgnet)")
        return Stylizer(args.model, **engine)
    if not styles:
        raise OptionError(f"--style: {path} is an MSG-Net model, which takes the style image at run time: "
                          "give --style IMAGE")
    weights = _weights(args.style_weights, len(styles))
    size = DEFAULT_STYLE_SIZE if args.style_size is None else args.style_size
    try:
        net = StyleNet(path, style_size=size, **engine)
    except OptionError as e:
        if str(e).startswith("style_size"):
            raise OptionError("--" + str(e).replace("_", "-", 1)) from None
        raise
    return net.set_style(styles if len(styles) > 1 else styles[0], weights)
