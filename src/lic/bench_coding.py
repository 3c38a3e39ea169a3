"""Arithmetic-coding time (T_AC): CompressAI's per-call rANS path against :mod:`lic.entropy.fast`.

``python -m lic.bench_coding --out results/bench/coding_ac.json``

The symbols are those of a Kodak-sized latent (default 320 x 32 x 48 = 491,520 Gaussian symbols:
768 x 512 image, stride 16), with realistic indexes: log-normal scales through a
``GaussianConditional`` with CompressAI's default 64-level scale table (0.11 .. 256), quantised
zero-mean Gaussian residuals, a few escapes. They are coded as a model does, in ``steps`` equal
coding steps into ONE stream (1: a hyperprior model; 10: a slice / context model), and decoded
step by step:

* **compressai**: ``BufferedRansEncoder`` / ``RansDecoder`` including what a model must do around
  them: the CDF table's ``.tolist()`` once per image, each step's symbols' and indexes'
  ``.tolist()``, and ``torch.tensor(values)`` on the decoded list;
* **fast**: ``FastBufferedEncoder`` / ``FastDecoder`` on the tensors (``tables_from`` once per
  image, cached), ``torch.from_numpy`` on the decoded array.

Each is also timed *inside the coder calls only* (``coder_only``: lists prepared beforehand for
CompressAI), which is what ``lic.bench``'s T_AC split counts. Medians over ``repeats`` runs after
``warmup`` runs; the streams of both paths are checked to be byte-identical and to decode back.
The JSON names the CPU, torch/numpy/numba/compressai versions and the date. Timings are machine-
dependent and never asserted by tests.

**A whole model, both paths side by side** (:func:`bench_model`):
``python -m lic.bench_coding --model li2025-hpcm-base --out results/bench/coding_ac_hpcm.json``
builds the model at its registered size (random init + ``update(force=True)``, or ``--checkpoint``'s
trained weights), takes a Kodak-sized 768 x 512 photo (scikit-image's ``astronaut``, 512 x 512,
upscaled to 768 x 768 and centre-cropped to 512 rows; no download) and times ``compress`` and
``decompress`` with ``entropy_coder="compressai"`` and ``"fast"`` on the same model, alternating
the two paths in every repeat. Per path: median total and T_AC (time inside the coder objects,
``lic.bench.ACTimer``: list conversions of the CompressAI path count as network time, as in
``lic bench``) of encode and decode; the streams of both paths must be byte-identical and decode to
the same image (recorded, and the run fails otherwise).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from lic.runinfo import device_info, package_versions


def kodak_symbols(channels: int = 320, height: int = 32, width: int = 48, seed: int = 0):
    """(GaussianConditional, symbols, indexes): int32 tensors of shape (1, C, H, W)."""
    from compressai.entropy_models import GaussianConditional

    gc = GaussianConditional(None)
    gc.update_scale_table(torch.exp(torch.linspace(math.log(0.11), math.log(256), 64)), force=True)
    g = torch.Generator().manual_seed(seed)
    shape = (1, channels, height, width)
    # per-channel typical scale (many near-deterministic channels) times per-position variation
    scales = torch.exp(torch.randn(1, channels, 1, 1, generator=g) * 1.0 + math.log(0.6)
                       + torch.randn(shape, generator=g) * 0.5)
    indexes = gc.build_indexes(scales).int()
    symbols = torch.round(torch.randn(shape, generator=g) * scales).int()
    return gc, symbols, indexes


def _median_ms(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    from lic.bench import gc_paused

    times = []
    for _ in range(repeats):
        with gc_paused():
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _case(gc, symbols, indexes, steps: int, warmup: int, repeats: int) -> dict:
    from compressai.ans import BufferedRansEncoder, RansDecoder

    from lic.entropy.fast import FastBufferedEncoder, FastDecoder, tables_from

    flat_s, flat_i = symbols.reshape(-1), indexes.reshape(-1)
    bounds = np.linspace(0, flat_s.numel(), steps + 1).astype(int)
    parts = [(flat_s[a:b], flat_i[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    # ---- CompressAI, as a model calls it
    def cai_encode():
        tables = (gc._quantized_cdf.tolist(), gc._cdf_length.reshape(-1).int().tolist(),
                  gc._offset.reshape(-1).int().tolist())
        enc = BufferedRansEncoder()
        for s, i in parts:
            enc.encode_with_indexes(s.tolist(), i.tolist(), *tables)
        return enc.flush()

    def cai_decode(data):
        tables = (gc._quantized_cdf.tolist(), gc._cdf_length.reshape(-1).int().tolist(),
                  gc._offset.reshape(-1).int().tolist())
        dec = RansDecoder()
        dec.set_stream(data)
        return [torch.tensor(dec.decode_stream(i.tolist(), *tables), dtype=torch.int32) for _, i in parts]

    # ---- fast path, as a model calls it
    def fast_encode():
        tables = tables_from(gc)
        enc = FastBufferedEncoder()
        for s, i in parts:
            enc.encode_with_indexes(s, i, *tables)
        return enc.flush()

    def fast_decode(data):
        tables = tables_from(gc)
        dec = FastDecoder()
        dec.set_stream(data)
        return [torch.from_numpy(dec.decode_stream(i, *tables)) for _, i in parts]

    ref, ours = cai_encode(), fast_encode()
    identical = ref == ours
    back_fast = torch.cat(fast_decode(ref))
    back_cai = torch.cat(cai_decode(ours))
    roundtrip = bool(torch.equal(back_fast, flat_s) and torch.equal(back_cai, flat_s))

    # ---- inside the coder calls only (lists / arrays prepared beforehand)
    lists = [(s.tolist(), i.tolist()) for s, i in parts]
    ltables = (gc._quantized_cdf.tolist(), gc._cdf_length.reshape(-1).int().tolist(),
               gc._offset.reshape(-1).int().tolist())
    arrays = [(s.numpy(), i.numpy()) for s, i in parts]
    tables = tables_from(gc)

    def cai_encode_only():
        enc = BufferedRansEncoder()
        for s, i in lists:
            enc.encode_with_indexes(s, i, *ltables)
        enc.flush()

    def cai_decode_only():
        dec = RansDecoder()
        dec.set_stream(ref)
        for _, i in lists:
            dec.decode_stream(i, *ltables)

    def fast_encode_only():
        enc = FastBufferedEncoder()
        for s, i in arrays:
            enc.encode_with_indexes(s, i, *tables)
        enc.flush()

    def fast_decode_only():
        dec = FastDecoder()
        dec.set_stream(ref)
        for _, i in arrays:
            dec.decode_stream(i, *tables)

    t = {
        "compressai": {"enc_ms": _median_ms(cai_encode, warmup, repeats),
                       "dec_ms": _median_ms(lambda: cai_decode(ref), warmup, repeats)},
        "fast": {"enc_ms": _median_ms(fast_encode, warmup, repeats),
                 "dec_ms": _median_ms(lambda: fast_decode(ref), warmup, repeats)},
        "coder_only": {
            "compressai": {"enc_ms": _median_ms(cai_encode_only, warmup, repeats),
                           "dec_ms": _median_ms(cai_decode_only, warmup, repeats)},
            "fast": {"enc_ms": _median_ms(fast_encode_only, warmup, repeats),
                     "dec_ms": _median_ms(fast_decode_only, warmup, repeats)},
        },
    }
    for side in (t, t["coder_only"]):
        side["ratio"] = {k: side["compressai"][k] / side["fast"][k] for k in ("enc_ms", "dec_ms")}
        side["ratio"]["total"] = ((side["compressai"]["enc_ms"] + side["compressai"]["dec_ms"])
                                  / (side["fast"]["enc_ms"] + side["fast"]["dec_ms"]))
    t.update(steps=steps, stream_bytes=len(ref), identical_streams=identical, roundtrip_ok=roundtrip)
    return t


def bench_ac(*, channels: int = 320, height: int = 32, width: int = 48, steps=(1, 10), warmup: int = 2,
             repeats: int = 7, seed: int = 0, threads: int | None = 1) -> dict:
    """Run every case (one per entry of ``steps``); returns the record :func:`main` writes."""
    import compressai
    import numba

    if threads is not None:
        torch.set_num_threads(threads)
    gc, symbols, indexes = kodak_symbols(channels, height, width, seed)
    value = symbols - gc._offset[indexes.long()]
    escapes = int(((value < 0) | (value >= gc._cdf_length[indexes.long()] - 2)).sum())
    cases = {f"steps={k}": _case(gc, symbols, indexes, k, warmup, repeats) for k in steps}
    versions = package_versions()
    versions.update(numba=numba.__version__, compressai=compressai.__version__, torch=torch.__version__,
                    numpy=np.__version__)
    return {
        "benchmark": "arithmetic coding time T_AC (lic.bench_coding)",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(),
        "versions": versions,
        "symbols": {"shape": [1, channels, height, width], "count": int(symbols.numel()), "escapes": escapes,
                    "seed": seed, "scale_table": "64 log-spaced 0.11..256"},
        "protocol": {"warmup": warmup, "repeats": repeats, "statistic": "median", "torch_threads": threads},
        "cases": cases,
    }


def kodak_photo(height: int = 512, width: int = 768) -> np.ndarray:
    """A real photo at Kodak's size, (height, width, 3) uint8, without network access:
    ``skimage.data.astronaut()`` (512 x 512) scaled by ``max(height, width) / 512`` (bicubic,
    antialiased) and centre-cropped."""
    import skimage.data
    import torch.nn.functional as F

    img = torch.from_numpy(skimage.data.astronaut()[..., :3].copy()).permute(2, 0, 1)[None].float() / 255
    side = max(height, width)
    big = F.interpolate(img, size=(side, side), mode="bicubic", align_corners=False, antialias=True)
    top, left = (side - height) // 2, (side - width) // 2
    crop = big[0, :, top: top + height, left: left + width].clamp(0, 1)
    return (crop * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


@contextmanager
def _helper_timer():
    """Times every call into the models' coder helper (:class:`lic.entropy.fast.RansCoder` and the
    encoder / decoder objects it returns): T_AC *as the model sees it*, i.e. including each path's
    data conversions (``.tolist()`` / ``torch.tensor`` of lists for CompressAI, tensor -> array views
    and ``torch.from_numpy`` for the fast path). Yields a one-element list of seconds."""
    from lic.entropy import fast

    total = [0.0]
    targets = [(fast.RansCoder, n) for n in ("tables", "make_tables", "encoder", "decoder", "encode", "decode",
                                             "eb_compress", "eb_decompress")]
    targets += [(fast._Encoder, "encode"), (fast._Encoder, "flush"), (fast._StreamDecoder, "decode")]
    saved = [(cls, name, cls.__dict__[name]) for cls, name in targets]

    def timed(fn):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - t0
        return call

    try:
        for cls, name, fn in saved:
            setattr(cls, name, timed(fn))
        yield total
    finally:
        for cls, name, fn in saved:
            setattr(cls, name, fn)


def bench_model(key: str = "li2025-hpcm-base", *, kwargs: dict | None = None, checkpoint: str | Path | None = None,
                height: int = 512, width: int = 768, warmup: int = 1, repeats: int = 3, seed: int = 0,
                threads: int | None = 1, coders=("compressai", "fast"), progress: bool = False,
                image: str | Path | None = None) -> dict:
    """Time ``compress`` / ``decompress`` of one model with each entropy-coder path of ``coders`` on
    the same weights and image (paths alternate inside every repeat). Returns the JSON record.

    ``image``: a photo file to code (e.g. a Kodak image) instead of the bundled astronaut at
    ``height`` x ``width``."""
    import compressai
    import numba

    from lic.bench import ACTimer, gc_paused
    from lic.entropy.fast import check_coder
    from lic.metrics import to_tensor
    from lic.models import registry

    if threads is not None:
        torch.set_num_threads(threads)
    coders = tuple(check_coder(c) for c in coders)
    if checkpoint is not None:
        from lic.codec import load_checkpoint

        loaded = load_checkpoint(checkpoint)
        model, source = loaded.model, str(checkpoint)
        weights = {"checkpoint": Path(checkpoint).name, "fingerprint": loaded.fingerprint.hex(),
                   "steps": loaded.record.get("steps"), "lmbda": (loaded.record.get("params") or {}).get("lmbda")}
    else:
        torch.manual_seed(seed)
        model, source = registry.build(key, **(kwargs or {})), "random-init"
        model.update(force=True)
        weights = {"checkpoint": None, "seed": seed}
    model = model.eval()
    if not hasattr(model, "entropy_coder_name"):
        raise ValueError(f"{key} has no entropy_coder switch")
    if image is not None:
        from lic.codec import read_image

        img = read_image(image)
        height, width = img.shape[:2]
        image_source = {"source": str(image), "height": height, "width": width}
    else:
        img = kodak_photo(height, width)
        image_source = {"source": "skimage.data.astronaut, bicubic x{:.2f}, centre crop".format(max(height, width) / 512),
                        "height": height, "width": width}
    from lic.codec import pad

    x = pad(to_tensor(img), getattr(model, "pad_multiple", 64))  # any photo size
    rows: dict[str, list[dict]] = {c: [] for c in coders}
    outputs: dict[str, dict] = {}
    with ACTimer(model) as timer, _helper_timer() as helper, torch.no_grad():
        for run in range(warmup + repeats):
            for name in coders:
                model.entropy_coder_name = name
                h0 = helper[0]
                with gc_paused(), timer.measure() as enc_ac:
                    t0 = time.perf_counter()
                    enc = model.compress(x)
                    t_enc = time.perf_counter() - t0
                h1 = helper[0]
                kw = {"extra": enc["extra"]} if enc.get("extra") else {}
                with gc_paused(), timer.measure() as dec_ac:
                    t0 = time.perf_counter()
                    x_hat = model.decompress(enc["strings"], enc["shape"], **kw)["x_hat"]
                    t_dec = time.perf_counter() - t0
                h2 = helper[0]
                outputs[name] = {"strings": enc["strings"], "x_hat": x_hat}
                if progress:
                    print(f"[bench_coding] {key} run {run} {name}: enc {t_enc * 1e3:.0f} ms "
                          f"(AC {enc_ac['ac_s'] * 1e3:.1f}, with conversions {(h1 - h0) * 1e3:.1f}), "
                          f"dec {t_dec * 1e3:.0f} ms (AC {dec_ac['ac_s'] * 1e3:.1f}, with conversions "
                          f"{(h2 - h1) * 1e3:.1f})", flush=True)
                if run >= warmup:
                    rows[name].append({"enc_ms": t_enc * 1e3, "enc_ac_ms": enc_ac["ac_s"] * 1e3,
                                       "enc_ac_conv_ms": (h1 - h0) * 1e3,
                                       "dec_ms": t_dec * 1e3, "dec_ac_ms": dec_ac["ac_s"] * 1e3,
                                       "dec_ac_conv_ms": (h2 - h1) * 1e3})
    model.entropy_coder_name = "fast"
    first = outputs[coders[0]]
    identical = all(o["strings"] == first["strings"] for o in outputs.values())
    same_image = all(torch.equal(o["x_hat"], first["x_hat"]) for o in outputs.values())
    n_bytes = sum(len(b) for group in first["strings"] for b in group)
    paths = {}
    for name, rs in rows.items():
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("enc_ms", "enc_ac_ms", "enc_ac_conv_ms", "dec_ms", "dec_ac_ms", "dec_ac_conv_ms")}
        med.update(enc_net_ms=med["enc_ms"] - med["enc_ac_ms"], dec_net_ms=med["dec_ms"] - med["dec_ac_ms"],
                   runs=rs)
        paths[name] = med
    rec = {
        "benchmark": "model compress/decompress, entropy_coder paths side by side (lic.bench_coding --model)",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(), "device_name": device_info().get("cpu"), "torch_device": "cpu",
        "versions": {**package_versions(), "numba": numba.__version__, "compressai": compressai.__version__,
                     "torch": torch.__version__, "numpy": np.__version__},
        "model": key, "kwargs": kwargs or {}, "weights": source, "weights_info": weights,
        "image": image_source,
        "protocol": {"warmup": warmup, "repeats": repeats, "statistic": "median", "torch_threads": threads,
                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                     "order": "paths alternate within each repeat",
                     "t_ac": "*_ac_ms: time inside the rANS coder objects (lic.bench.ACTimer); the CompressAI "
                             "path's .tolist()/torch.tensor conversions count as network time there",
                     "t_ac_conv": "*_ac_conv_ms: time inside the models' coder helper "
                                  "(lic.entropy.fast.RansCoder and its encoder/decoder objects): T_AC plus "
                                  "each path's data conversions, i.e. arithmetic coding as the model sees it"},
        "stream_bytes": n_bytes, "bpp": 8 * n_bytes / (height * width),
        "identical_streams": identical, "same_reconstruction": same_image,
        "paths": paths,
    }
    if {"compressai", "fast"} <= set(paths):
        c, f = paths["compressai"], paths["fast"]
        rec["ratio"] = {"enc_ac": c["enc_ac_ms"] / f["enc_ac_ms"], "dec_ac": c["dec_ac_ms"] / f["dec_ac_ms"],
                        "ac": (c["enc_ac_ms"] + c["dec_ac_ms"]) / (f["enc_ac_ms"] + f["dec_ac_ms"]),
                        "enc_ac_conv": c["enc_ac_conv_ms"] / f["enc_ac_conv_ms"],
                        "dec_ac_conv": c["dec_ac_conv_ms"] / f["dec_ac_conv_ms"],
                        "ac_conv": (c["enc_ac_conv_ms"] + c["dec_ac_conv_ms"])
                        / (f["enc_ac_conv_ms"] + f["dec_ac_conv_ms"]),
                        "enc_total": c["enc_ms"] / f["enc_ms"], "dec_total": c["dec_ms"] / f["dec_ms"]}
        rec["saved_ms"] = {"enc": c["enc_ms"] - f["enc_ms"], "dec": c["dec_ms"] - f["dec_ms"]}
    if not (identical and same_image):
        raise RuntimeError(f"{key}: the coder paths disagree (identical streams: {identical}, "
                           f"same reconstruction: {same_image})")
    return rec


def _write(rec: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    tmp.replace(out)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON path (default results/bench/coding_ac.json, or coding_ac_<model>.json with --model)")
    ap.add_argument("--model", default=None, help="time this registered model's compress/decompress with "
                    "entropy_coder='compressai' and 'fast' side by side (e.g. li2025-hpcm-base)")
    ap.add_argument("--checkpoint", default=None, help="with --model: trained weights (else random init)")
    ap.add_argument("--model-kwargs", type=json.loads, default=None, help="with --model: JSON constructor kwargs")
    ap.add_argument("--image-size", type=int, nargs=2, default=[512, 768], metavar=("H", "W"))
    ap.add_argument("--image", default=None, help="with --model: code this photo file (e.g. a Kodak PNG) "
                    "instead of the bundled astronaut at --image-size")
    ap.add_argument("--channels", type=int, default=320)
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--warmup", type=int, default=None, help="default 2 (1 with --model)")
    ap.add_argument("--repeats", type=int, default=None, help="default 7 (3 with --model)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.model:
        out = args.out or Path(f"results/bench/coding_ac_{args.model}.json")
        rec = bench_model(args.model, kwargs=args.model_kwargs, checkpoint=args.checkpoint,
                          height=args.image_size[0], width=args.image_size[1],
                          warmup=1 if args.warmup is None else args.warmup,
                          repeats=3 if args.repeats is None else args.repeats, seed=args.seed, progress=True,
                          image=args.image)
        _write(rec, out)
        for name, p in rec["paths"].items():
            print(f"{name}: enc {p['enc_ms']:.0f} ms (T_AC {p['enc_ac_ms']:.1f}, +conv {p['enc_ac_conv_ms']:.1f}) | "
                  f"dec {p['dec_ms']:.0f} ms (T_AC {p['dec_ac_ms']:.1f}, +conv {p['dec_ac_conv_ms']:.1f})")
        if "ratio" in rec:
            r = rec["ratio"]
            print(f"T_AC ratio compressai/fast: enc {r['enc_ac']:.1f}x dec {r['dec_ac']:.1f}x; with conversions "
                  f"enc {r['enc_ac_conv']:.1f}x dec {r['dec_ac_conv']:.1f}x | "
                  f"identical={rec['identical_streams']} same_image={rec['same_reconstruction']}")
        print(f"wrote {out}")
        return rec
    out = args.out or Path("results/bench/coding_ac.json")
    rec = bench_ac(channels=args.channels, height=args.height, width=args.width, steps=args.steps,
                   warmup=2 if args.warmup is None else args.warmup,
                   repeats=7 if args.repeats is None else args.repeats, seed=args.seed)
    _write(rec, out)
    for name, c in rec["cases"].items():
        print(f"{name}: compressai enc {c['compressai']['enc_ms']:.1f} ms dec {c['compressai']['dec_ms']:.1f} ms | "
              f"fast enc {c['fast']['enc_ms']:.1f} ms dec {c['fast']['dec_ms']:.1f} ms | "
              f"ratio enc {c['ratio']['enc_ms']:.1f}x dec {c['ratio']['dec_ms']:.1f}x | "
              f"coder only enc {c['coder_only']['ratio']['enc_ms']:.1f}x dec {c['coder_only']['ratio']['dec_ms']:.1f}x"
              f" | identical={c['identical_streams']} roundtrip={c['roundtrip_ok']}")
    print(f"wrote {out}")
    return rec


if __name__ == "__main__":
    main()
