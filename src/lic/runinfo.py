"""Provenance written next to every run's outputs: resolved params, git sha, versions, device."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from lic import paths

PACKAGES = ("lic-repro", "torch", "torchvision", "compressai", "numpy", "scikit-image", "pillow",
            "dvc", "pytorch-msssim", "bjontegaard")


def git_sha(short: bool = False) -> str | None:
    """The commit of the code that runs (suffixed ``-dirty`` when tracked files differ), or None.

    The package's own checkout is asked first (the code is what a result depends on), then the project root.
    """
    source = Path(__file__).resolve().parents[2]
    repo = source if (source / ".git").exists() else paths.ROOT
    try:
        args = ["git", "-C", str(repo), "rev-parse"] + (["--short"] if short else []) + ["HEAD"]
        sha = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info() -> dict:
    """CPU model and core count, and the CUDA device when there is one."""
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
            info["cuda_version"] = torch.version.cuda
    except ImportError:
        pass
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_info(params: dict | None = None, **extra) -> dict:
    return {"created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_sha": git_sha(), "command": " ".join(sys.argv), "params": params,
            "versions": package_versions(), "device": device_info(), **extra}


def write_run_info(path: str | Path, params: dict | None = None, **extra) -> Path:
    """Write :func:`run_info` as JSON at ``path`` (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(run_info(params, **extra), indent=1, default=str) + "\n")
    tmp.replace(path)
    return path
