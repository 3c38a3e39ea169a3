"""Peak memory and speed of a TinyLIC v3 training step with each neighborhood-attention path.

``python -m lic.bench_attention --out data/bench/attention/cpu.json --cases chunked:8 reference:1 flex:8``

Each case ``impl:batch`` runs in a **fresh subprocess** (so its peak RSS is its own): ``lu2022-tinylic-v3``
at its registered (paper) size (``--kwargs`` JSON overrides it), random initialisation (seed 0),
``attention_impl=impl``, trained for ``--steps`` steps on ``batch`` crops of ``--size``² of a bundled photo
(skimage's astronaut, flipped and shifted per sample) — the training step of ``lic.train``: forward, λ·255²·MSE + bpp (λ 0.0483), backward,
gradient clipping at 1, Adam (lr 1e-4), and the auxiliary quantile step. The record gives per case the time
of every step (wall and CPU time: on a shared machine the CPU time says more), steps/s (the median
of the steps after the first, which also allocates), the peak RSS (``ru_maxrss``, in GiB = 2³⁰ bytes; on
CUDA also ``torch.cuda.max_memory_allocated``) and ``status``: ``ok``, ``error`` (the exception's first line,
e.g. FlexAttention's missing CPU backward) or ``over-limit`` (a watchdog stops a child whose RSS passes
``--rss-limit-gb``, so that a path which cannot fit does not take a shared machine down; the record says
how far it got). ``--skip impl:batch=reason`` writes a case that was deliberately not run, with its reason.

Nothing is asserted; the numbers are for docs/tinylic.md and notebook 02 (:func:`lic.reports.tinylic.
attention_table`). Run it with ``nice`` on a shared machine: a paper-size step at batch 8 takes minutes on
2 CPU cores.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

KEY = "lu2022-tinylic-v3"
LAMBDA = 0.0483


def _steady_s(step_s: list[float]) -> float:
    """Seconds per step: the median of the steps after the first (which also allocates), else the first."""
    return statistics.median(step_s[1:] or step_s)


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _watchdog(limit_gb: float, report: dict) -> None:
    """Stop this process (exit code 3) with a JSON line once its RSS passes ``limit_gb``."""
    def watch():
        while True:
            rss = _rss_gb()
            if rss > limit_gb:
                print(json.dumps({**report, "status": "over-limit", "rss_gb_at_stop": round(rss, 2),
                                  "peak_rss_gb": _peak_rss_gb()}), flush=True)
                os._exit(3)
            time.sleep(0.05)
    threading.Thread(target=watch, daemon=True).start()


def _peak_rss_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)  # Linux: KiB


def _batch(batch: int, size: int) -> torch.Tensor:
    from lic.bench_coding import kodak_photo
    from lic.metrics import to_tensor

    photo = to_tensor(kodak_photo(size + 8 * batch, size + 8 * batch))[0]
    crops = []
    for b in range(batch):
        c = photo[:, 8 * b:8 * b + size, 8 * b:8 * b + size]
        crops.append(c.flip(-1) if b % 2 else c)
    return torch.stack(crops)


def child(impl: str, batch: int, size: int, steps: int, device: str, limit_gb: float, threads: int | None,
          kwargs: dict | None = None) -> dict:
    """One case, in this process: the record's case entry (also printed as the last stdout line)."""
    from lic.layers.neighborhood_attention import attention_record
    from lic.models import registry
    from lic.train import RateDistortionLoss, split_parameters

    report = {"impl": impl, "batch": batch, "size": size, "device": device, "steps_done": 0, "step_s": []}
    _watchdog(limit_gb, report)
    if threads:
        torch.set_num_threads(threads)
    report["threads"] = torch.get_num_threads()
    torch.manual_seed(0)
    model = registry.build(KEY, **{**(kwargs or {}), "attention_impl": impl}).to(device).train()
    main_params, aux_params = split_parameters(model)
    opt, aux_opt = torch.optim.Adam(main_params, lr=1e-4), torch.optim.Adam(aux_params, lr=1e-3)
    loss_fn = RateDistortionLoss(LAMBDA)
    x = _batch(batch, size).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    try:
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            aux_opt.zero_grad(set_to_none=True)
            out = loss_fn(model(x), x)
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(main_params, 1.0)
            opt.step()
            model.aux_loss().backward()
            aux_opt.step()
            sync()
            report["step_s"].append(round(time.perf_counter() - t0, 3))
            report.setdefault("step_cpu_s", []).append(round(time.process_time() - c0, 3))  # all threads
            report["steps_done"] += 1
            report["loss"] = round(out["loss"].item(), 4)
        report["status"] = "ok"
    except Exception as e:
        report["status"] = "error"
        report["error"] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
    report["attention"] = attention_record(model)
    report["peak_rss_gb"] = _peak_rss_gb()
    if device.startswith("cuda"):
        report["cuda_max_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    if report["step_s"]:
        report["steps_per_s"] = round(1 / _steady_s(report["step_s"]), 5)
    return report


def streams_check(impls: list[str], size: int, kwargs: dict | None = None, seed: int = 0) -> dict:
    """A TinyLIC v3 (random init, ``update``) codes a photo crop through :mod:`lic.codec` with each path;
    every stream is decoded with every path and compared with its encoder's 8-bit image."""
    import numpy as np

    from lic import codec
    from lic.bench_coding import kodak_photo
    from lic.layers.neighborhood_attention import set_attention_impl
    from lic.models import registry

    torch.manual_seed(seed)
    model = registry.build(KEY, **(kwargs or {})).eval()
    model.update(force=True)
    lm = codec.LoadedModel(model, KEY, 0, codec.state_fingerprint(model.state_dict()), {})
    img = kodak_photo(size, size + size // 2)
    enc, rec = {}, {"image": f"skimage astronaut {size} x {size + size // 2}", "impls": impls, "decode": {}}
    for impl in impls:
        set_attention_impl(model, impl)
        t0 = time.perf_counter()
        enc[impl] = codec.encode(lm, img, estimate=False)
        rec[f"encode_s_{impl}"] = round(time.perf_counter() - t0, 2)
    rec["identical_streams"] = len({e.data for e in enc.values()}) == 1
    for src in impls:
        for dst in impls:
            set_attention_impl(model, dst)
            got = codec.decode(lm, enc[src].data).astype(int)
            delta = np.abs(got - enc[src].reconstruction.astype(int))
            rec["decode"][f"{src}->{dst}"] = {"identical": int(delta.max()) == 0, "max_abs_diff": int(delta.max()),
                                              "values_differing": int((delta > 0).sum())}
    return rec


def _run_case(impl: str, batch: int, args) -> dict:
    cmd = [sys.executable, "-m", "lic.bench_attention", "--child", f"{impl}:{batch}", "--size", str(args.size),
           "--steps", str(args.steps), "--device", args.device, "--rss-limit-gb", str(args.rss_limit_gb),
           "--threads", str(args.threads), "--kwargs", json.dumps(args.kwargs)]
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    case = json.loads(lines[-1]) if lines else {"impl": impl, "batch": batch, "size": args.size,
                                                "status": "error", "error": (p.stderr.strip().splitlines()
                                                                             or [f"exit code {p.returncode}"])[-1]}
    case["returncode"], case["wall_s"] = p.returncode, round(time.perf_counter() - t0, 1)
    case["load_avg_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]  # at start and end: a shared machine
    if p.returncode < 0:
        case["status"], case["error"] = "killed", f"signal {-p.returncode} (out of memory?)"
    return case


def _parse_case(text: str) -> tuple[str, int]:
    """``impl:batch`` (batch 8 if left out); ValueError naming what is wrong."""
    from lic.layers.neighborhood_attention import check_impl

    impl, _, batch = text.partition(":")
    try:
        return check_impl(impl), int(batch or 8)
    except ValueError as e:
        raise ValueError(f"bad case {text!r} (impl:batch): {e}") from None


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=["chunked:8"], help="impl:batch, each in its own subprocess")
    ap.add_argument("--skip", nargs="*", default=[], help="impl:batch=reason: recorded as not run")
    ap.add_argument("--size", type=int, default=256, help="side of the square training crops")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--rss-limit-gb", type=float, default=16.0, help="stop a case whose RSS passes this")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default results/bench/attention_<device>.json)")
    ap.add_argument("--kwargs", type=json.loads, default={}, help="model kwargs as JSON (default: the paper size)")
    ap.add_argument("--streams", nargs="*", default=None, metavar="IMPL",
                    help="instead: code a photo with each IMPL and cross-decode (--size is the crop height)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:  # bad cases: argparse's one-line error, exit code 2
        for text in [*args.cases, *(t.partition("=")[0] for t in args.skip), *(args.streams or [])]:
            _parse_case(text)
    except ValueError as e:
        ap.error(str(e))
    if args.child:
        impl, batch = _parse_case(args.child)
        print(json.dumps(child(impl, batch, args.size, args.steps, args.device, args.rss_limit_gb,
                               args.threads or None, args.kwargs)), flush=True)
        return None
    from lic.bench_coding import _write
    from lic.runinfo import git_sha

    args.git_sha = git_sha()  # of the code that is measured, taken before the (long) cases run
    if args.streams is not None:
        rec = {**_record(args, []), "kind": "attention-streams",
               "streams": streams_check(args.streams, args.size, args.kwargs)}
        del rec["cases"]
        out = args.out or Path("results/bench/attention_streams.json")
        _write(rec, out)
        print(json.dumps(rec["streams"], indent=1))
        return rec
    skipped = []
    for text in args.skip:
        spec, _, reason = text.partition("=")
        impl, batch = _parse_case(spec)
        skipped.append({"impl": impl, "batch": batch, "size": args.size, "status": "not run", "reason": reason})
    todo = [_parse_case(text) for text in args.cases]
    out = args.out or Path(f"results/bench/attention_{args.device}.json")
    cases: list[dict] = []
    for impl, batch in todo:  # the record is rewritten after every case: a long run keeps what it measured
        cases.append(_run_case(impl, batch, args))
        c = cases[-1]
        print(f"{impl} batch {batch}: {c['status']} {c.get('error', '')} peak RSS {c.get('peak_rss_gb')} GB, "
              f"steps {c.get('step_s')}", flush=True)
        rec = _record(args, cases + skipped)
        _write(rec, out)
    if not todo:
        rec = _record(args, skipped)
        _write(rec, out)
    print(f"wrote {out}")
    return rec


def _record(args, cases: list[dict]) -> dict:
    from lic.runinfo import device_info, package_versions

    return {"kind": "attention-bench", "model": KEY, "kwargs": args.kwargs,
           "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "device": device_info(), "run_device": args.device, "versions": package_versions(),
           "git_sha": args.git_sha,
           "protocol": {"size": args.size, "steps": args.steps, "lambda": LAMBDA, "threads": args.threads or None,
                        "rss_limit_gb": args.rss_limit_gb, "seed": 0, "optimizer": "Adam 1e-4, aux Adam 1e-3, clip 1"},
           "cases": cases}


if __name__ == "__main__":
    main()
