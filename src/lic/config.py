"""params.yaml: load, validate strictly, resolve the profile.

params.yaml has one switch, ``profile``, whose value is ``default`` (embedded sample photos, short
schedules, CPU, minutes) or ``paper`` (the papers' exact recipes, GPU). A section holds the keys both
profiles share plus one block per profile::

    data:
      download: {retries: 3}         # shared
      default: {train: sample-train} # used when profile == default
      paper:   {train: div2k-train}  # used when profile == paper

``load_params()`` returns the sections with the active profile's block merged in, so code reads
``params["data"]["train"]`` and never sees the other profile. Any key not in :data:`SCHEMA` is an
error that names it: a typo must never silently fall back to a default.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lic import paths

PROFILES = ("default", "paper")


class ConfigError(ValueError):
    """params.yaml (or an override) does not match the schema."""


@dataclass(frozen=True)
class Profiled:
    """A section part that has one block per profile, each following ``schema``."""

    schema: dict


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    """A mapping with free keys (e.g. model keys) whose values follow ``value``."""

    value: Any


NUMBER = (int, float)
ANY = object  # free-form values (model constructor kwargs)

#: Every key params.yaml may hold. Later stages add their sections here.
SCHEMA: dict[str, Any] = {
    "profile": str,
    "data": {
        "datasets": ListOf(str),
        "download": {"retries": int, "timeout_s": NUMBER},
        "profiles": Profiled({"train": str, "eval": ListOf(str)}),
    },
    "train": {
        "qualities": ListOf(int),          # the DVC matrix's quality axis (same for both profiles)
        "reference_models": ListOf(str),   # models trained by the generic stage train_reference
        "hpcm_models": ListOf(str),        # train_hpcm (lic.models.hpcm)
        "tinylic_models": ListOf(str),     # train_tinylic (lic.models.tinylic*)
        "tinylic_vr_models": ListOf(str),  # train_tinylic_vr: variable rate, one model for every quality
        "tinylic_msr_models": ListOf(str), # train_tinylic_msr: in-loop filter on lu2022-tinylic-v3
        "tcm_models": ListOf(str),         # train_tcm (lic.models.tcm*)
        "cgoo_models": ListOf(str),        # train_cgoo (lic.models.cgoo*)
        "base_quality": int,               # the lambda of the shared initialisation (train.<profile>.base_steps)
        "seed": int,
        "clip_max_norm": NUMBER,
        "aux_lr": NUMBER,
        "lr_gamma": NUMBER,
        "profiles": Profiled({"active_qualities": ListOf(int), "threads": int, "device": str, "base_steps": int, "steps": int, "batch_size": int, "patch_size": int,
                              "lr": NUMBER, "milestones": ListOf(int), "lr_gammas": ListOf(NUMBER), "stages": MapOf(int), "checkpoint_every": int,
                              "log_every": int, "num_workers": int, "bf16": bool}),
    },
    "models": MapOf({
        "metric": str,
        "lambdas": ListOf(NUMBER),
        "profiles": Profiled({"kwargs": MapOf(ANY), "train": MapOf(ANY)}),
    }),
    "evaluate": {
        "models": ListOf(str),
        "weights_of": MapOf(str),   # encoder-side variant key -> the trained model whose weights it uses
        "estimate_bpp": bool,
        "profiles": Profiled({"max_bpp_gap_percent": NUMBER, "visual_images": ListOf(str),
                              "vr_target_bpp": ListOf(NUMBER), "workers": int}),
    },
    "anchors": {"codecs": ListOf(str), "sweeps": MapOf(ListOf(NUMBER)),  # classical codecs, lic.anchors
                "workers": int},  # qualities of a sweep coded at once (threads around the codec processes)
    "complexity": {"models": ListOf(str)},  # lic complexity: params and kMACs/px, both profiles' kwargs
    "bench": {  # lic.bench: coding time (HPCM Table C) and training speed (Table A)
        "models": ListOf(str),
        "quality": int,
        "online_iters": ListOf(int),   # CGOO: encode time and RD cost per number of online iterations
        "cross_device_images": int,   # images encoded on each device and decoded on every other (0: skip)
        "profiles": Profiled({"images": int, "warmup": int, "repeats": int, "train_batch": int, "train_patch": int,
                              "train_steps": int, "train_warmup": int, "bf16": bool,
                              "train_options": ListOf(str),  # lic.bench.TRAIN_OPTIONS, "+" combines
                              "worker_timeout_s": NUMBER}),  # a measuring process running longer is stopped
    },
}


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    if isinstance(t, ListOf):
        return f"list of {_type_name(t.item)}"
    if isinstance(t, MapOf):
        return f"mapping of {_type_name(t.value)}"
    if isinstance(t, (dict, Profiled)):
        return "mapping"
    return t.__name__


def _check(value: Any, schema: Any, where: str) -> None:
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        profiled = [k for k, v in schema.items() if isinstance(v, Profiled)]
        allowed = set(schema) - set(profiled) | (set(PROFILES) if profiled else set())
        for key in value:
            if key not in allowed:
                raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(sorted(allowed))}). "
                                  f"Fix the spelling or add the key to lic.config.SCHEMA.")
        for key, sub in schema.items():
            if isinstance(sub, Profiled):
                for prof in PROFILES:
                    if prof not in value:
                        raise ConfigError(f"{where}: missing the block for profile {prof!r}")
                    _check(value[prof], sub.schema, f"{where}.{prof}")
            elif key not in value:
                raise ConfigError(f"{where}.{key}: missing")
            else:
                _check(value[key], sub, f"{where}.{key}")
    elif isinstance(schema, ListOf):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        for i, v in enumerate(value):
            _check(v, schema.item, f"{where}[{i}]")
    elif isinstance(schema, MapOf):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        for k, v in value.items():
            _check(v, schema.value, f"{where}.{k}")
    else:
        ok = isinstance(value, schema) and not (isinstance(value, bool) and schema in (int, NUMBER))
        if not ok:
            raise ConfigError(f"{where}: expected {_type_name(schema)}, got {value!r}")


def _resolve(value: dict, schema: dict, profile: str) -> dict:
    out = {}
    for key, sub in schema.items():
        if isinstance(sub, Profiled):
            block = value[profile]
            clash = set(block) & set(out)
            if clash:
                raise ConfigError(f"keys {sorted(clash)} are set both shared and per profile")
            out.update(copy.deepcopy(block))
        elif isinstance(sub, dict):
            out[key] = _resolve(value[key], sub, profile)
        elif isinstance(sub, MapOf) and isinstance(sub.value, dict):
            out[key] = {k: _resolve(v, sub.value, profile) for k, v in value[key].items()}
        else:
            out[key] = copy.deepcopy(value[key])
    return out


def validate(raw: dict) -> None:
    """Raise :class:`ConfigError` unless ``raw`` (a parsed params.yaml) matches :data:`SCHEMA`."""
    _check(raw, SCHEMA, "params")
    if raw["profile"] not in PROFILES:
        raise ConfigError(f"params.profile: {raw['profile']!r} is not a profile; use one of {PROFILES}")


def resolve(raw: dict, profile: str | None = None) -> dict:
    """Validate ``raw`` and return it with every section reduced to the active profile."""
    validate(raw)
    profile = profile or raw["profile"]
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; use one of {PROFILES}")
    resolved = _resolve(raw, SCHEMA, profile)
    resolved["profile"] = profile
    return resolved


def load_raw(path: str | Path | None = None) -> dict:
    path = Path(path or paths.PARAMS)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run from a lic-repro checkout or set LIC_ROOT") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def load_params(path: str | Path | None = None, profile: str | None = None) -> dict:
    """The resolved parameters of ``params.yaml`` (or ``path``) for the active (or given) profile."""
    return resolve(load_raw(path), profile)
