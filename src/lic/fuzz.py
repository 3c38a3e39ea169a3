"""Fuzzing the decoder: mutants of real bitstreams, each decoded in a forked child under limits.

``python -m lic.fuzz --count N`` builds one small model per family (random weights from a fixed seed,
the default profile's kwargs from params.yaml, ``update()``d), encodes a few images with each (container
versions 2 and 1), and decodes ``N`` mutants of those files. The parent imports torch once and forks a
child per mutant (a few ms, where a fresh interpreter costs seconds), so thousands of mutants run on
two cores. Each child runs with ``RLIMIT_AS`` = the parent's address space + ``--mem-gb`` and is killed
after ``--timeout`` seconds of wall time. Every ``--cli-every``-th mutant is decoded through the CLI's
own code (``lic.cli.main(["decompress", ...])``, exit status and stderr checked) instead of
:func:`lic.codec.decode`; ``--fresh-cli n`` also runs the first n through ``python -m lic.cli decompress``
in a fresh interpreter each.

Mutation categories (``valid`` = every CRC recomputed, so the file reaches the model checks and the
decoder; otherwise the container's checksums must catch it):

* ``header``: one header field set to an extreme or random value (size, quality, coder, channels, padding,
  model id, fingerprint, side information, stream layout, the latent shape of version 1), valid;
* ``swap``: two streams exchanged (within a file, or one taken from another file of the same model);
* ``truncate`` / ``extend``: the file, or one stream (valid), cut short or lengthened with random bytes;
* ``garbage``: bytes of a stream overwritten or the stream replaced by random bytes, valid or not;
* ``bitflip``: random bits anywhere in the file.

Outcomes: ``decoded`` (an image, right or wrong), ``rejected`` (a one-line user error; through the CLI:
exit 2 and one line on stderr), and the failures: ``crash`` (killed by a signal), ``hang`` (over the time
limit), ``memory`` (an allocation refused at the limit, or a peak RSS over it), ``traceback`` (any
other exception, or a multi-line message). The JSON record counts them per family, category and
validity, and lists every failure with its seed so it can be replayed (``--replay``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: family -> registry keys fuzzed (the tiny default-profile configuration of each)
FAMILIES = {
    "reference": ("minnen2018-mean",),
    "hpcm": ("li2025-hpcm-base",),
    "tcm": ("liu2023-tcm-small", "kuang2025-cgoo"),
    "tinylic": ("lu2022-tinylic-v3", "lu2022-tinylic-msr", "lu2022-tinylic-vr", "lu2022-tinylic-yuv420"),
}
CATEGORIES = ("header", "swap", "truncate", "extend", "garbage", "bitflip")
FAILURES = ("crash", "hang", "memory", "traceback")
IMAGE_SIZES = ((40, 70), (64, 64), (33, 129))


@dataclass
class Target:
    family: str
    key: str
    loaded: object        # lic.codec.LoadedModel
    checkpoint: Path      # the same model as a lic checkpoint, for the CLI path
    files: list[bytes]    # container files of the images (version 2), then the first in version 1


def build_targets(families, workdir: Path, seed: int = 0, sizes=IMAGE_SIZES) -> list[Target]:
    import torch

    from lic import codec
    from lic.config import load_params
    from lic.models import registry

    params = load_params(profile="default")
    rng = np.random.default_rng(seed)
    images = [(rng.random((h, w, 3)) * 90 + np.linspace(0, 150, w)[None, :, None]).astype(np.uint8)
              for h, w in sizes]
    targets = []
    for family in families:
        for key in FAMILIES[family]:
            torch.manual_seed(seed)
            kwargs = params["models"][key]["kwargs"]
            model = registry.build(key, **kwargs).eval()
            model.update(force=True)
            fp = codec.state_fingerprint(model.state_dict())
            loaded = codec.LoadedModel(model, key, 1, fp, {})
            ckpt = workdir / f"{key}.pt"
            torch.save({"model": key, "kwargs": kwargs, "state_dict": model.state_dict(), "quality": 1,
                        "updated": True, "fingerprint": fp}, ckpt)
            files = [codec.encode(loaded, img, estimate=False).data for img in images]
            files.append(codec.encode(loaded, images[0], estimate=False, version=1).data)
            targets.append(Target(family, key, loaded, ckpt, files))
    return targets


# ------------------------------------------------------------------------------------------- mutants

_SIZES = (0, 1, 2, 63, 64, 65, 255, 256, 257, 4095, 16384, 20000, 100000, 2 ** 20, 2 ** 31, 2 ** 40)


def mutate(target: Target, rnd: random.Random) -> tuple[str, bool, bytes]:
    """One mutant of one of ``target``'s files: (category, checksums valid, bytes)."""
    from lic.entropy.container import parse

    data = rnd.choice(target.files)
    bs = parse(data)
    category = rnd.choice(CATEGORIES)
    flat = [(g, i) for g, group in enumerate(bs.streams) for i in range(len(group))]
    if category == "header":
        _mutate_header(bs, rnd)
        return category, True, bs.to_bytes()
    if category == "swap" and flat:
        (g1, i1), (g2, i2) = rnd.choice(flat), rnd.choice(flat)
        other = parse(rnd.choice(target.files))
        if rnd.random() < 0.5 or (g1, i1) == (g2, i2):
            pool = [s for g in other.streams for s in g] or [b""]
            bs.streams[g1][i1] = rnd.choice(pool)
        else:
            bs.streams[g1][i1], bs.streams[g2][i2] = bs.streams[g2][i2], bs.streams[g1][i1]
        return category, True, bs.to_bytes()
    if category in ("truncate", "extend") and rnd.random() < 0.5 and flat:  # one stream, CRCs recomputed
        g, i = rnd.choice(flat)
        s = bs.streams[g][i]
        bs.streams[g][i] = (s[:rnd.randrange(len(s) + 1)] if category == "truncate"
                            else s + rnd.randbytes(rnd.choice((1, 3, 4, 8, 100, 5000))))
        return category, True, bs.to_bytes()
    if category == "truncate":
        return category, False, data[:rnd.randrange(len(data))]
    if category == "extend":
        return category, False, data + rnd.randbytes(rnd.choice((1, 4, 100)))
    if category == "garbage" and flat:
        g, i = rnd.choice(flat)
        s = bytearray(bs.streams[g][i])
        if rnd.random() < 0.3 or not s:
            s = bytearray(rnd.randbytes(rnd.choice((0, 4, 8, 12, 64, len(s), 4 * len(s) + 8))))
        else:
            for _ in range(rnd.choice((1, 2, 8, 64))):
                s[rnd.randrange(len(s))] = rnd.randrange(256)
        bs.streams[g][i] = bytes(s)
        if rnd.random() < 0.75:
            return category, True, bs.to_bytes()
        return category, False, _splice(data, bs)
    out = bytearray(data)  # bitflip (and the categories above on a file without streams)
    for _ in range(rnd.choice((1, 2, 4, 16))):
        out[rnd.randrange(len(out))] ^= 1 << rnd.randrange(8)
    return "bitflip", False, bytes(out)


def _splice(data: bytes, bs) -> bytes:
    """``bs``'s (changed) streams with ``data``'s checksums: version 2 keeps the old header (lengths and CRCs),
    version 1 the old file CRC."""
    fresh = bs.to_bytes()
    if bs.version == 1:
        return fresh[:-4] + data[-4:]
    return data[:len(data) - bs.stream_bytes] + fresh[len(fresh) - bs.stream_bytes:]


def _mutate_header(bs, rnd: random.Random) -> None:
    field = rnd.choice(("height", "width", "size", "quality", "coder", "channels", "model_id", "fingerprint",
                        "extra", "layout", "shape", "padding"))
    if field in ("height", "width"):
        setattr(bs, field, rnd.choice(_SIZES + (rnd.randrange(1, 5000),)))
    elif field == "size":
        bs.height, bs.width = rnd.choice(_SIZES), rnd.choice(_SIZES)
    elif field == "quality":
        bs.quality = rnd.randrange(256)
    elif field == "coder":
        bs.coder = rnd.randrange(1, 8)
    elif field == "padding":  # version 2: centred padding to a power of 2 (the flag bit and its byte)
        if bs.version == 1:
            bs.quality = rnd.randrange(256)
        else:
            bs.pad_multiple = 1 << rnd.randrange(13)
    elif field == "channels":
        bs.channels = rnd.choice((0, 1, 2, 4, 15))
    elif field == "model_id":
        from lic.entropy.container import model_id

        bs.model_id = model_id(rnd.choice(("li2025-hpcm-base", "minnen2018-mean", "lu2022-tinylic-v3"))) \
            if rnd.random() < 0.5 else rnd.randrange(1 << 16)
        if bs.version == 1:
            bs.key = rnd.choice(("li2025-hpcm-base", "minnen2018-mean", "x" * rnd.randrange(200)))
    elif field == "fingerprint":
        bs.fingerprint = rnd.randbytes(len(bs.fingerprint))
    elif field == "extra":
        bs.extra = rnd.randbytes(rnd.choice((0, 1, 2, 3, 4, 17, 5000)))
    elif field == "layout":
        groups = [list(g) for g in bs.streams]
        op = rnd.randrange(4)
        if op == 0 and groups:
            groups.pop(rnd.randrange(len(groups)))
        elif op == 1:
            groups.append([b""] * rnd.randrange(3))
        elif op == 2 and groups:
            g = rnd.randrange(len(groups))
            groups[g] = groups[g] + [rnd.randbytes(rnd.choice((0, 8, 40)))] * rnd.randrange(1, 4)
        else:
            groups = [[]] * rnd.randrange(5)
        bs.streams = groups
    elif bs.version == 1:  # shape
        bs.shape = rnd.choice(((1000, 1000), (4000, 4000), (0, 0), (), (1, 1, 1, 1, 1),
                               tuple(rnd.randrange(300) for _ in range(rnd.randrange(6)))))
    else:
        bs.height = bs.height + rnd.choice((-1, 1)) * rnd.randrange(1, 200)
        bs.height = max(bs.height, 0)


# ------------------------------------------------------------------------------------------- running

def run_one(target: Target, data: bytes, *, cli: bool, timeout_s: float, mem_bytes: int, max_pixels: int,
            workdir: Path) -> dict:
    """Decode ``data`` in a forked child with the limits; return its outcome record."""
    rfd, wfd = os.pipe()
    base_vm = _vm_bytes()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(rfd)
        import faulthandler
        import gc

        gc.disable()
        faulthandler.disable()  # a crash is reported by the parent, not dumped on the terminal
        status = 0
        try:
            resource.setrlimit(resource.RLIMIT_AS, (base_vm + mem_bytes, base_vm + mem_bytes))
            result = _child(target, data, cli=cli, max_pixels=max_pixels, workdir=workdir)
            os.write(wfd, json.dumps(result).encode()[:60000])
        except BaseException:  # noqa: BLE001 - report, whatever it is
            status = 3
        finally:
            os._exit(status)
    os.close(wfd)
    status, usage, killed = _wait(pid, timeout_s)
    wall = time.perf_counter() - t0
    with os.fdopen(rfd, "rb") as f:
        raw = f.read()
    rss = usage.ru_maxrss * 1024 if usage is not None else 0
    if killed:
        return {"outcome": "hang", "wall_s": wall, "peak_rss_bytes": rss}
    if os.WIFSIGNALED(status):
        return {"outcome": "crash", "signal": os.WTERMSIG(status), "wall_s": wall, "peak_rss_bytes": rss}
    try:
        result = json.loads(raw)
    except ValueError:
        return {"outcome": "crash", "exit": os.WEXITSTATUS(status), "wall_s": wall, "peak_rss_bytes": rss}
    result.update(wall_s=wall, peak_rss_bytes=rss)
    if result["outcome"] != "traceback" and rss > mem_bytes:
        result["outcome"] = "memory"
    return result


def run_fresh_cli(target: Target, data: bytes, *, timeout_s: float, workdir: Path) -> dict:
    """Decode ``data`` with ``lic decompress`` in a fresh interpreter (``python -m lic.cli``), as a user runs it:
    exit 0, or exit 2 with one line on stderr and no file left; anything else is a failure."""
    import subprocess

    path, out = workdir / "fresh.lic", workdir / "fresh.png"
    path.write_bytes(data)
    before = set(workdir.iterdir())
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-m", "lic.cli", "decompress", str(path), str(out), "--checkpoint",
                            str(target.checkpoint)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"outcome": "hang", "wall_s": time.perf_counter() - t0, "peak_rss_bytes": 0, "path": "fresh-cli"}
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the largest child so far
    leftovers = sorted(p.name for p in set(workdir.iterdir()) - before - ({out} if r.returncode == 0 else set()))
    out.unlink(missing_ok=True)
    path.unlink()
    lines = r.stderr.strip().splitlines()
    if r.returncode < 0:
        outcome = "crash"
    elif r.returncode == 0 and not leftovers:
        outcome = "decoded"
    elif r.returncode == 2 and len(lines) == 1 and not leftovers:
        outcome = "rejected"
    else:
        outcome = "traceback"
    return {"outcome": outcome, "exit": r.returncode, "message": r.stderr[-3000:], "leftovers": leftovers,
            "wall_s": wall, "peak_rss_bytes": rss, "path": "fresh-cli"}


def _child(target: Target, data: bytes, *, cli: bool, max_pixels: int, workdir: Path) -> dict:
    from lic import cli as lic_cli
    from lic import codec

    user_errors = lic_cli._user_errors()
    if cli:
        path = workdir / f"mutant-{os.getpid()}.lic"
        out = workdir / f"out-{os.getpid()}.png"
        path.write_bytes(data)
        err = io.StringIO()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = io.StringIO(), err
        try:
            code = lic_cli.main(["decompress", str(path), str(out), "--checkpoint", str(target.checkpoint)])
        except BaseException:  # noqa: BLE001 - main let it through: a traceback for the user
            sys.stdout, sys.stderr = saved
            return {"outcome": "traceback", "message": traceback.format_exc()[-3000:], "path": "cli"}
        finally:
            sys.stdout, sys.stderr = saved
        text = err.getvalue()
        leftovers = [p.name for p in workdir.iterdir() if p.name.startswith((f".{out.name}", f"out-{os.getpid()}"))
                     and (code != 0 or p != out)]
        path.unlink()
        out.unlink(missing_ok=True)
        if code == 0:
            return {"outcome": "decoded", "path": "cli", "leftovers": leftovers}
        lines = text.strip().splitlines()
        ok = code == 2 and len(lines) == 1 and not leftovers
        return {"outcome": "rejected" if ok else "traceback", "message": text[-3000:], "exit": code,
                "path": "cli", "leftovers": leftovers}
    try:
        codec.decode(target.loaded, data, max_pixels=max_pixels)
    except user_errors as e:
        msg = str(e)
        if "allocate" in msg or "MemoryError" in msg:
            return {"outcome": "memory", "message": msg[:500], "path": "api"}
        return {"outcome": "rejected" if "\n" not in msg else "traceback", "message": msg[:500], "path": "api",
                "error": type(e).__name__}
    except MemoryError as e:
        return {"outcome": "memory", "message": repr(e)[:500], "path": "api"}
    except BaseException:  # noqa: BLE001 - what the CLI would show as a traceback
        return {"outcome": "traceback", "message": traceback.format_exc()[-3000:], "path": "api"}
    return {"outcome": "decoded", "path": "api"}


def _wait(pid: int, timeout_s: float):
    """(status, rusage, killed): wait for ``pid`` at most ``timeout_s`` (a pidfd: no polling), then kill it."""
    import select

    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
    finally:
        os.close(fd)
    killed = not ready
    if killed:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    return status, usage, killed


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def fuzz(count: int, *, families=tuple(FAMILIES), seed: int = 0, timeout_s: float = 30.0, mem_gb: float = 3.0,
         max_pixels: int = 2 ** 20, cli_every: int = 10, jobs: int = 1, fresh_cli: int = 0, sizes=IMAGE_SIZES,
         log=None) -> dict:
    """Run ``count`` mutants spread over ``families``; return the JSON record (see the module docstring).
    ``jobs`` > 1: that many forked shard workers, each running every ``jobs``-th mutant. ``fresh_cli``: the
    first that many mutants are also decoded by ``lic decompress`` in a fresh interpreter (seconds each).
    ``sizes``: the (h, w) of the images encoded (each in version 2; the first also in version 1)."""
    import torch

    torch.set_num_threads(1)  # the children inherit no thread pool; one core each
    workdir = Path(tempfile.mkdtemp(prefix="lic-fuzz-"))
    t0 = time.time()
    targets = build_targets(families, workdir, seed, sizes)
    rnd = random.Random(seed)
    plan = [rnd.randrange(1 << 62) for _ in range(count)]
    import gc

    gc.collect()
    gc.freeze()  # the children's collector skips the parent's objects: far fewer copy-on-write page faults  # mutant n's seed: the same for any jobs
    limits = dict(timeout_s=timeout_s, mem_bytes=int(mem_gb * 2 ** 30), max_pixels=max_pixels, workdir=workdir)
    shards = []
    for j in range(1, jobs):
        out = workdir / f"shard-{j}.json"
        pid = os.fork()
        if pid == 0:
            try:
                out.write_text(json.dumps(_shard(targets, plan, j, jobs, cli_every, limits, None)))
            finally:
                os._exit(0)
        shards.append((pid, out))
    parts = [_shard(targets, plan, 0, jobs, cli_every, limits, log)]
    for pid, out in shards:
        os.waitpid(pid, 0)
        parts.append(json.loads(out.read_text()))
    counts: Counter = Counter()
    failures, slowest, peak = [], 0.0, 0
    for part in parts:
        counts.update({tuple(k.split("|")): v for k, v in part["counts"].items()})
        failures += part["failures"]
        slowest, peak = max(slowest, part["slowest"]), max(peak, part["peak"])
    fresh: Counter = Counter()
    for n in range(min(fresh_cli, count)):
        target = targets[n % len(targets)]
        category, valid, data = mutate(target, random.Random(plan[n]))
        r = run_fresh_cli(target, data, timeout_s=max(timeout_s, 120), workdir=workdir)
        fresh[r["outcome"]] += 1
        if r["outcome"] in FAILURES:
            failures.append({"key": target.key, "category": category, "valid": valid, "mutant": n,
                             "mutant_seed": plan[n], **r})
    for p in workdir.iterdir():
        p.unlink()
    workdir.rmdir()
    rec = _record(counts, failures, count, seed, timeout_s, mem_gb, max_pixels, cli_every, families, targets,
                  slowest, peak, time.time() - t0, jobs)
    rec["fresh_cli"] = {"mutants": min(fresh_cli, count), "outcomes": dict(fresh)}
    return rec


def _shard(targets, plan, shard: int, jobs: int, cli_every: int, limits: dict, log) -> dict:
    counts: Counter = Counter()
    failures, slowest, peak = [], 0.0, 0
    for n in range(shard, len(plan), jobs):
        target = targets[n % len(targets)]
        category, valid, data = mutate(target, random.Random(plan[n]))
        cli = cli_every > 0 and n % cli_every == 0
        r = run_one(target, data, cli=cli, **limits)
        outcome = r["outcome"]
        counts["|".join((target.family, category, "valid" if valid else "invalid", "cli" if cli else "api",
                         outcome))] += 1
        slowest, peak = max(slowest, r["wall_s"]), max(peak, r["peak_rss_bytes"])
        if outcome in FAILURES:
            failures.append({"key": target.key, "category": category, "valid": valid, "mutant": n,
                             "mutant_seed": plan[n], "cli": cli, **{k: v for k, v in r.items() if k != "outcome"},
                             "outcome": outcome})
        if log and (n // jobs + 1) % 250 == 0:
            log(f"[fuzz] ~{n + 1}/{len(plan)} mutants, {len(failures)} failures in this shard")
    return {"counts": dict(counts), "failures": failures, "slowest": slowest, "peak": peak}


def _record(counts, failures, count, seed, timeout_s, mem_gb, max_pixels, cli_every, families, targets,
            slowest, peak, elapsed, jobs) -> dict:
    import platform

    def total(pred) -> int:
        return sum(v for k, v in counts.items() if pred(*k))

    outcomes = ("decoded", "rejected", *FAILURES)
    return {
        "mutants": count,
        "valid_checksum": total(lambda f, c, v, p, o: v == "valid"),
        "through_cli": total(lambda f, c, v, p, o: p == "cli"),
        "outcomes": {o: total(lambda f, c, v, p, oo, o=o: oo == o) for o in outcomes},
        "by_family": {fam: {o: total(lambda f, c, v, p, oo, fam=fam, o=o: f == fam and oo == o) for o in outcomes}
                      for fam in families},
        "by_category": {f"{cat}/{val}": {o: total(lambda f, c, v, p, oo, cat=cat, val=val, o=o:
                                                  c == cat and v == val and oo == o) for o in outcomes}
                        for cat in CATEGORIES for val in ("valid", "invalid")
                        if total(lambda f, c, v, p, oo, cat=cat, val=val: c == cat and v == val)},
        "models": [t.key for t in targets],
        "failures": failures[:200],
        "slowest_decode_s": round(slowest, 3),
        "peak_rss_bytes": peak,
        "limits": {"timeout_s": timeout_s, "mem_gb_above_parent": mem_gb, "max_pixels": max_pixels},
        "seed": seed, "cli_every": cli_every, "jobs": jobs, "elapsed_s": round(elapsed, 1),
        "host": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                 "cpus": os.cpu_count(), "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lic.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--family", action="append", choices=sorted(FAMILIES), help="default: every family")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=30.0, help="wall seconds per mutant (a hang beyond)")
    p.add_argument("--mem-gb", type=float, default=3.0, help="address space a child may add (RLIMIT_AS)")
    p.add_argument("--max-pixels", type=int, default=2 ** 20, help="the decoder's image-size cap")
    p.add_argument("--cli-every", type=int, default=10, help="every n-th mutant through `lic decompress`")
    p.add_argument("--jobs", type=int, default=1, help="shard workers (forked), one core each")
    p.add_argument("--fresh-cli", type=int, default=0,
                   help="also decode the first n mutants with `python -m lic.cli decompress` (a fresh process each)")
    p.add_argument("--out", type=Path, help="write the JSON record here")
    args = p.parse_args(argv)
    from lic.quiet import ignore_known_warnings

    ignore_known_warnings()
    rec = fuzz(args.count, families=tuple(args.family or FAMILIES), seed=args.seed, timeout_s=args.timeout,
               mem_gb=args.mem_gb, max_pixels=args.max_pixels, cli_every=args.cli_every, jobs=args.jobs, fresh_cli=args.fresh_cli,
               log=lambda m: print(m, file=sys.stderr, flush=True))
    text = json.dumps(rec, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(json.dumps({k: rec[k] for k in ("mutants", "valid_checksum", "through_cli", "outcomes", "fresh_cli")}))
    return 1 if rec["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
