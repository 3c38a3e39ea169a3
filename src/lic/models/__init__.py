"""Models: one module per paper, all reachable through :mod:`lic.models.registry`."""

from lic.models.registry import MODELS, ModelSpec, build, get, keys, register

__all__ = ["MODELS", "ModelSpec", "build", "get", "keys", "register"]
