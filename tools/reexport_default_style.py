"""Re-export the bundled style (python/deepshop_native/models/default_style.onnx) as a
global-statistics graph (deepshop-export --statistics), keeping its name, licence and provenance.

No torch checkpoint of it is kept in the repository, so the torch TransformerNet is rebuilt from
the ONNX file's initializers (their names are the torch module's state_dict keys) and checked to
reproduce the ONNX file's output before it is exported again.  The bundled file is a statistics
graph now, whose instance-norm weights the exporter folded into unnamed constants: re-export it
(after a change to the statistics graph's write-out) from the last plain export, kept in git:

    git show 4ab1fdb:python/deepshop_native/models/default_style.onnx > /tmp/default_style_plain.onnx
    python tools/reexport_default_style.py --source /tmp/default_style_plain.onnx [--check-only]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from deepshop_export.cli import main as export_main
from deepshop_export.families.transformer_net import TransformerNet
from deepshop_native.core.metadata import read_metadata

MODEL = Path(__file__).resolve().parents[1] / "python" / "deepshop_native" / "models" / "default_style.onnx"


def rebuild(path: Path) -> TransformerNet:
    """The torch network whose weights are the ONNX file's initializers, checked against it."""
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in onnx.load(str(path)).graph.initializer}
    net = TransformerNet().eval()
    expected = net.state_dict()
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise SystemExit(f"{path}: no initializer for {missing[:5]}: not a TransformerNet export")
    net.load_state_dict({k: weights[k] for k in expected})
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 128, 160)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        torch_out = net(torch.from_numpy(x)).numpy()
    err = float(np.abs(onnx_out - torch_out).max())
    print(f"rebuilt TransformerNet vs {path.name}: max abs difference {err:.2e} on 0..255 outputs")
    if err > 1e-2:
        raise SystemExit("the rebuilt network does not reproduce the ONNX file")
    return net


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=MODEL,
                   help="a plain TransformerNet export of the style (name, licence and provenance are taken from it)")
    p.add_argument("--check-only", action="store_true", help="rebuild and compare, do not export")
    args = p.parse_args()
    meta = read_metadata(args.source)
    net = rebuild(args.source)
    if args.check_only:
        return 0
    provenance = json.loads(meta["deepshop.provenance"])
    provenance["re_exported"] = ("rebuilt in torch from the initializers of the earlier plain export "
                                 f"(exported {provenance.get('exported_utc', '?')}) and re-exported with "
                                 "deepshop-export --statistics by tools/reexport_default_style.py")
    with tempfile.TemporaryDirectory() as d:
        checkpoint = Path(d) / provenance.get("source", "default_style.pth")
        torch.save(net.state_dict(), checkpoint)
        # deepshop-export takes a training record from the JSON beside the checkpoint.
        checkpoint.with_suffix(".json").write_text(json.dumps(provenance))
        return export_main([str(checkpoint), "-o", str(MODEL), "--overwrite", "--statistics",
                            "--name", meta["deepshop.name"], "--license", meta["deepshop.license"]])


if __name__ == "__main__":
    raise SystemExit(main())
