"""Benchmarks that write numbers: ``lic bench`` -> ``results/bench/<device>.json``.

Two protocols of the HPCM supplement, for every model of ``bench.models``:

* **Coding time (Table C):** batch 1, each image of the profile's first evaluation dataset,
  ``bench.warmup`` untimed runs then ``bench.repeats`` timed ones; the median over runs and images
  of encode and decode time, each split into arithmetic coding (T_AC: the time spent inside the
  rANS coder objects, measured by wrapping them, see :class:`ACTimer`) and network inference
  (T_Net = total − T_AC, with ``torch.cuda.synchronize()`` around every timed call on a GPU).
  The decode of every timed run is checked against the encoder's reconstruction.
* **Training speed (Table A):** steps/s of the trainer's loss, backward and Adam step at
  ``bench.train_batch`` × ``bench.train_patch``², after ``bench.train_warmup`` untimed steps,
  median of ``bench.train_steps`` per-step times; random inputs (the data loader is not timed).

Each model is measured in spawned worker processes of its own (:class:`IsolatedRunner`): one for
coding time, cross-device decoding and CGOO's online cost, one for the plain training step and then
each training option. A measurement whose process dies (a native crash inside torch, which no
``except`` can catch) or runs past ``bench.<profile>.worker_timeout_s`` is recorded as an ``error``
and the benchmark goes on.

Peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, and the worker's peak resident set
(``ru_maxrss``) on the CPU — a process-wide high-water mark: the coding worker's is that model's own,
the training worker's grows from the plain run over its options (the record says so). The output names the device, torch/CUDA versions and
the date; several devices give several files, and notebook 03 shows each as a column.

Numbers are never asserted by tests (timings depend on the machine); tests only check the protocol.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import re
import resource
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from lic import paths
from lic.runinfo import device_info, package_versions

#: The rANS coder classes whose calls count as arithmetic coding (T_AC), by module.
CODER_CLASSES = {
    "compressai.ans": ("BufferedRansEncoder", "RansEncoder", "RansDecoder"),
    # what lic.entropy.fast.RansCoder (the models' entropy_coder="fast") makes; the one-shot
    # FastEncoder / FastDecoder.decode_with_indexes use private references inside: counted once
    "lic.entropy.fast": ("FastBufferedEncoder", "FastDecoder", "FastEncoder"),
}


class _Timed:
    """Wraps a coder object; every method call adds its wall time to the timer."""

    def __init__(self, inner, timer: "ACTimer") -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_timer", timer)

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        timer = self._timer

        def call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - t0

        return call


class ACTimer:
    """While active, every rANS coder object created by the models, and the coder pair that each of
    ``model``'s CompressAI entropy models holds, is wrapped so that its calls are timed.

    It replaces the coder class names in :data:`CODER_CLASSES`' modules and in every loaded
    ``lic.*`` / ``compressai.*`` module that imported them by name (``lic.entropy.fast`` itself too:
    its ``RansCoder`` makes the models' coder objects), and restores them on exit. Work a model does
    *around* the coder (building index tensors, ``.tolist()``) counts as network time: exactly the
    cost a faster Python/C exchange removes (HPCM Table C).
    """

    def __init__(self, model: torch.nn.Module | None = None) -> None:
        self.seconds = 0.0
        self.model = model
        self._saved: list[tuple[object, str, object]] = []

    def _factory(self, cls):
        timer = self

        def make(*args, **kwargs):
            return _Timed(cls(*args, **kwargs), timer)

        return make

    def __enter__(self) -> "ACTimer":
        targets = []
        for modname, names in CODER_CLASSES.items():
            try:
                mod = importlib.import_module(modname)
            except ImportError:
                continue
            for name in names:
                if hasattr(mod, name):
                    targets.append((name, getattr(mod, name)))
        users = [m for n, m in list(sys.modules.items()) if m is not None and (
            n.startswith("lic.") or n.startswith("compressai."))]
        for name, cls in targets:
            wrapped = self._factory(cls)
            for mod in users:
                if getattr(mod, name, None) is cls:
                    self._saved.append((mod, name, cls))
                    setattr(mod, name, wrapped)
        # CompressAI's entropy models create their coder pair once, at construction (_EntropyCoder)
        for module in (self.model.modules() if self.model is not None else ()):
            coder = getattr(module, "entropy_coder", None)
            for attr in ("_encoder", "_decoder"):
                inner = getattr(coder, attr, None)
                if inner is not None and not isinstance(inner, _Timed):
                    self._saved.append((coder, attr, inner))
                    setattr(coder, attr, _Timed(inner, self))
        return self

    def __exit__(self, *exc) -> None:
        for mod, name, cls in reversed(self._saved):
            setattr(mod, name, cls)
        self._saved.clear()

    @contextmanager
    def measure(self):
        """Yield a dict that receives ``ac_s`` (time in the coders during the block)."""
        start = self.seconds
        out: dict = {}
        yield out
        out["ac_s"] = self.seconds - start


@contextmanager
def gc_paused():
    """Collect garbage, then keep Python's cyclic garbage collector off inside the block (as ``timeit``
    does): a model holds enough Python objects that a collection triggered by the allocations of a
    timed call costs milliseconds, charged at random to whatever runs then (T_AC included)."""
    import gc

    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def coding_time(model: torch.nn.Module, images: list[np.ndarray], *, warmup: int = 1, repeats: int = 3,
                pad_multiple: int | None = None) -> dict:
    """Median encode/decode times (ms), split into T_Net and T_AC, over ``images`` (H, W, 3) uint8."""
    from lic.codec import pad
    from lic.metrics import to_tensor

    device = next(model.parameters()).device
    multiple = pad_multiple or getattr(model, "pad_multiple", 64)
    rows = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with ACTimer(model) as timer, torch.no_grad():
        for img in images:
            x = pad(to_tensor(img).to(device), multiple)
            for run in range(warmup + repeats):
                _sync(device)
                with gc_paused(), timer.measure() as enc_ac:
                    t0 = time.perf_counter()
                    out = model.compress(x)
                    _sync(device)
                    enc = time.perf_counter() - t0
                kwargs = {"extra": out["extra"]} if out.get("extra") else {}
                with gc_paused(), timer.measure() as dec_ac:
                    t0 = time.perf_counter()
                    rec = model.decompress(out["strings"], out["shape"], **kwargs)["x_hat"]
                    _sync(device)
                    dec = time.perf_counter() - t0
                if run >= warmup:
                    rows.append({"enc_s": enc, "enc_ac_s": enc_ac["ac_s"], "dec_s": dec, "dec_ac_s": dec_ac["ac_s"],
                                 "pixels": img.shape[0] * img.shape[1]})
            del rec
    med = {k: statistics.median(r[k] for r in rows) * 1000 for k in ("enc_s", "enc_ac_s", "dec_s", "dec_ac_s")}
    return {"enc_total_ms": med["enc_s"], "enc_ac_ms": med["enc_ac_s"], "enc_net_ms": med["enc_s"] - med["enc_ac_s"],
            "dec_total_ms": med["dec_s"], "dec_ac_ms": med["dec_ac_s"], "dec_net_ms": med["dec_s"] - med["dec_ac_s"],
            "images": len(images), "repeats": repeats, "warmup": warmup,
            "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "peak_rss_mb": _peak_rss_mb()}


#: training-speed options of ``bench.<profile>.train_options`` ("+" combines them, e.g. "bf16+channels_last")
TRAIN_OPTIONS = ("bf16", "channels_last", "compile")


def parse_options(spec: str) -> dict:
    """``"bf16+compile"`` -> ``{"bf16": True, "channels_last": False, "compile": True}``."""
    names = [n for n in spec.split("+") if n]
    unknown = [n for n in names if n not in TRAIN_OPTIONS]
    if unknown or not names:
        raise ValueError(f"unknown training option(s) {unknown or spec!r}; known: {', '.join(TRAIN_OPTIONS)}")
    return {n: n in names for n in TRAIN_OPTIONS}


#: Known crashes of a training option, each (torch version, device type, option, model-key prefixes, why):
#: on the torch version where it was seen, the option is not run on such a machine but recorded as skipped
#: with the reason (another torch version runs it again; ``LIC_BENCH_RUN_KNOWN_CRASHES=1`` runs it anyway).
KNOWN_CRASHES = (
    ("2.14.1", "cpu", "channels_last", ("liu2023-tcm", "kuang2025-cgoo"),
     "oneDNN's AVX2 1x1-convolution backward-weights kernel corrupts memory with channels-last tensors "
     "(free(): invalid next size / a segmentation fault / a spinning kernel; docs/hpcm.md)"),
)
_AVX2_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2")


def onednn_avx2_only() -> bool:
    """Whether oneDNN runs its AVX2 (or older) kernels here: a CPU without AVX-512 (torch's CPU
    capability) or oneDNN capped below AVX-512 by ``ONEDNN_MAX_CPU_ISA`` / ``DNNL_MAX_CPU_ISA``."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False  # oneDNN's x64 kernels only
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if cap and cap != "ALL":
        return cap in _AVX2_ISAS
    return torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AVX512_BF16", "AMX")


def known_crash(key: str, opts: dict, device: torch.device) -> str | None:
    """The reason ``key``'s training option ``opts`` is known to crash on ``device`` here, or None."""
    if os.environ.get("LIC_BENCH_RUN_KNOWN_CRASHES") == "1":
        return None
    version = torch.__version__.split("+")[0]
    for v, dev_type, option, prefixes, why in KNOWN_CRASHES:
        if (version == v and device.type == dev_type and opts.get(option) and key.startswith(prefixes)
                and (dev_type != "cpu" or onednn_avx2_only())):
            return f"skipped: known crash with torch {v} on this CPU: {why}"
    return None


def training_speed(model: torch.nn.Module, *, batch: int = 8, patch: int = 256, steps: int = 10, warmup: int = 3,
                   lmbda: float = 0.013, bf16: bool = False, channels_last: bool = False, compile: bool = False,
                   seed: int = 0) -> dict:
    """Median steps/s of loss + backward + Adam step (+ the auxiliary step when the model has one).

    Options (training only: they never touch a bitstream): ``bf16`` autocast of the forward (CUDA and CPU),
    ``channels_last`` memory format of weights and input, ``compile`` = ``torch.compile`` of the forward
    (its compilation happens in the warm-up steps, which are not timed)."""
    from lic.train import RateDistortionLoss, split_parameters

    device = next(model.parameters()).device
    model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    main, aux = split_parameters(model)
    opt = torch.optim.Adam(main, lr=1e-4)
    aux_opt = torch.optim.Adam(aux, lr=1e-3) if aux else None
    loss_fn = RateDistortionLoss(lmbda)
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.rand(batch, 3, patch, patch, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = forward(x)
        loss = loss_fn({"x_hat": out["x_hat"].float(), "likelihoods": out["likelihoods"]}, x)["loss"]
        loss.backward()
        opt.step()
        if aux_opt is not None:
            aux_opt.zero_grad(set_to_none=True)
            model.aux_loss().backward()
            aux_opt.step()
        _sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    model.eval()
    return {"steps_per_s": 1.0 / statistics.median(times), "batch": batch, "patch": patch, "steps": steps,
            "warmup": warmup, "bf16": bf16, "channels_last": channels_last, "compile": compile,
            "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "peak_rss_mb": _peak_rss_mb()}


def training_options(key: str, params: dict, dev: torch.device, baseline: dict, progress: bool = True,
                     runner: "IsolatedRunner | None" = None) -> list[dict]:
    """Training speed of ``key`` with each entry of ``bench.train_options`` (a fresh model each, same
    protocol as the baseline), and its speed-up over ``baseline``.

    The options run in a spawned worker process (``runner``: :func:`run` passes the one that measured
    the model's plain run; a new one per call when None): a failing option is recorded with its error instead of stopping the
    benchmark, including one that crashes the process (e.g. channels-last in TCM's backward on an AMD
    EPYC CPU, torch 2.14.1: a segmentation fault), which no ``except`` could catch."""
    b = params["bench"]
    rows = []
    parsed = {spec: parse_options(spec) for spec in b["train_options"]}  # a typo fails before anything runs
    for spec, opts in parsed.items():
        if progress:
            print(f"[bench] {key}: training speed with {spec}", flush=True)
        kwargs = dict(batch=b["train_batch"], patch=b["train_patch"], steps=b["train_steps"],
                      warmup=b["train_warmup"], **opts)
        if why := known_crash(key, opts, dev):
            rows.append({"option": spec, "error": why, "skipped": True})
            continue
        job = (key, params["models"][key]["kwargs"], str(dev), torch.get_num_threads(), kwargs)
        out = (runner.run(_option_worker, job) if runner is not None
               else run_isolated(_option_worker, job, timeout_s=b.get("worker_timeout_s", 3600.0)))
        if "error" in out:
            rows.append({"option": spec, "error": out["error"]})
        else:
            base = baseline.get("steps_per_s")  # None when the plain run itself failed
            rows.append({"option": spec, **out, "speedup": out["steps_per_s"] / base if base else None})
    return rows


def _option_worker(key: str, model_kwargs: dict, device: str, threads: int, kwargs: dict) -> dict:
    from lic.models import registry

    torch.set_num_threads(threads)
    model = registry.build(key, **model_kwargs).to(torch.device(device))
    return training_speed(model, **kwargs)


def _isolated_loop(conn) -> None:
    from lic.quiet import ignore_known_warnings

    ignore_known_warnings()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        fn, args = task
        try:
            msg = {"result": fn(*args)}
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            msg = {"error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"}
        conn.send(msg)


class IsolatedRunner:
    """Runs calls in a spawned worker process, one at a time, reused from call to call (a spawned
    process spends seconds importing torch): ``run(fn, args)`` returns ``fn(*args)``, or
    ``{"error": ...}`` when it raised, killed the process (a signal: a crash no ``except`` could
    catch) or ran past ``timeout_s``; after a death or a timeout the next call starts a new worker.

    Spawn, never fork: the benchmark has run autograd (a forked child's backward hangs) and may hold
    a CUDA context."""

    def __init__(self, timeout_s: float = 3600.0) -> None:
        self.timeout_s = timeout_s
        self._proc = None
        self._conn = None

    def __enter__(self) -> "IsolatedRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_isolated_loop, args=(child,), daemon=True)
        self._proc.start()
        child.close()

    def _stop(self, kill: bool) -> int | None:
        proc, self._proc = self._proc, None
        self._conn.close()
        if kill:
            proc.kill()
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        return proc.exitcode

    def run(self, fn, args: tuple) -> dict:
        if self._proc is None:
            self._start()
        try:
            self._conn.send((fn, args))
            if not self._conn.poll(self.timeout_s):
                self._stop(kill=True)
                return {"error": f"timed out after {self.timeout_s:.0f} s"}
            msg = self._conn.recv()
        except (EOFError, OSError):  # the worker died (before or while running the call)
            code = self._stop(kill=False)
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return {"error": f"the measuring process died ({how})"}
        return msg["result"] if "result" in msg else msg

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._stop(kill=False)


def run_isolated(fn, args: tuple, timeout_s: float = 3600.0) -> dict:
    """``fn(*args)`` in a spawned process of its own (:class:`IsolatedRunner`)."""
    with IsolatedRunner(timeout_s) as runner:
        return runner.run(fn, args)


@torch.no_grad()
def online_cost(loaded, images: list[np.ndarray], iterations: list[int], lmbda: float) -> list[dict]:
    """Encode time and RD cost per number of online iterations (CGOO: the encoder-side optimisation).

    For each count n, ``model.online_iters = n``, every image is encoded with :func:`lic.codec.encode`
    (bpp from the container bytes), decoded, and ``λ·255²·MSE + bpp`` recorded; n = 0 is the plain
    encoder of the same weights."""
    from lic.codec import decode, encode
    from lic.metrics import mse

    model = loaded.model
    saved = model.online_iters
    rows = []
    try:
        for n in iterations:
            model.online_iters = int(n)
            for i, img in enumerate(images):
                enc = encode(loaded, img, estimate=False)
                rec = decode(loaded, enc.data)
                pixels = img.shape[0] * img.shape[1]
                bpp = len(enc.data) * 8 / pixels
                d = mse(img, rec) / 255**2
                rows.append({"iterations": int(n), "image": i, "enc_s": enc.encoding_time, "bpp": bpp,
                             "mse": d, "rd_cost": lmbda * 255**2 * d + bpp})
    finally:
        model.online_iters = saved
    return rows


def bench_devices(devices: list[str] | None = None) -> list[str]:
    """The devices of the cross-device check: ``devices``, or this machine's CUDA device and the CPU."""
    if devices:
        return list(devices)
    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


@torch.no_grad()
def cross_device(loaded_on: dict, images: list[np.ndarray]) -> dict:
    """Encode each image on every device of ``loaded_on`` (device -> :class:`lic.codec.LoadedModel`, the
    same weights and CDF tables on each), write the container bytes, and decode them on every device
    with that device's model: the decoded image must equal the encoder's reconstruction.

    A stream is decodable across devices only if the encoder's and the decoder's networks give the same
    entropy-coding inputs (scale indexes, means) bit for bit; float results differ between a GPU and a
    CPU, so this is measured, not assumed. Each pair records ``identical`` (the decoded image equals the
    encoder's reconstruction), ``max_abs_diff`` / ``psnr_db`` against it (8-bit RGB), or the ``error``
    the decoder raised (a corrupted-looking stream); ``same_stream`` says whether the encoders of all
    devices wrote the same bytes. The same-device pairs are the control."""
    from lic.codec import decode, encode
    from lic.metrics import psnr

    devices = list(loaded_on)
    pairs = []
    same_stream = True
    for i, img in enumerate(images):
        streams = {}
        for d in devices:
            enc = encode(loaded_on[d], img, estimate=False)
            streams[d] = enc.data
            for e in devices:
                row = {"image": i, "encode": d, "decode": e}
                try:
                    rec = decode(loaded_on[e], enc.data)
                except Exception as exc:  # noqa: BLE001 - a decoder that cannot follow the stream
                    row.update(identical=False, error=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}")
                else:
                    diff = int(np.abs(rec.astype(np.int16) - enc.reconstruction.astype(np.int16)).max())
                    row.update(identical=diff == 0, max_abs_diff=diff,
                               psnr_db=float("inf") if diff == 0 else float(psnr(enc.reconstruction, rec)))
                pairs.append(row)
        same_stream &= len(set(streams.values())) == 1
    out = {"devices": devices, "images": len(images), "same_stream": same_stream, "pairs": pairs,
           "all_identical": all(p["identical"] for p in pairs)}
    if len(devices) < 2:
        out["note"] = "one device only (no CUDA here): the same-device control, no cross-device pair"
    return out


def _loaded_on(key: str, model: torch.nn.Module, ckpt: Path | None, devices: list[str]) -> dict:
    """One LoadedModel per device with identical weights and tables: the checkpoint loaded on each device
    (its stored CDF tables), or copies of the random-init ``model`` (tables built once, on the CPU)."""
    import copy

    from lic.codec import LoadedModel, load_checkpoint, state_fingerprint

    if ckpt is not None:
        return {d: load_checkpoint(ckpt, device=d) for d in devices}
    cpu = copy.deepcopy(model).cpu()
    fp = state_fingerprint(cpu.state_dict())
    return {d: LoadedModel(copy.deepcopy(cpu).to(d).eval(), key, 0, fp, {}) for d in devices}


def _device_slug(info: dict) -> str:
    name = info.get("cuda_device") or info.get("cpu") or "cpu"
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")[:60] or "device"


def _weights_of(key: str, quality: int) -> tuple[str, Path | None]:
    """(what the record calls the weights, the checkpoint): the trained checkpoint of ``quality`` when
    the pipeline made one, else ``"random-init"`` and None."""
    from lic import placeholder
    from lic.evaluate import checkpoint_for

    ckpt = checkpoint_for(key, quality)
    if ckpt.exists() and not placeholder.is_placeholder(ckpt):
        return str(ckpt.relative_to(paths.ROOT)), ckpt
    return "random-init", None


def _coding_worker(key: str, params: dict, device: str, files: list[str], cross_devices: list[str] | None,
                   progress: bool, threads: int) -> dict:
    """One model's coding time, cross-device decoding and (CGOO) online-optimisation cost: the part of
    :func:`run` done in a worker process, returned as the record's fields."""
    from lic.codec import load_checkpoint, read_image
    from lic.models import registry

    torch.set_num_threads(threads)
    b = params["bench"]
    dev = torch.device(device)
    images = [read_image(f) for f in files]
    source, ckpt = _weights_of(key, b["quality"])
    if ckpt is None:
        model = registry.build(key, **params["models"][key]["kwargs"])
        model.update(force=True)
    else:
        model = load_checkpoint(ckpt).model
    model = model.to(dev).eval()
    if progress:
        print(f"[bench] {key} on {dev}: coding time ({source})", flush=True)
    coding = coding_time(model, images, warmup=b["warmup"], repeats=b["repeats"])
    if progress:
        print(f"[bench] {key}: enc {coding['enc_total_ms']:.1f} ms (AC {coding['enc_ac_ms']:.1f}), "
              f"dec {coding['dec_total_ms']:.1f} ms (AC {coding['dec_ac_ms']:.1f})", flush=True)
    out = {"weights": source, "coding": coding}
    if b["cross_device_images"] > 0:
        devs = bench_devices(cross_devices)
        if progress:
            print(f"[bench] {key}: cross-device decoding ({' / '.join(devs)})", flush=True)
        out["cross_device"] = cross_device(_loaded_on(key, model, ckpt, devs), images[: b["cross_device_images"]])
    if hasattr(model, "online_iters") and ckpt is not None:
        if progress:
            print(f"[bench] {key}: online optimisation cost per iteration count", flush=True)
        lmbda = params["models"][key]["lambdas"][b["quality"] - 1]
        out["online"] = online_cost(load_checkpoint(ckpt), images, b["online_iters"], lmbda)
    return out


def run(params: dict, *, device: str | None = None, models: list[str] | None = None,
        out: str | Path | None = None, progress: bool = True, cross_devices: list[str] | None = None,
        image_files: list[str | Path] | None = None) -> Path:
    """Benchmark every model of ``bench.models`` (trained checkpoints at ``bench.quality`` when they exist,
    else the profile's kwargs at random initialisation, recorded as such) and write one JSON.

    ``cross_devices``: the devices of the cross-device decoding check (default: CUDA and CPU when CUDA
    exists, else the CPU alone), run on ``bench.cross_device_images`` images (0: skipped).
    ``image_files``: code these photo files instead of the first ``bench.images`` of the profile's first
    evaluation dataset (e.g. Kodak PNGs on a machine where the dataset stage cannot download)."""
    from lic.codec import read_image
    from lic.data.prepare import load_manifest

    b = params["bench"]
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    files = [Path(f) for f in image_files] if image_files else load_manifest(params["data"]["eval"][0])[: b["images"]]
    images = [read_image(f) for f in files]  # read here first: an unreadable file fails before any worker starts
    records = []
    threads = torch.get_num_threads()
    for key in models or b["models"]:
        # each model in worker processes of its own (spawned): a crash inside torch's kernels (seen with
        # torch 2.14.1 on CPUs: aborts and segmentation faults in a backward) becomes this model's error
        # record instead of ending the benchmark, and peak memory is this model's own
        part = run_isolated(_coding_worker, (key, params, str(dev), [str(f) for f in files], cross_devices,
                                             progress, threads), timeout_s=b["worker_timeout_s"])
        if "error" in part:
            print(f"[bench] {key}: coding measurement failed: {part['error']}", file=sys.stderr, flush=True)
            part = {"weights": _weights_of(key, b["quality"])[0], "coding": {"error": part["error"]}}
        if progress:
            print(f"[bench] {key}: training speed", flush=True)
        kwargs = dict(batch=b["train_batch"], patch=b["train_patch"], steps=b["train_steps"],
                      warmup=b["train_warmup"], bf16=b["bf16"])
        with IsolatedRunner(b["worker_timeout_s"]) as runner:  # the plain run, then each option (a new worker after a crash)
            speed = runner.run(_option_worker, (key, params["models"][key]["kwargs"], str(dev), threads, kwargs))
            if "error" in speed:
                print(f"[bench] {key}: training-speed measurement failed: {speed['error']}", file=sys.stderr,
                      flush=True)
            options = training_options(key, params, dev, speed, progress, runner)
        record = {"model": key, "weights": part["weights"], "kwargs": params["models"][key]["kwargs"],
                  "coding": part["coding"], "training": speed, "training_options": options}
        for k in ("cross_device", "online"):
            if k in part:
                record[k] = part[k]
        records.append(record)
    info = device_info()
    doc = {"device": info, "device_name": info.get("cuda_device") if dev.type == "cuda" else info.get("cpu"), "torch_device": str(dev),
           "versions": package_versions(), "cuda": torch.version.cuda, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(),
           "profile": params["profile"],
           "dataset": "files: " + ", ".join(f.name for f in files) if image_files else params["data"]["eval"][0],
           "image_sizes": [list(i.shape[:2]) for i in images],
           "protocol": {k: b[k] for k in sorted(b) if k != "models"},
           "notes": "each model is measured in worker processes of its own: coding (with cross-device decoding and "
                    "online optimisation) in one, training speed and its options in another; peak_rss_mb is that "
                    "process's high-water mark (the training worker's grows over the plain run and its options); "
                    "a measurement whose process died is recorded as an error",
           "models": records}
    slug = _device_slug(info) if dev.type == "cuda" else "cpu-" + _device_slug({"cpu": info.get("cpu")})
    path = Path(out) if out else paths.RESULTS / "bench" / f"{params['profile']}-{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    return path


#: Measurements made on other machines (e.g. a lent GPU), committed as data: same schema.
MEASURED = paths.ROOT / "data" / "bench"


#: ``python -m lic.bench_coding --model`` records kept from other runs (the two entropy-coder paths side by side)
MEASURED_CODING = MEASURED / "coding"


def load_coding(*roots: str | Path) -> list[dict]:
    """Every side-by-side coder record (``lic.bench_coding --model``) under ``data/bench/coding``: the
    files of :func:`load_all` there that hold both paths' timings (not e.g. the weights' recipe)."""
    return [d for d in load_all(*(roots or (MEASURED_CODING,))) if d.get("paths") is not None]


#: ``python -m lic.bench_natten`` records: natten's kernels against TinyLIC's PyTorch neighborhood attention
MEASURED_NATTEN = MEASURED / "natten"


def load_natten(*roots: str | Path) -> list[dict]:
    """Every natten check record (``lic.bench_natten``) under ``data/bench/natten``."""
    return [d for d in load_all(*(roots or (MEASURED_NATTEN,))) if d.get("kind") == "natten-check"]


#: ``python -m lic.bench_attention`` records: TinyLIC v3 training steps with each neighborhood-attention path
MEASURED_ATTENTION = MEASURED / "attention"


def load_attention(*roots: str | Path) -> list[dict]:
    """Every attention-path record (``lic.bench_attention``) under ``data/bench/attention``."""
    return [d for d in load_all(*(roots or (MEASURED_ATTENTION,))) if d.get("kind") == "attention-bench"]


def load_all(*roots: str | Path) -> list[dict]:
    """Every bench file of the pipeline (``results/bench``) and of other machines (``data/bench``)."""
    docs = []
    for root in roots or (paths.RESULTS / "bench", MEASURED):
        for p in sorted(Path(root).glob("*.json")):
            doc = json.loads(p.read_text())
            doc["file"] = str(p.relative_to(paths.ROOT)) if p.is_relative_to(paths.ROOT) else str(p)
            docs.append(doc)
    return docs
