"""Ghiasi et al.'s arbitrary-style network (Magenta): a style predictor and a conditional transfer network."""
