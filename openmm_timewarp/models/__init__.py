"""Timewarp proposal models: an augmented conditional RealNVP with distance-kernel attention."""
from .flow import TimewarpFlow

__all__ = ["TimewarpFlow"]
