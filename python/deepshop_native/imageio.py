"""Compatibility name of :mod:`deepshop_native.image` (the reading/writing package it was split
into): everything importable from here before still is."""
from .files import atomic_write  # noqa: F401  (was re-exported here)
from .image import *  # noqa: F401,F403
from .image import __all__ as _image_all

__all__ = list(_image_all) + ["atomic_write"]
