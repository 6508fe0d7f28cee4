"""Dumoulin et al.'s 26-style conditional-instance-norm network (TensorFlow's Android stylize demo weights)."""
