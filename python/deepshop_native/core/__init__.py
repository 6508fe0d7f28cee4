"""The bottom layer of deepshop_native: what every other part uses and nothing of theirs.

* :mod:`.errors` -- the one exception hierarchy (DeepshopError and its kinds);
* :mod:`.options` -- option values checked once, at the edge;
* :mod:`.metadata` -- the model metadata contract (shared with the exporter);
* :mod:`.files` -- atomic writes, the "output exists" wording, regular-file checks;
* :mod:`.paths` -- where models are: the bundled ones and the user's model folders;
* :mod:`.runtime` -- finding and loading ONNX Runtime, its OpenVINO plugin and OpenVINO;
* :mod:`.session` -- the one session opener: device, precision and tiling options to the engine.

Only :mod:`.runtime` and :mod:`.session` load the C++ extension; the rest stay light for the
export side.
"""
