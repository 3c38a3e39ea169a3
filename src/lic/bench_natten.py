"""natten's kernels against the PyTorch neighborhood attention of TinyLIC: outputs, gradients, a model, time.

``python -m lic.bench_natten --out results/bench/natten_cpu.json [--device cpu|cuda]``

:mod:`lic.layers.neighborhood_attention` hands its work to the ``natten`` package's kernels when they are
importable (on CUDA); its own PyTorch path is what runs everywhere else. This script checks that the two
compute the same thing through the exact calls the layer makes (``_na_natten`` against ``_na_torch``):

* **ops**: several map sizes and kernel sizes, edge windows included (H or W equal to k, non-square maps),
  with and without the relative-position bias: the largest output difference in float64 and float32, and
  in float64 the largest difference of the gradients with respect to q, k, v and the bias;
* **model**: ``lu2022-tinylic-v3`` at its registered size (random init, ``update(force=True)``) on a
  photo, once with each path: the largest difference of x̂ and of the likelihoods, whether the two
  ``compress`` streams are identical, and whether each path's stream decodes through either path to the
  encoder's 8-bit image, the eval forward's x̂ (``lic.bench.cross_device``'s rule: if an index of the
  entropy coder moves, or the synthesis rounds a pixel the other way, it does not; the record says which
  pairs; the same-path pairs are the control);
* **time**: the median of both paths at TinyLIC-sized attention inputs (``lic.bench_coding``'s timer).

natten needs a CUDA driver to import (0.17.5 queries the GPU at import time). On a machine without one,
``--device cpu`` makes that query answer "no GPU" for this run only, so that natten's CPU kernels can be
compared; the layer itself never does this. Nothing is asserted about time; a difference beyond
``--tolerance`` fails the run (exit code 1) after the record is written.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

import torch

from lic.bench_coding import _median_ms, _write
from lic.runinfo import device_info, package_versions

#: (B, heads, H, W, head_dim, kernel): edge cases of the window rules and TinyLIC-like widths
OP_CASES = [(2, 4, 20, 17, 16, 7), (1, 2, 7, 7, 8, 7), (1, 3, 9, 30, 16, 5), (1, 2, 16, 16, 8, 3),
            (1, 4, 12, 13, 32, 9)]
#: attention inputs of TinyLIC v3 (head_dim 16, k = 7) for a 128 x 128 image: g_a1, g_a3, g_a5, h_a1
TIME_CASES = [(1, 8, 64, 64, 16, 7), (1, 12, 32, 32, 16, 7), (1, 20, 16, 16, 16, 7), (1, 12, 8, 8, 16, 7)]


class NattenUnavailable(RuntimeError):
    """natten's kernels cannot be used on this machine (the message says why)."""


def _load_natten(device: str):
    """The layer module with natten loaded, or raise :class:`NattenUnavailable` naming why not."""
    import lic.layers.neighborhood_attention as na

    if na._natten_f is None and device == "cpu" and not torch.cuda.is_available():
        real = torch.cuda.get_device_capability
        torch.cuda.get_device_capability = lambda d=None: (0, 0)  # natten 0.17.5 asks at import time
        try:
            na._natten_f, na._NATTEN_IMPORT_ERROR = na._import_natten()
        finally:
            torch.cuda.get_device_capability = real
    if na._natten_ops() is None:
        raise NattenUnavailable(f"natten's kernels are not usable here: {na.natten_status()}")
    return na


def _randn(shape, dtype, device, g):
    return torch.randn(*shape, dtype=dtype, generator=g).to(device)


def _op_case(na, case, device, seed: int) -> dict:
    B, h, H, W, d, ks = case
    g = torch.Generator().manual_seed(seed)
    out = {"shape": [B, h, H, W, d], "kernel": ks}
    for dtype in (torch.float64, torch.float32):
        q, k, v = (_randn((B, h, H, W, d), dtype, device, g) for _ in range(3))
        rpb = _randn((h, 2 * ks - 1, 2 * ks - 1), dtype, device, g)
        name = str(dtype).split(".")[-1]
        out[f"max_abs_diff_{name}"] = max(
            (na._na_natten(q, k, v, ks, b) - na._na_torch(q, k, v, ks, b)).abs().max().item() for b in (rpb, None))
        if dtype is torch.float64:
            grads = []
            for fn in (na._na_natten, na._na_torch):
                leaves = [t.clone().requires_grad_(True) for t in (q, k, v, rpb)]
                upstream = torch.ones_like(q).mul_(torch.linspace(-1, 1, q.numel(), dtype=dtype, device=device)
                                                   .reshape(q.shape))
                (fn(*leaves[:3], ks, leaves[3]) * upstream).sum().backward()
                grads.append([t.grad for t in leaves])
            out["max_abs_grad_diff_float64"] = {n: (a - b).abs().max().item()
                                               for n, a, b in zip("qkv", grads[0][:3], grads[1][:3])}
            out["max_abs_grad_diff_float64"]["rpb"] = (grads[0][3] - grads[1][3]).abs().max().item()
    return out


def _model_case(na, device: str, size: int, seed: int) -> dict:
    from lic.bench_coding import kodak_photo
    from lic.metrics import to_tensor, to_uint8
    from lic.models import registry

    torch.manual_seed(seed)
    model = registry.build("lu2022-tinylic-v3").to(device).eval()
    model.update(force=True)
    x = to_tensor(kodak_photo(size, size)).to(device)
    rec = {"model": "lu2022-tinylic-v3", "image": f"skimage.data.astronaut at {size} x {size}", "seed": seed}

    def set_path(use_natten: bool):
        for m in model.modules():
            if isinstance(m, na.NeighborhoodAttention):
                m.use_natten = use_natten

    fwd, streams = {}, {}
    with torch.no_grad():
        for path, flag in (("natten", True), ("torch", False)):
            set_path(flag)
            t0 = time.perf_counter()
            fwd[path] = model(x)
            rec[f"forward_s_{path}"] = time.perf_counter() - t0
            streams[path] = model.compress(x)
        rec["max_abs_diff_x_hat"] = (fwd["natten"]["x_hat"] - fwd["torch"]["x_hat"]).abs().max().item()
        rec["max_rel_diff_likelihoods"] = max(
            ((fwd["natten"]["likelihoods"][n] - fwd["torch"]["likelihoods"][n]).abs()
             / fwd["torch"]["likelihoods"][n]).max().item() for n in fwd["torch"]["likelihoods"])
        rec["identical_streams"] = streams["natten"]["strings"] == streams["torch"]["strings"]
        cross = {}
        for enc in ("natten", "torch"):
            ref = to_uint8(fwd[enc]["x_hat"])  # the encoder's image: the eval forward equals its own decoder
            for dec in ("natten", "torch"):
                set_path(dec == "natten")
                got = to_uint8(model.decompress(streams[enc]["strings"], streams[enc]["shape"])["x_hat"])
                delta = abs(got.astype(int) - ref.astype(int))
                cross[f"{enc}->{dec}"] = {"identical": int(delta.max()) == 0, "max_abs_diff": int(delta.max()),
                                          "values_differing": int((delta > 0).sum()), "values": int(delta.size)}
        rec["decodes_to_encoder_image"] = cross
    return rec


def _time_case(na, case, device: str, repeats: int) -> dict:
    B, h, H, W, d, ks = case
    g = torch.Generator().manual_seed(0)
    q, k, v = (_randn((B, h, H, W, d), torch.float32, device, g) for _ in range(3))
    rpb = _randn((h, 2 * ks - 1, 2 * ks - 1), torch.float32, device, g)
    sync = torch.cuda.synchronize if q.is_cuda else (lambda: None)
    with torch.no_grad():
        t_n = _median_ms(lambda: (na._na_natten(q, k, v, ks, rpb), sync()), 1, repeats)
        t_t = _median_ms(lambda: (na._na_torch(q, k, v, ks, rpb), sync()), 1, repeats)
    return {"shape": [B, h, H, W, d], "kernel": ks, "natten_ms": t_n, "torch_ms": t_t, "natten_over_torch": t_n / t_t}


def run(device: str = "cpu", *, model_size: int = 64, repeats: int = 3, seed: int = 0, threads: int | None = 1,
        tolerance: float = 1e-10) -> dict:
    """The JSON record (see the module docstring)."""
    if threads is not None:
        torch.set_num_threads(threads)
    na = _load_natten(device)
    natten_version = getattr(sys.modules.get("natten"), "__version__", None)

    added = device not in na.NATTEN_DEVICE_TYPES
    na.NATTEN_DEVICE_TYPES.add(device)
    try:
        ops = [_op_case(na, c, device, seed + i) for i, c in enumerate(OP_CASES)]
        model = _model_case(na, device, model_size, seed)
        timing = [_time_case(na, c, device, repeats) for c in TIME_CASES]
    finally:
        if added:
            na.NATTEN_DEVICE_TYPES.discard(device)
    worst64 = max(max(o["max_abs_diff_float64"], *o["max_abs_grad_diff_float64"].values()) for o in ops)
    return {
        "kind": "natten-check",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(), "run_device": device, "versions": {**package_versions(),
                                                                    "natten": natten_version},
        "protocol": {"threads": threads, "repeats": repeats, "seed": seed, "tolerance_float64": tolerance},
        "ops": ops, "worst_float64_diff": worst64, "float64_within_tolerance": worst64 <= tolerance,
        "model": model, "time": timing,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default results/bench/natten_<device>.json)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model-size", type=int, default=64, help="side of the square photo the model codes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    ap.add_argument("--tolerance", type=float, default=1e-10, help="largest float64 difference accepted")
    args = ap.parse_args(argv)
    try:
        rec = run(args.device, model_size=args.model_size, repeats=args.repeats,
                  threads=args.threads or None, tolerance=args.tolerance)
    except NattenUnavailable as e:
        raise SystemExit(f"lic.bench_natten: {e}")
    out = args.out or Path(f"results/bench/natten_{args.device}.json")
    _write(rec, out)
    print(f"natten {rec['versions']['natten']} on {args.device}: "
          f"worst float64 difference {rec['worst_float64_diff']:.2e}")
    m = rec["model"]
    if m:
        print(f"TinyLIC v3: x_hat diff {m['max_abs_diff_x_hat']:.2e}, identical streams {m['identical_streams']}, "
              f"cross decoding { {p: c['identical'] for p, c in m['decodes_to_encoder_image'].items()} }")
    for t in rec["time"]:
        print(f"{t['shape']} k={t['kernel']}: natten {t['natten_ms']:.1f} ms, torch {t['torch_ms']:.1f} ms")
    print(f"wrote {out}")
    if not rec["float64_within_tolerance"]:
        raise SystemExit(1)
    return rec


if __name__ == "__main__":
    main()
