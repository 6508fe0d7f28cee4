"""The pipelines: one per model family, on the pipeline base (base.py).

    base.py       Pipeline (device, precision, plan, ...) and StylePipeline (the image path)
    generic.py    SessionPipeline, TiledPipeline: models whose metadata roles say all
    stylizer.py   Stylizer: feedforward styles (TransformerNet)
    stylenet.py   StyleNet: MSG-Net, a style image at run time
    colorize.py   Colorizer: line drawings to colours
    edges.py      Canny and HED line drawings from photos
    hed.py        HedEdges: the HED edge network
    gatys/        Gatys et al.'s optimisation

Each module is imported on its own (nothing is imported here): the registry
(deepshop_native.models) maps a model's family to its class.
"""
