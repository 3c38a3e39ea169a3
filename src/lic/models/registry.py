"""The model registry: ``<firstauthor><year>-<model>[-variant]`` -> builder.

A paper's module registers its models here; training, evaluation, the CLI and the notebooks then
find them by key. Models are rebuilt from the checkpoint record (key + kwargs), never guessed from
weight shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn


@dataclass(frozen=True)
class ModelSpec:
    key: str
    builder: Callable[..., nn.Module]
    description: str
    citation: str
    pad_multiple: int  # inputs are padded to a multiple of this inside compress
    defaults: dict = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {}


def register(key: str, *, description: str, citation: str, pad_multiple: int, **defaults):
    """Decorator registering ``builder(**kwargs) -> nn.Module`` under ``key``."""

    def wrap(builder):
        if key in MODELS:
            raise ValueError(f"model key {key!r} registered twice")
        MODELS[key] = ModelSpec(key, builder, description, citation, pad_multiple, defaults)
        return builder

    return wrap


#: One module per paper; importing it registers its models.
PAPER_MODULES = ("minnen2018", "hpcm", "tinylic", "tcm", "cgoo")


def _load_all(until: str | None = None) -> None:
    """Import the paper modules (stopping early once ``until`` is registered)."""
    import importlib

    for name in PAPER_MODULES:
        if until is not None and until in MODELS:
            return
        try:
            importlib.import_module(f"lic.models.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"lic.models.{name}":  # a missing dependency inside the module is an error
                raise


def get(key: str) -> ModelSpec:
    _load_all(until=key)
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"unknown model {key!r}; registered: {', '.join(sorted(MODELS))}") from None


def build(key: str, **kwargs) -> nn.Module:
    spec = get(key)
    model = spec.builder(**{**spec.defaults, **kwargs})
    model.registry_key = key
    model.pad_multiple = spec.pad_multiple
    return model


def keys() -> list[str]:
    _load_all()
    return sorted(MODELS)
