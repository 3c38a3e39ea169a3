"""The model registry: ``<firstauthor><year>-<model>[-variant]`` -> builder.

A paper's module registers its models here; training, evaluation, the CLI and the notebooks then
find them by key. Models are rebuilt from the checkpoint record (key + kwargs), never guessed from
weight shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch.nn as nn

from lic.entropy.container import model_id


@dataclass(frozen=True)
class OfficialRelease:
    """Weights the authors released for a model (:mod:`lic.official` turns them into a lic checkpoint).

    ``convert``: the released file's dict (a bare state_dict or ``{"state_dict": ...}``) → this
    model's state_dict keys; ``released``: what exists and where, in words (shown by
    ``lic import-official --list``); ``lambdas``: the λ of qualities 1, 2, ... in the authors'
    numbering, to read a file's quality from the λ in its name (``None``: the key's params.yaml list).

    ``eval_script`` / ``eval_pad_multiple``: the authors' evaluation script (repository@commit:path)
    and the multiple it pads images to with centred zeros (``None``: the model's ``pad_multiple``);
    ``lic evaluate --checkpoint --protocol authors`` pads the same way (:mod:`lic.official`)."""

    convert: Callable[[Mapping], dict]
    released: str
    lambdas: tuple[float, ...] | None = None
    eval_script: str = ""
    eval_pad_multiple: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    key: str
    builder: Callable[..., nn.Module]
    description: str
    citation: str
    pad_multiple: int  # inputs are padded to a multiple of this inside compress
    defaults: dict = field(default_factory=dict)
    official: OfficialRelease | None = None  # released weights that load into this model, if any


MODELS: dict[str, ModelSpec] = {}


def register(key: str, *, description: str, citation: str, pad_multiple: int,
             official: OfficialRelease | None = None, **defaults):
    """Decorator registering ``builder(**kwargs) -> nn.Module`` under ``key`` (``official``: the
    authors' released weights for it and their converter)."""

    def wrap(builder):
        if key in MODELS:
            raise ValueError(f"model key {key!r} registered twice")
        clash = key_for_id(model_id(key), load=False)
        if clash is not None:  # the container stores this 16-bit id, not the key
            raise ValueError(f"model key {key!r} has the same container id as {clash!r}; choose another key")
        MODELS[key] = ModelSpec(key, builder, description, citation, pad_multiple, defaults, official)
        return builder

    return wrap


#: The modules that register models: one per paper, plus the modules of a paper's extensions (TinyLIC's
#: supplement: MSR, ScalingNet, Y / YUV 4:2:0), which subclass its base model. Importing a module registers
#: its keys; the registry imports them all, so no base module needs to import its subclasses.
PAPER_MODULES = ("minnen2018", "hpcm", "tinylic", "tinylic_msr", "tinylic_scaling", "tinylic_yuv", "tcm", "cgoo")


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


def key_for_id(mid: int, *, load: bool = True) -> str | None:
    """The registered key whose container id (:func:`lic.entropy.container.model_id`) is ``mid``."""
    if load:
        _load_all()
    return next((k for k in MODELS if model_id(k) == mid), None)


def keys() -> list[str]:
    _load_all()
    return sorted(MODELS)
