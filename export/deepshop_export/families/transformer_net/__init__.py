"""The ``transformer_net`` family: Johnson et al.'s feed-forward style network (network.py), its
plain export (export.py) and its global-statistics graph for tiling (statistics.py)."""
from .network import TransformerNet, clean_state_dict

__all__ = ["TransformerNet", "clean_state_dict"]
