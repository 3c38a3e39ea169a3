"""The launcher's loop: submit each stage once everything upstream of it is done, at most
``max_parallel`` at a time, and report each stage as it finishes.

A stage is submitted only if ``dvc status`` reports it changed at the moment its upstream is done (so
an upstream stage that re-ran to identical outputs leaves it alone, as in ``dvc repro``). A stage whose
job from an earlier ``lic launch`` is still queued or running is waited for, not submitted twice. When
a stage fails, the stages downstream of it are not run; the others go on.
"""

from __future__ import annotations

import time
from pathlib import Path

from lic.launch import executors, graph, state
from lic.launch.job import StageJob

class LaunchError(RuntimeError):
    """A job could not be submitted (the scheduler refused it); one line for the user."""


POLL_S = 2.0
#: how often a queued/running job is looked up in its scheduler (to notice one that vanished)
LOST_CHECK_S = 60.0


def default_targets(root: Path, stages: dict[str, graph.Stage]) -> list[str]:
    """No TARGET: every training stage that ``dvc status`` reports as changed."""
    training = sorted(a for a, s in stages.items() if s.is_training)
    changed = graph.changed(root, training)
    return [a for a in training if a in changed]


class Launcher:
    def __init__(self, root: str | Path, kind: str, opts: executors.Options, log=print, poll_s: float = POLL_S):
        self.root, self.kind, self.opts, self.log, self.poll_s = Path(root).resolve(), kind, opts, log, poll_s
        self.folder = state.folder(self.root)
        self._checked: dict[str, float] = {}

    def run(self, targets: list[str], dry: bool = False) -> int:
        """Launch ``targets`` (and what is changed upstream of them); 0 when every stage ended done
        or up to date, 1 when one failed."""
        stages = graph.load(self.root)
        chosen = graph.select(stages, targets) if targets else default_targets(self.root, stages)
        if not chosen:
            self.log("[launch] every training stage is up to date; nothing to launch")
            return 0
        order = graph.closure(stages, chosen)
        if dry:
            for a in order:
                self.log(f"{a}: {stages[a].cmd}")
            return 0
        executor = executors.make(self.kind, self.folder / "jobs", self.opts)
        free = executors.slots(self.kind, self.opts)
        pending = list(order)
        running: dict[str, tuple[object | None, object]] = {}  # address -> (submitit job or None, slot)
        ended: dict[str, str] = {}
        self.log(f"[launch] {len(order)} stage(s) ({len(chosen)} selected, the rest upstream); "
                 f"executor {self.kind}, {len(free) if len(free) < 10**6 else 'unlimited'} at a time; "
                 f"records in {self.folder}/stages")
        while pending or running:
            for a in list(running):
                result = self._poll(a, running[a][0])
                if result is not None:
                    free.append(running.pop(a)[1])
                    ended[a] = result
            ready, blocked = [], []
            for a in pending:
                ups = stages[a].upstream & set(order)
                if any(ended.get(u) in ("failed", "skipped") for u in ups):
                    blocked.append(a)
                elif all(u in ended for u in ups):
                    ready.append(a)
            for a in blocked:
                pending.remove(a)
                ended[a] = "skipped"
                self.log(f"[launch] {a}: not run (an upstream stage failed)")
            ready = [a for a in ready if a not in running]
            if ready and free:
                changed = graph.changed(self.root, ready)
                for a in ready:
                    if a not in changed:
                        pending.remove(a)
                        ended[a] = "up to date"
                        self.log(f"[launch] {a}: up to date")
                        continue
                    if not free:
                        break
                    rec = state.read(self.root, a)
                    if rec and state.effective(rec) in ("queued", "running", "requeued"):
                        self.log(f"[launch] {a}: job {rec.get('job_id')} from an earlier launch is "
                                 f"{rec['status']}; waiting for it")
                        pending.remove(a)
                        running[a] = (None, free.pop())
                        continue
                    slot = free.pop()
                    self._checked[a] = time.monotonic()
                    running[a] = (self._submit(executor, stages[a], slot), slot)
                    pending.remove(a)
            if pending or running:
                time.sleep(self.poll_s)
        failed = sorted(a for a, r in ended.items() if r == "failed")
        counts = {r: sum(1 for v in ended.values() if v == r) for r in sorted(set(ended.values()))}
        self.log("[launch] finished: " + ", ".join(f"{n} {r}" for r, n in counts.items()))
        for a in failed:
            self.log(f"[launch] FAILED {a}: {(state.read(self.root, a) or {}).get('error', '')}")
        return 1 if failed or "skipped" in counts else 0

    def _submit(self, executor, stage: graph.Stage, slot):
        job_fn = StageJob(str(self.root), stage, nproc=self.opts.gpus_per_job or 1,
                          gpus=slot if self.kind == "local" else None, threads=self.opts.cpus_per_job)
        executor.update_parameters(**({"name": f"lic:{stage.name}"} if self.kind == "local"
                                      else {"job_name": f"lic:{stage.name}"}))
        try:
            job = executor.submit(job_fn)
        except Exception as e:  # sbatch's refusal (bad partition, account, limits) or a missing binary
            lines = [x for x in str(e).strip().splitlines() if x.strip()]
            why = next((x for x in reversed(lines) if "error" in x or "fatal" in x), lines[-1] if lines else repr(e))
            raise LaunchError(f"{self.kind} executor could not submit {stage.address}: {why.strip()} "
                              f"(jobs submitted before keep running: lic launch --status)") from e
        log = str(job.paths.stdout).replace("%j", str(job.job_id))
        state.update(self.root, stage.address, status="queued", executor=self.kind, job_id=str(job.job_id),
                     log=log, submitted=time.time(), error=None, gpus=list(slot) if slot else None)
        self.log(f"[launch] {stage.address}: submitted as {self.kind} job {job.job_id} (log {log})")
        return job

    def _poll(self, address: str, job) -> str | None:
        """``done``/``failed`` once the stage's job has ended, else None."""
        rec = state.read(self.root, address) or {}
        finished = job is not None and job.paths.result_pickle.exists()
        st = rec.get("status", "queued")
        if not finished and st not in ("done", "failed") and time.monotonic() - self._checked.get(address, 0) > LOST_CHECK_S:
            self._checked[address] = time.monotonic()
            st = state.effective(rec)
        if st == "done":
            self.log(f"[launch] {address}: done")
            return "done"
        if st == "failed" or st == "lost" or (finished and st != "done"):
            error = rec.get("error")
            if finished and not error:  # the job died before writing its record (e.g. an import error)
                err = str(job.paths.stderr).replace("%j", str(job.job_id))
                logs = rec.get("log") + (f" and {err}" if err != rec.get("log") else "")
                error = f"stage {address}: job {job.job_id} failed outside the stage's command; log: {logs}"
            if not error:
                error = f"stage {address}: job {rec.get('job_id')} ended without finishing ({st}); log: {rec.get('log')}"
            state.update(self.root, address, status="failed", error=error)
            self.log(f"[launch] FAILED {error}")
            return "failed"
        return None
