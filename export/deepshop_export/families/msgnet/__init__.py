"""MSG-Net (Zhang & Dana 2017): one network for any style image given at run time, exported as a
pipeline of two graphs (style encoder, generator) joined by the engine's native Gram kernel."""
