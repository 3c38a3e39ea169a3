"""Evaluation with real bitstreams: ``lic evaluate KEY``.

For every quality and every image of the manifest of every evaluation dataset of the profile: encode
to a file, decode the file with a second, freshly loaded model, and record bpp from the file's bytes,
bpp estimated from the likelihoods, PSNR / MS-SSIM on the 8-bit output, encode and decode time, and
whether the decoder reproduced the encoder's reconstruction exactly. Writes
``results/<key>/<dataset>.json`` (:mod:`lic.results`) and keeps the bitstreams under
``results/<key>/bitstreams/<dataset>/q<quality>/``.

Two protocols. ``pipeline`` (the pipeline's own evaluation): images padded right and bottom by edge
replication to the model's multiple; the headline rate is the file's bpp (container included).
``authors`` (the default of ``lic evaluate --checkpoint`` on released weights): images padded with
centred zeros to the multiple of the authors' own evaluation script
(:attr:`lic.models.registry.OfficialRelease.eval_pad_multiple`), so that the coded latents are theirs;
the rate to compare with a paper is ``bpp_payload`` (the coded strings, as the papers count it), which
every row records beside the file's ``bpp``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from lic import paths
from lic.codec import EDGE, Padding, decode, encode, load_checkpoint, pad, read_image
from lic.data.prepare import load_manifest
from lic.metrics import image_metrics, to_tensor
from lic.models import registry
from lic.parallel import fork_map, workers_used
from lic.results import result_path, save_reconstruction, write_results
from lic.runinfo import run_info
from lic.train import run_dir


class DecoderMismatch(RuntimeError):
    """A decoded image differs from what the encoder reconstructed."""


PROTOCOLS = ("pipeline", "authors")


def protocol_padding(key: str, protocol: str) -> Padding:
    """How ``protocol`` pads ``key``'s inputs: edge replication (pipeline), or centred zeros to the
    multiple of the authors' evaluation script (authors; only keys with released weights have one)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if protocol == "pipeline":
        return EDGE
    release = registry.get(key).official
    if release is None or not release.eval_script:
        raise ValueError(f"{key} has no released weights and so no authors' evaluation script to follow; "
                         f"use --protocol pipeline")
    return Padding("centre-zeros", release.eval_pad_multiple)


def checkpoint_for(key: str, quality: int) -> Path:
    """``checkpoints/<key>/q<quality>/model.pt``; a variable-rate model (trained once, as its ``base``)
    has no per-quality checkpoints and is evaluated from ``checkpoints/<key>/base/model.pt``."""
    path = run_dir(key, quality) / "model.pt"
    base = run_dir(key, "base") / "model.pt"
    if not path.exists() and base.exists():
        return base
    return path


def _evaluate_quality(key: str, dataset: str, q: int, params: dict, ckpt: Path, weights_of: str | None,
                      files: list[Path], root: Path | None = None,
                      padding: Padding = EDGE) -> tuple[list[dict], dict]:
    """Encode, write, decode with a fresh model and measure every image of ``files`` at quality ``q``:
    (rows, what the model is: variable-rate / online encoder)."""
    variant = {"as_key": key, "kwargs": params["models"][key]["kwargs"]} if weights_of else {}
    encoder = load_checkpoint(ckpt, **variant)
    decoder = load_checkpoint(ckpt, **variant)  # a second instance: nothing is shared with the encoder
    encoder.padding = decoder.padding = padding  # the decoder crops where the encoder's padding put the image
    if hasattr(encoder.model, "set_lambda"):  # one variable-rate model: quality q = the rate of λ_q
        encoder.model.set_lambda(params["models"][key]["lambdas"][q - 1])
        encoder.quality = q  # the decoder reads the rate from the stream
    out_dir = Path(root or paths.RESULTS) / key / "bitstreams" / dataset / f"q{q}"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for f in files:
        img = read_image(f)
        enc = encode(encoder, img, estimate=params["evaluate"]["estimate_bpp"])
        bitstream = out_dir / f"{f.stem}.lic"
        bitstream.write_bytes(enc.data)
        nbytes = bitstream.stat().st_size
        t0 = time.perf_counter()
        recon = decode(decoder, bitstream.read_bytes())
        dec_time = time.perf_counter() - t0
        if not np.array_equal(recon, enc.reconstruction):
            raise DecoderMismatch(f"{key} q{q} {f.name}: the decoder's image differs from the encoder's "
                                  f"({int((recon != enc.reconstruction).sum())} values)")
        if f.stem in params["evaluate"]["visual_images"]:
            save_reconstruction(key, dataset, q, f.stem, recon, root)
        pixels = img.shape[0] * img.shape[1]
        rows.append({"image": f.stem, "quality": q, "bytes": nbytes, "pixels": pixels,
                     "bpp": nbytes * 8 / pixels, "payload_bytes": enc.payload_bytes,
                     "bpp_payload": enc.payload_bytes * 8 / pixels, "bpp_estimated": enc.bits_estimated / pixels,
                     "bpp_estimated_capped": enc.bits_capped / pixels,
                     **image_metrics(img, recon), "encoding_time": enc.encoding_time,
                     "decoding_time": dec_time, "decoded_exactly": True})
    model = encoder.model
    return rows, {"variable_rate": hasattr(model, "set_lambda") and hasattr(model, "set_rate"),
                  "online": bool(getattr(model, "online_iters", 0)),
                  "imported_from": encoder.record.get("imported_from")}


def _quality_worker(args: tuple) -> tuple[list[dict], dict]:
    threads, *rest = args
    if threads:
        torch.set_num_threads(threads)
    return _evaluate_quality(*rest)


def evaluate_model(key: str, dataset: str, params: dict, *, qualities: list[int] | None = None,
                   checkpoints: dict[int, Path] | None = None, progress: bool = True,
                   weights_of: str | None = None, workers: int | None = None,
                   results_root: Path | None = None, protocol: str = "pipeline") -> Path:
    """``weights_of``: evaluate ``key`` (an encoder-side variant) with the checkpoints of that model.

    ``protocol``: ``pipeline`` or ``authors`` (the module docstring; :func:`protocol_padding`).

    ``checkpoints``: quality → checkpoint file instead of ``checkpoints/<key>/q<Q>/model.pt`` (e.g.
    imported released weights, :mod:`lic.official`); ``results_root``: write the result file, the
    bitstreams and the kept reconstructions under that folder instead of ``results/``.

    ``workers`` (default ``evaluate.workers``): qualities evaluated side by side in that many forked
    processes of ``train.threads`` threads each (:func:`lic.parallel.fork_map`); the results are the
    same as with one, in the same order (tested); only the per-image encode/decode times see the other
    workers."""
    qualities = qualities or params["train"]["active_qualities"]
    workers = params["evaluate"].get("workers", 1) if workers is None else workers
    padding = protocol_padding(key, protocol)
    files = load_manifest(dataset)
    from tqdm.auto import tqdm

    jobs = [(params["train"]["threads"], key, dataset, q, params,
             (checkpoints or {}).get(q) or checkpoint_for(weights_of or key, q), weights_of, files, results_root,
             padding)
            for q in qualities]
    bar = tqdm(total=len(qualities), desc=f"eval {key} {dataset} (qualities)", disable=not progress)
    results = []
    for res in fork_map(_quality_worker, jobs, workers):
        results.append(res)
        bar.update(1)
    bar.close()
    rows = [r for quality_rows, _ in results for r in quality_rows]
    kind = results[0][1]
    extra = {}
    if kind["variable_rate"]:
        extra["targets"] = target_rates(key, files, rows, params,
                                        (checkpoints or {}).get(qualities[0]) or checkpoint_for(key, qualities[0]))
    spec = registry.get(key)
    return write_results(dataset, key, rows, description=spec.description, extra=extra,
                         meta={"citation": spec.citation, "opt_metric": params["models"].get(key, {}).get("metric"),
                               "weights_of": weights_of,
                               # an encoder that optimises per image (CGOO online) is not its forward's estimate
                               "estimate_is_the_encoder": not kind["online"],
                               "device": "cpu", "torch_threads": torch.get_num_threads(),
                               **_protocol_meta(key, protocol, padding),
                               "workers": workers_used(workers, len(jobs)),
                               **_checkpoint_meta(qualities, checkpoints, results)},
                         run=run_info(params={"models": {key: params["models"].get(key)},
                                              "evaluate": params["evaluate"], "data": params["data"]}),
                         path=None if results_root is None else result_path(dataset, key, results_root))


def _protocol_meta(key: str, protocol: str, padding: Padding) -> dict:
    """Result-file fields: the protocol, the padding, and for ``authors`` the script it follows and the
    rate to compare with the paper."""
    out = {"protocol": protocol, "padding": {"mode": padding.mode,
                                             "multiple": padding.multiple or registry.get(key).pad_multiple}}
    if protocol == "authors":
        out.update(authors_eval_script=registry.get(key).official.eval_script, paper_rate="bpp_payload")
    return out


def _checkpoint_meta(qualities: list[int], checkpoints: dict[int, Path] | None, results: list) -> dict:
    """Result-file fields naming the checkpoints given instead of the pipeline's, and the released
    file each was imported from (:mod:`lic.official`)."""
    if not checkpoints:
        return {}
    out = {"checkpoints": {str(q): str(checkpoints[q]) for q in qualities if q in checkpoints}}
    imported = {str(q): kind["imported_from"] for q, (_, kind) in zip(qualities, results) if kind["imported_from"]}
    if imported:
        out["imported_from"] = imported
    return out


@torch.no_grad()
def target_rates(key: str, files: list[Path], rows: list[dict], params: dict, ckpt: Path) -> list[dict]:
    """A variable-rate model asked for target bitrates: per target and image, the rate parameter is
    bisected on real coded sizes (``fit_rate``), the image is written as a real file, and its bpp recorded.

    Targets: ``evaluate.vr_target_bpp`` (the same bpp for every image), or when that is empty, three targets
    per image inside the range its evaluated qualities cover (25 / 50 / 75 % of the way from its lowest to
    its highest bpp): a small, briefly trained model spans a narrow range, different for every image."""
    from lic.models.tinylic_scaling import fit_rate

    fixed = list(params["evaluate"]["vr_target_bpp"])
    span: dict = {}
    for r in rows:
        lo, hi = span.get(r["image"], (math.inf, -math.inf))
        span[r["image"]] = (min(lo, r["bpp"]), max(hi, r["bpp"]))
    plan = [(f"{t} bpp", None, t) for t in fixed] or [(f"{int(f * 100)} % of the range", f, None)
                                                       for f in (0.25, 0.5, 0.75)]
    loaded, decoder = load_checkpoint(ckpt), load_checkpoint(ckpt)
    out = []
    for label, frac, bpp_target in plan:
        for f in files:
            img = read_image(f)
            h, w = img.shape[:2]
            lo, hi = span[f.stem]
            target = bpp_target if frac is None else lo + frac * (hi - lo)
            x = pad(to_tensor(img), loaded.pad_multiple)
            plain = encode(loaded, img, estimate=False)
            header = len(plain.data) - plain.payload_bytes
            # fit the payload so that payload + container header lands on the target
            rate, _ = fit_rate(loaded.model, x, target - 8 * header / (h * w), num_pixels=h * w,
                               tol_bpp=0.002 * target, max_iter=12)
            enc = encode(loaded, img, estimate=False)
            recon = decode(decoder, enc.data)
            bpp = len(enc.data) * 8 / (h * w)
            out.append({"target": label, "target_bpp": target, "image": f.stem, "rate": rate, "bpp": bpp,
                        "error_pct": (bpp / target - 1) * 100, "psnr-rgb": image_metrics(img, recon)["psnr-rgb"],
                        "decoded_exactly": bool(np.array_equal(recon, enc.reconstruction))})
    return out


def main(key: str, params: dict, progress: bool = True, *, datasets: list[str] | None = None,
         checkpoints: dict[int, Path] | None = None, results_root: Path | None = None,
         protocol: str = "pipeline") -> list[Path]:
    """``lic evaluate KEY``: every dataset of ``data.eval`` (or ``datasets``) with the pipeline's
    checkpoints, or with ``checkpoints`` (quality → file, those qualities only) under ``results_root``,
    padded as ``protocol`` says."""
    protocol_padding(key, protocol)  # an unknown protocol / a key without the authors' script: fail first
    if params["train"]["threads"]:
        torch.set_num_threads(params["train"]["threads"])
    weights_of = None if checkpoints else params["evaluate"]["weights_of"].get(key)
    qualities = sorted(checkpoints) if checkpoints else None
    return [evaluate_model(key, ds, params, qualities=qualities, checkpoints=checkpoints, progress=progress,
                           weights_of=weights_of, results_root=results_root, protocol=protocol)
            for ds in datasets or params["data"]["eval"]]
