from .kernels import gram, GramAccumulator, posterize, palette_from_image, decode_labels, uniform_palette
