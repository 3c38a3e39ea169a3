"""What ``lic launch`` has submitted and what became of it: one JSON record per stage under
``logs/launch/stages/``, written by the launcher (queued) and by the job itself (running, requeued,
done, failed), so that ``lic launch --status`` works from any shell and after the launcher has exited.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

STATUSES = ("queued", "running", "requeued", "done", "failed", "lost")


def folder(root: str | Path) -> Path:
    return Path(root) / "logs" / "launch"


@contextmanager
def dvc_lock(root: str | Path, timeout_s: float = 600):
    """One DVC command at a time among the launcher and its jobs (``logs/launch/dvc-command.lock``): DVC's own
    repository lock refuses, rather than waits for, a second command. Retries DVC's lock while a DVC
    command outside lic launch holds it."""
    path = folder(root) / "dvc-command.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield lambda: time.monotonic() < deadline
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def retry_locked(root: str | Path, fn, timeout_s: float = 600):
    """``fn()`` under :func:`dvc_lock`, retried every 2 s while DVC reports its repository locked."""
    from dvc.lock import LockError

    with dvc_lock(root, timeout_s) as in_time:
        while True:
            try:
                return fn()
            except LockError:
                if not in_time():
                    raise
                time.sleep(2)


def _file(root: str | Path, address: str) -> Path:
    return folder(root) / "stages" / (re.sub(r"[^A-Za-z0-9_.@-]+", "_", address) + ".json")


def read(root: str | Path, address: str) -> dict | None:
    p = _file(root, address)
    try:
        return json.loads(p.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def update(root: str | Path, address: str, **fields) -> dict:
    """Merge ``fields`` into the stage's record (atomically replaced)."""
    p = _file(root, address)
    p.parent.mkdir(parents=True, exist_ok=True)
    rec = read(root, address) or {"stage": address}
    rec.update(fields, updated=time.time())
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, p)
    return rec


def current_log() -> str | None:
    """The log file of the submitit job this process runs in (None outside one)."""
    try:
        import submitit

        env = submitit.JobEnvironment()
        return str(env.paths.stdout).replace("%j", str(env.job_id)).replace("%t", str(env.global_rank))
    except RuntimeError:
        return None


def alive(rec: dict) -> bool | None:
    """Whether the record's job still exists in its scheduler (None: cannot tell)."""
    job_id, executor = str(rec.get("job_id", "")), rec.get("executor")
    if not job_id:
        return None
    if executor == "local":
        try:
            os.kill(int(job_id.split("_")[0]), 0)
            return True
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:
            return True
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return False if "Invalid job id" in out.stderr else None
    return bool(out.stdout.strip())


def effective(rec: dict) -> str:
    """The record's status, ``lost`` when its job is gone from the scheduler without saying why
    (killed by the OOM killer, ``scancel``, a node failure)."""
    st = rec.get("status", "queued")
    if st in ("queued", "running", "requeued") and alive(rec) is False:
        return "lost"
    return st


def records(root: str | Path) -> list[dict]:
    d = folder(root) / "stages"
    out = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            out.append(json.loads(p.read_text()))
        except json.JSONDecodeError:
            continue
    return out


def report(root: str | Path) -> str:
    """The table ``lic launch --status`` prints: every launched stage, its job, status and log."""
    recs = records(root)
    if not recs:
        return f"no stage launched in {Path(root).resolve()} (logs/launch/ is empty)"
    lines, counts = [], {s: 0 for s in STATUSES}
    for rec in recs:
        st = effective(rec)
        counts[st] = counts.get(st, 0) + 1
        extra = rec.get("error") or rec.get("log") or ""
        lines.append(f"{st:9s} {rec.get('executor', '?'):6s} {str(rec.get('job_id', '-')):>10s}  {rec['stage']}  {extra}")
    lines.append("  ".join(f"{s}: {n}" for s, n in counts.items() if n))
    return "\n".join(lines)
