"""Checks of an exported model before it is written: onnx.checker's structural check, and the
outputs of ONNX Runtime against the torch module on random inputs, which are finite, as are the
weights (a NaN compares as no difference at all: a checkpoint of NaN would pass the comparison)."""
from __future__ import annotations

import numpy as np
import onnx
import torch

from deepshop_native.core.errors import ModelError

#: Largest absolute difference from float32 torch that validation accepts, in grey levels of the
#: 0..255 scale.  Errors grow with the output's magnitude, and networks (even trained ones) output
#: values beyond 0..255 before clipping, so the bound is scaled by max(1, peak |output| / 255).
#: fp32: only summation order differs (measured ~1e-5..1e-3).  fp16: weights rounded to 11
#: significant bits through 16 convolutions (measured 0.25..0.35 per 255 on a net whose outputs
#: span -500..600); one grey level is the budget.
TOLERANCE = {"fp32": 1e-2, "fp16": 1.0}


def check_structure(model: onnx.ModelProto, out_path: str) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ModelError(f"{out_path}: the exported model fails onnx.checker: {e}") from e


def check_finite_weights(net: torch.nn.Module, model: onnx.ModelProto, out_path: str) -> None:
    """ModelError naming the first weight holding NaN or infinity: in the torch module (a
    diverged checkpoint) or among the ONNX initializers (an fp16 conversion that overflowed)."""
    for name, tensor in net.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(f"{out_path}: not written: the weight {name!r} holds NaN or infinite values "
                             f"({_count_bad(tensor.detach().cpu().float().numpy())}); the checkpoint is broken (a "
                             "diverged training run?)")
    from onnx import numpy_helper
    for init in model.graph.initializer:
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            values = numpy_helper.to_array(init)
            if not np.isfinite(values).all():
                raise ModelError(f"{out_path}: not written: the exported weight {init.name!r} holds NaN or infinite "
                                 f"values ({_count_bad(values)})")


def _count_bad(values: np.ndarray) -> str:
    values = np.asarray(values, dtype=np.float32)
    return f"{int(np.isnan(values).sum())} NaN, {int(np.isinf(values).sum())} infinite of {values.size}"


def compare_with_torch(model_bytes: bytes, net: torch.nn.Module, io_, sizes, tolerance: float, out_path: str,
                       precision: str) -> tuple[float, float]:
    """Run the model in ONNX Runtime and ``net`` in torch on ``io_.make_inputs(h, w)`` for each
    (h, w) of ``sizes``, every output compared.  Returns (max abs error of the first output, its
    tolerance); raises ModelError when any output is beyond ``tolerance`` scaled to that output's
    peak |value| (max(1, peak / 255)), or holds NaN or infinity in either runtime."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelError(f"validation: ONNX Runtime {ort.__version__} cannot load the exported model: {e}") from e
    gen = torch.Generator().manual_seed(1234)
    names = list(io_.output_names)
    worst = {n: 0.0 for n in names}
    peak = {n: 0.0 for n in names}
    for h, w in sizes:
        inputs = io_.make_inputs(h, w, gen)
        with torch.no_grad():
            expected = net(*inputs)
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        got = session.run(names, {n: t.numpy() for n, t in zip(io_.input_names, inputs)})
        for name, g, e in zip(names, got, expected):
            e = e.numpy()
            if g.shape != e.shape or g.dtype != np.float32:
                raise ModelError(f"validation: ONNX output {name} {g.dtype}{g.shape} != torch float32{e.shape} at {h}x{w}")
            for runtime, values in (("torch", e), ("ONNX Runtime", g)):
                if not np.isfinite(values).all():
                    raise ModelError(f"{out_path}: not written: the {runtime} output {name!r} holds NaN or infinite "
                                     f"values on random inputs of {h}x{w} ({_count_bad(values)}); the network's "
                                     "weights are broken or overflow float32")
            worst[name] = max(worst[name], float(np.max(np.abs(g - e))))
            peak[name] = max(peak[name], float(np.max(np.abs(e))))
    bound = {n: tolerance * max(1.0, peak[n] / 255.0) for n in names}
    for name in names:
        if not worst[name] < bound[name]:
            raise ModelError(f"{out_path}: not written: ONNX Runtime output {name!r} differs from torch by "
                             f"{worst[name]:.3g} (tolerance {bound[name]:g} for {precision})")
    return worst[names[0]], bound[names[0]]
