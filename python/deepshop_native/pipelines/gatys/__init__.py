"""Gatys et al.'s optimisation-based style transfer on the engine (see transfer.py's doc).

    model.py     the loss-and-gradient graph (family gatys_vgg): GatysModel, model names, precision
    tiled.py     its tile graph (gatys_vgg_tiled): TiledGatysModel, evaluated tile by tile by the engine
    transfer.py  the driver: gatys(), coarse to fine, L-BFGS-B or Adam, the results
"""
from .model import (AUTO_PRECISION, DEFAULT_MODEL, FAMILY, MODEL_NAMES, MODELS_ENV, POOLINGS, PRECISIONS, GatysModel,
                    bf16_sibling, default_models_dir, export_command, gradient_precision, model_file_name,
                    resolve_model)
from .tiled import AUTO_TILE_PIXELS, DEFAULT_TILE, TILED_FAMILY, TiledGatysModel, tiled_model_path
from .transfer import (DEFAULT_COARSE_LENGTH, DEFAULT_TV_WEIGHT, INITS, OPTIMIZERS, REFERENCE_POSITIONS, GatysProgress,
                       GatysResult, fit_length, gatys, level_sizes, loss_weights, pink_noise, transfer_luminance)

__all__ = [
    "gatys", "GatysModel", "TiledGatysModel", "GatysResult", "GatysProgress", "resolve_model", "pink_noise",
    "transfer_luminance", "MODELS_ENV", "MODEL_NAMES", "POOLINGS", "PRECISIONS", "AUTO_PRECISION", "INITS",
    "OPTIMIZERS", "DEFAULT_TV_WEIGHT", "DEFAULT_COARSE_LENGTH", "AUTO_TILE_PIXELS", "DEFAULT_TILE", "FAMILY",
    "TILED_FAMILY", "DEFAULT_MODEL", "default_models_dir", "export_command", "model_file_name", "gradient_precision",
    "tiled_model_path", "fit_length", "level_sizes", "loss_weights", "REFERENCE_POSITIONS", "bf16_sibling",
]
