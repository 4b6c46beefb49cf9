"""Tools in scanpy's ``tl`` namespace."""

from ._quantile import quantile_norm

__all__ = ["quantile_norm"]
