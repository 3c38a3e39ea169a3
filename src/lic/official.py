"""The authors' released weights as lic checkpoints: ``lic import-official KEY FILE``.

HPCM (Base, Large, Base MS-SSIM, PhiContext), TCM (N = 64, N = 128) and TinyLIC v3 were released as
PyTorch files (``*.pth.tar``: a bare state_dict or a training dict holding one under ``state_dict``).
Each model's module declares what was released and the one converter that maps the file's keys onto
ours (:class:`lic.models.registry.OfficialRelease`; the key-level details are in that module and in
docs/<paper>.md). This module:

* reads the file without executing code from it (``torch.load(weights_only=True)``; the training
  dicts' ``MultiStepLR`` state holds a ``collections.Counter``, which is allowed),
* builds the paper-size model (the ``paper`` profile's kwargs of params.yaml, or the registry's),
* loads the converted weights **strictly**: a missing or unexpected key or a wrong shape is an error that
  names them (the file is of another model or size),
* builds the CDF tables (``update(force=True)``: the released files hold empty ones), and
* writes a lic checkpoint record (model, kwargs, quality, weights fingerprint, the source file's sha256)
  that ``lic compress`` / ``decompress`` / ``evaluate --checkpoint`` take like a trained one.

The quality is the position of the file's λ in the authors' numbering (``OfficialRelease.lambdas``, or
the key's λ list in params.yaml), read from the file name (``mse_lambda_0.05.pth.tar`` → 0.05) when
``--quality`` is not given.
"""

from __future__ import annotations

import collections
import math
import re
from pathlib import Path

import torch

from lic import checkpoints
from lic.codec import CheckpointError, state_fingerprint
from lic.data.download import sha256sum
from lic.models import registry
from lic.train import atomic_save

#: a number in a file name: 0.05, 0.0067, 2.4, 1e-3 (not the digits of a longer number or version)
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?(?:e-?\d+)?)(?!\.?\d)")


def releases() -> dict[str, registry.OfficialRelease]:
    """Every registry key with released weights, and what was released."""
    specs = (registry.get(k) for k in registry.keys())
    return {spec.key: spec.official for spec in specs if spec.official is not None}


def release_for(key: str) -> registry.OfficialRelease:
    spec = registry.get(key)
    if spec.official is None:
        have = ", ".join(sorted(releases()))
        raise CheckpointError(f"no released weights load into {key!r} (no official converter); "
                              f"keys with released weights: {have}")
    return spec.official


def lambdas_for(key: str, params: dict | None) -> tuple[float, ...]:
    """The λ of qualities 1, 2, ... of ``key``: the release's own numbering, else params.yaml's."""
    release = release_for(key)
    if release.lambdas is not None:
        return tuple(release.lambdas)
    models = (params or {}).get("models", {})
    return tuple(models.get(key, {}).get("lambdas", ()))


def quality_from_name(path: str | Path, lambdas: tuple[float, ...]) -> int | None:
    """The quality whose λ appears in the file name (``mse_lambda_0.0067.pth.tar`` → 3 for TCM), or
    None when no number of the name, or more than one, is one of ``lambdas``."""
    found = set()
    for text in _NUMBER.findall(Path(path).name):
        value = float(text)
        for q, lam in enumerate(lambdas, start=1):
            if math.isclose(value, lam, rel_tol=1e-6):
                found.add(q)
    return found.pop() if len(found) == 1 else None


def read_official(path: str | Path) -> dict:
    """The state_dict of a released file (weights only: no code in the file is run)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"released checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals([collections.Counter]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and safety errors alike: the message says which
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read {path} as a PyTorch weights file: {first}") from e
    if isinstance(obj, dict) and {"model", "kwargs", "state_dict"} <= set(obj):
        raise CheckpointError(f"{path} is already a lic checkpoint: give it to lic compress/evaluate as it is")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state_dict (a dict of tensors, bare or under 'state_dict')")
    return obj


def _describe_mismatch(missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    def few(names: list[str]) -> str:
        return ", ".join(names[:4]) + (f", … ({len(names)} in all)" if len(names) > 4 else "")

    parts = []
    if missing:
        parts.append(f"missing {few(missing)}")
    if unexpected:
        parts.append(f"unexpected {few(unexpected)}")
    if shapes:
        parts.append(f"other shapes: {few(shapes)}")
    return "; ".join(parts)


def build_model(key: str, state_dict: dict, kwargs: dict):
    """``key``'s model with ``kwargs`` holding ``state_dict`` (converted), strictly; CDF tables built."""
    release = release_for(key)
    try:
        converted = release.convert(state_dict)
    except (KeyError, IndexError, AttributeError, TypeError) as e:
        raise CheckpointError(f"the file is not a released {key} checkpoint: its converter failed on "
                              f"{type(e).__name__} {e}") from e
    model = registry.build(key, **kwargs)
    ours = model.state_dict()
    missing = sorted(set(ours) - set(converted))
    unexpected = sorted(set(converted) - set(ours))
    # entropy-coder tables are resized on load (the released files store them empty)
    resized = ("_quantized_cdf", "_cdf_length", "_offset", "scale_table")
    shapes = sorted(f"{k} {tuple(converted[k].shape)} vs ours {tuple(ours[k].shape)}" for k in set(ours) & set(converted)
                    if converted[k].shape != ours[k].shape and not k.endswith(resized))
    if missing or unexpected or shapes:
        raise CheckpointError(f"the file's weights do not fit {key} with kwargs {kwargs or '{}'} "
                              f"({_describe_mismatch(missing, unexpected, shapes)}); is it a file of "
                              f"another model or size? (--kwargs sets the constructor's)")
    model.load_state_dict(converted, strict=True)
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"the file's weights hold NaN/inf values ({', '.join(bad[:4])})")
    model.eval()
    model.update(force=True)
    return model


def import_official(key: str, source: str | Path, out: str | Path | None = None, *, quality: int | None = None,
                    kwargs: dict | None = None, params: dict | None = None) -> dict:
    """Convert the released file ``source`` into a lic checkpoint at ``out`` (default
    :func:`default_out`); returns the record's summary (key, quality, λ, parameters, fingerprint,
    source sha256)."""
    source = Path(source)
    release = release_for(key)
    lambdas = lambdas_for(key, params)
    weights = read_official(source)
    if quality is None:
        quality = quality_from_name(source, lambdas)
        if quality is None:
            listed = ", ".join(f"q{q}={lam:g}" for q, lam in enumerate(lambdas, start=1)) or "none known"
            raise CheckpointError(f"cannot tell the quality of {source.name} from its name (λ of {key}: "
                                  f"{listed}); give --quality")
    if quality < 1:
        raise CheckpointError(f"quality must be ≥ 1, not {quality}")
    if kwargs is None:
        kwargs = dict((params or {}).get("models", {}).get(key, {}).get("kwargs", {}))
    out = Path(out) if out is not None else default_out(key, quality)
    model = build_model(key, weights, kwargs)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fingerprint = state_fingerprint(state)
    record = {"model": key, "kwargs": kwargs, "quality": quality, "state_dict": state, "updated": True,
              "fingerprint": fingerprint,
              "lambda": lambdas[quality - 1] if quality <= len(lambdas) else None,
              "imported_from": {"file": source.name, "sha256": sha256sum(source),
                                "converter": f"{release.convert.__module__}.{release.convert.__qualname__}"}}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(record, out)
    return {"model": key, "quality": quality, "lambda": record["lambda"], "out": str(out),
            "params": sum(p.numel() for p in model.parameters()), "fingerprint": fingerprint.hex(),
            "source_sha256": record["imported_from"]["sha256"]}


def default_out(key: str, quality: int) -> Path:
    """Where ``lic import-official`` writes by default: ``imported/<key>/q<quality>.pt`` (not in git)."""
    from lic import paths

    return Path(paths.ROOT) / "imported" / key / f"q{quality}.pt"


def checkpoint_quality(path: str | Path, key: str | None = None) -> int:
    """The quality recorded in a lic checkpoint (read without loading its tensors' data); with ``key``,
    an error unless the checkpoint holds that model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    record = checkpoints.load(path, mmap=True)  # weights only, tensors not read
    if not isinstance(record, dict) or not isinstance(record.get("quality"), int):
        raise CheckpointError(f"{path} is not a lic checkpoint of one quality (lic import-official writes them)")
    if key is not None and record.get("model") != key:
        raise CheckpointError(f"{path} holds a {record.get('model')!r} model, not {key!r}")
    return record["quality"]


def published_key(key: str, dataset: str, available=None) -> str | None:
    """The published curve of the model on ``dataset`` (data/reference), if transcribed: the same key,
    or its family's (``lu2022-tinylic-v3`` → ``lu2022-tinylic``). ``available``: the reference keys of
    ``dataset`` when the caller has read them already."""
    from lic import reference

    if available is None:
        try:
            available = [row["key"] for row in reference.list_references(dataset)]
        except FileNotFoundError:
            return None
    have = set(available)
    for candidate in (key, key.rsplit("-", 1)[0]):
        if candidate in have:
            return candidate
    return None


def summary(key: str, dataset: str, result_file: str | Path):
    """(per-quality table, BD-rate table) of an evaluation of imported weights: the payload bpp (the
    coded strings, the rate the papers report) and the file's bpp, PSNR, MS-SSIM, and BD-rate (%)
    against the transcribed VTM / BPG anchors and the paper's own curve of this model on the same dataset
    (``published``: ≈ 0 when the weights reproduce the paper), once with each rate: the payload's
    (``bpp_payload``; the one to compare with the paper) and the file's (``bpp``, the container's header
    counted: a little worse, shown for honesty). The BD-rate table is None when ``dataset`` has no
    transcribed curves (data/reference)."""
    import json

    import pandas as pd

    from lic import compare

    doc = json.loads(Path(result_file).read_text())
    res = doc["results"]
    cols = [c for c in ("quality", "bpp_payload", "bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time",
                        "decoding_time") if c in res and all(v is not None for v in res[c])]
    per_q = pd.DataFrame({c: res[c] for c in cols}).set_index("quality")
    refs = compare.load_curves(dataset, ours=False)
    pub = published_key(key, dataset, refs)
    anchors = [a for a in ("vtm", "bpg444") if a in refs] + ([pub] if pub else [])
    if not anchors:
        return per_q, None
    metrics = ["psnr-rgb"] + (["ms-ssim-db-rgb"] if "msssim" in key else [])
    rates = [r for r in ("bpp_payload", "bpp") if r in cols]
    rows = []
    for rate in rates:
        ours = compare.curve_from_results(key, {**doc, "results": {**res, "bpp": res[rate]}})
        for metric in metrics:
            t = compare.bd_rate_table({"imported": ours, **{a: refs[a] for a in anchors}},
                                      anchors=anchors, metric=metric, with_notes=True)
            row = t.loc["imported"].rename({pub: f"published {pub}"} if pub else {})
            row.name = (metric, rate)
            rows.append(row)
    bd = pd.DataFrame(rows)
    bd.index = pd.MultiIndex.from_tuples(bd.index, names=[f"BD-rate % on {dataset}", "rate"])
    return per_q, bd
