"""HED (holistically-nested edge detection, Xie & Tu 2015): learned edges for ``ds.edges(method="hed")``."""
