"""Preprocessing-and-integration step in scanpy's ``pp`` namespace."""

from ._anndata import online_inmf

__all__ = ["online_inmf"]
