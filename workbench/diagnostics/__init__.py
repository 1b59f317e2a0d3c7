"""Representation diagnostics (see REFERENCE.md, "Diagnostics")."""

from .spectral import rankme

__all__ = ["rankme"]
