"""The trainer shared by every model: ``lic train KEY --quality Q``.

Loss ``λ·255²·MSE + bpp`` (or ``λ·(1 − MS-SSIM) + bpp`` for MS-SSIM models), Adam, a second Adam
for the EntropyBottleneck quantiles (``aux_loss``), step-based lr milestones, gradient clipping,
random crops and flips. Step ``s`` always sees the same crops (they are drawn from
``(seed, rank, s)``), and every checkpoint holds the optimizer, scheduler, step counter and RNG
states, so a killed run resumes from its last checkpoint and continues as if never interrupted.

Output folder ``checkpoints/<key>/q<quality>/``::

    last.pt         resumable state, every ``checkpoint_every`` steps (never written on NaN)
    model.pt        the final record {model, kwargs, quality, state_dict, params, git_sha, fingerprint}
                    after ``update()``: what evaluation and ``lic compress`` load; TinyLIC's also holds
                    ``attention_impl`` {option, resolved}: the neighborhood-attention path that trained it
    run.json        resolved params, git sha, versions, device
    dvclive/        loss curves

Multi-GPU: ``torchrun --nproc_per_node K -m lic.cli train ...`` (DistributedDataParallel; gloo on CPU).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import signal
import threading
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from lic import checkpoints, paths, placeholder
from lic.codec import state_fingerprint
from lic.data.prepare import load_manifest
from lic.layers.neighborhood_attention import attention_record
from lic.models import registry
from lic.runinfo import git_sha, write_run_info


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class Interrupted(RuntimeError):
    """The run was asked to stop (SIGUSR1) and saved ``last.pt`` first; running it again resumes."""


#: SIGUSR1 asks a run to stop at the end of its current step after saving ``last.pt`` (``lic launch``
#: sends it when SLURM announces a time limit or preemption; the requeued job resumes from there)
STOP_SIGNAL = signal.SIGUSR1
_stop = threading.Event()


def _request_stop(signum, frame) -> None:
    _stop.set()


def _watch_stop_signal() -> None:
    _stop.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(STOP_SIGNAL, _request_stop)


def _stop_requested(world: int, device: torch.device) -> bool:
    """Whether any rank was asked to stop (all ranks agree, so they stop at the same step)."""
    if world == 1:
        return _stop.is_set()
    flag = torch.tensor([1.0 if _stop.is_set() else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


BASE = "base"
#: keys of the train section that list what to train rather than how
NOT_RECIPE = ("qualities", "active_qualities", "reference_models", "hpcm_models", "tinylic_models",
              "tinylic_vr_models", "tinylic_msr_models", "tcm_models", "cgoo_models")


def run_dir(key: str, quality: int | str) -> Path:
    """``checkpoints/<key>/q<quality>``, or ``checkpoints/<key>/base`` for the shared initialisation."""
    return paths.CHECKPOINTS / key / (BASE if quality == BASE else f"q{quality}")


# ----------------------------------------------------------------------------------------- recipe
def recipe(params: dict, key: str, quality: int | str) -> dict:
    """Everything that defines a training run: train section + the model's overrides, λ, kwargs.

    ``quality="base"`` is the shared initialisation every quality starts from: ``train.base_steps``
    steps at the λ of ``train.base_quality`` (0 steps: the seeded random initialisation itself, i.e.
    every quality trains from scratch, as in the papers).
    """
    try:
        model_params = params["models"][key]
    except KeyError:
        raise KeyError(f"params.yaml has no models.{key} section") from None
    lambdas = model_params["lambdas"]
    base = quality == BASE
    if base:
        quality = params["train"]["base_quality"]
    if not 1 <= quality <= len(lambdas):
        raise ValueError(f"{key}: quality {quality} out of range 1..{len(lambdas)} (models.{key}.lambdas)")
    train = {k: v for k, v in params["train"].items() if k not in NOT_RECIPE}
    overrides = dict(model_params["train"])
    init_from = overrides.pop("init_from", None)  # a trained model whose weights this one builds on (MSR)
    base_from = overrides.pop("base_from", None)  # an ablation variant: its qualities start from this model's base
    unknown = set(overrides) - set(train)
    if unknown:
        raise KeyError(f"models.{key}.train overrides unknown train keys {sorted(unknown)}")
    train.update(overrides)
    if base:
        train.update(steps=train["base_steps"], milestones=[], lr_gammas=[], stages={})
    r = {"model": key, "quality": BASE if base else quality, "metric": model_params["metric"], "lmbda": lambdas[quality - 1],
         "kwargs": model_params["kwargs"], "train": train, "train_dataset": params["data"]["train"]}
    if init_from is not None:
        r["init_from"] = init_from
    if base_from is not None and not base:
        r["base_from"] = base_from
    return json.loads(json.dumps(r))  # plain JSON types: the same hash whether read from params or a recipe file


def recipe_hash(r: dict) -> str:
    return hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- data
class StepCrops(Dataset):
    """Item ``s`` is the batch of step ``s``: random crops + flips drawn from ``(seed, rank, s)``."""

    def __init__(self, files: list[Path], batch_size: int, patch: int, seed: int, rank: int) -> None:
        self.files, self.batch_size, self.patch, self.seed, self.rank = files, batch_size, patch, seed, rank
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return 2**62

    def _image(self, i: int) -> np.ndarray:
        if i not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            with Image.open(self.files[i]) as im:
                self._cache[i] = np.asarray(im.convert("RGB"))
        return self._cache[i]

    def __getitem__(self, step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.rank, step])
        p = self.patch
        out = np.empty((self.batch_size, p, p, 3), dtype=np.uint8)
        for b in range(self.batch_size):
            img = self._image(int(rng.integers(len(self.files))))
            h, w = img.shape[:2]
            if h < p or w < p:  # small images are edge-padded up to the patch
                img = np.pad(img, ((0, max(0, p - h)), (0, max(0, p - w)), (0, 0)), mode="edge")
                h, w = img.shape[:2]
            y, x = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
            crop = img[y:y + p, x:x + p]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            if rng.random() < 0.5:
                crop = crop[::-1]
            out[b] = crop
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)


# ------------------------------------------------------------------------------------------- loss
class RateDistortionLoss(nn.Module):
    """``λ·255²·MSE + bpp`` (metric "mse") or ``λ·(1 − MS-SSIM) + bpp`` (metric "ms-ssim")."""

    def __init__(self, lmbda: float, metric: str = "mse") -> None:
        super().__init__()
        if metric not in ("mse", "ms-ssim"):
            raise ValueError(f"unknown metric {metric!r}")
        self.lmbda, self.metric = lmbda, metric

    def forward(self, out: dict, x: torch.Tensor) -> dict:
        n, _, h, w = x.shape
        bpp = sum(torch.log(lk).sum() for lk in out["likelihoods"].values()) / (-math.log(2) * n * h * w)
        mse = torch.mean((out["x_hat"] - x) ** 2)
        if self.metric == "mse":
            distortion = 255**2 * mse
        else:
            from pytorch_msssim import ms_ssim

            distortion = 1 - ms_ssim(out["x_hat"].clamp(0, 1), x, data_range=1.0)
        return {"loss": self.lmbda * distortion + bpp, "bpp": bpp, "mse": mse}


def split_parameters(model: nn.Module) -> tuple[list, list]:
    """Main parameters and the EntropyBottleneck quantiles (trained by the auxiliary optimizer)."""
    main, aux = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (aux if name.endswith(".quantiles") else main).append(p)
    return main, aux


def stage_plan(model: nn.Module, stages: dict) -> list[tuple[str, int, int]]:
    """``[(stage, first_step, end_step), ...]`` of ``train.stages`` ({stage: steps}, in the model's order),
    keeping only the stages that have something to train (``model.training_stages``)."""
    if not stages:
        return []
    if not hasattr(model, "stage_setup"):
        raise ValueError(f"train.stages is set but {type(model).__name__} has no stage_setup()")
    trainable = list(model.training_stages)
    unknown = set(stages) - set(getattr(model, "all_stages", trainable))
    if unknown:
        raise ValueError(f"unknown training stages {sorted(unknown)}; the model has {trainable}")
    plan, step = [], 0
    for name in trainable:
        n = int(stages.get(name, 0))
        if n > 0:
            plan.append((name, step, step + n))
            step += n
    return plan


def stage_at(plan: list[tuple[str, int, int]], step: int) -> str | None:
    for name, first, end in plan:
        if first <= step < end:
            return name
    return plan[-1][0] if plan else None


def lr_factor(milestones: list[int], gammas: list[float], gamma: float):
    """The step-based schedule: lr = lr₀ · Π gᵢ over the milestones mᵢ ≤ step, with gᵢ = ``gammas[i]``
    (or ``gamma`` for every milestone when ``gammas`` is empty), like MultiStepLR with one factor per
    milestone (HPCM: 1e-4 → 2e-5 → 5e-6 → 1e-6 at 1.6 M / 1.8 M / 1.9 M steps)."""
    if gammas and len(gammas) != len(milestones):
        raise ValueError(f"train.lr_gammas has {len(gammas)} factors for {len(milestones)} milestones")
    factors = list(gammas) if gammas else [gamma] * len(milestones)
    pairs = sorted(zip(milestones, factors))

    def factor(step: int) -> float:
        f = 1.0
        for m, g in pairs:
            if step >= m:
                f *= g
        return f

    return factor


# ------------------------------------------------------------------------------------ checkpoints
def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, then renamed over ``path``: never a half-written checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict:
    """Every RNG's state as tensors and plain data (numpy's keys as a list: read with weights_only=True
    and no allow-list, :mod:`lic.checkpoints`)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, cached),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(s: dict) -> None:
    random.setstate(s["python"])
    name, keys, pos, has_gauss, cached = s["numpy"]  # keys: a list, or an ndarray in older last.pt files
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------ train
def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(key: str, quality: int, params: dict | None, out_dir: Path | None = None, *, progress: bool = True,
          stop_after: int | None = None, resolved: dict | None = None) -> Path:
    """Train (or resume) ``key`` at ``quality``; return the path of the final ``model.pt``.

    The recipe is ``recipe(params, key, quality)``, or ``resolved`` when given (a recipe file written
    by :mod:`lic.recipes`, which is what the DVC stages read). ``stop_after``: return after that many
    steps of this call (tests simulate a killed run).
    """
    r = copy.deepcopy(resolved) if resolved is not None else recipe(params, key, quality)
    if (r["model"], r["quality"]) != (key, quality):
        raise ValueError(f"the recipe is for {r['model']} q{r['quality']}, not {key} q{quality}")
    t = r["train"]
    out_dir = Path(out_dir or run_dir(key, quality))
    rank, world = _dist_info()
    init = None
    if quality != BASE:  # every quality starts from the shared initialisation (see recipe)
        init_path = run_dir(key, BASE) / "model.pt"
        if not init_path.exists():
            raise FileNotFoundError(f"{init_path} missing: run `lic train {key} --base` (the stage "
                                    f"train_reference_base@{key}) first")
        init = checkpoints.load(init_path)
        r["init_fingerprint"] = init["fingerprint"].hex()
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    device = torch.device(t["device"] if t["device"] != "cuda" or torch.cuda.is_available() else "cpu")
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(t["seed"] + rank)

    model = registry.build(key, **r["kwargs"]).to(device)
    if init is not None:
        model.load_state_dict(init["state_dict"])
    if r.get("base_from"):
        r["base_from_fingerprint"], r["base_from_tensors"] = _load_shared(model, r["base_from"])
    if r.get("init_from"):
        # e.g. TinyLIC + MSR: the trained TinyLIC of the same quality, under the model's own filter
        src = run_dir(r["init_from"], quality) / "model.pt"
        if not src.exists():
            raise FileNotFoundError(f"{src} missing: {key} builds on {r['init_from']}; train it first")
        if placeholder.is_placeholder(src):
            raise FileNotFoundError(f"{src} is a placeholder ({r['init_from']} q{quality} is not trained by this profile)")
        base_rec = checkpoints.load(src)
        model.load_base_state_dict(base_rec["state_dict"])
        r["init_from_fingerprint"] = base_rec["fingerprint"].hex()
    # Staged training (CGOO: ddt -> msc -> codebook_warmup -> codebook): train.stages = {stage: steps}; each
    # stage trains what model.stage_setup(stage) unfreezes, with its own loss and a fresh optimizer.
    plan = stage_plan(model, t["stages"])
    if plan:
        if world > 1:
            raise NotImplementedError("staged training (train.stages) runs on one process")
        t["steps"] = plan[-1][2]

    def optimisers(stage: str | None):
        loss_fn = model.stage_setup(stage, r["lmbda"])[1] if stage else None
        main, aux = split_parameters(model)
        opt = torch.optim.Adam(main, lr=t["lr"])
        aux_opt = torch.optim.Adam(aux, lr=t["aux_lr"]) if aux else None
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(t["milestones"], t["lr_gammas"], t["lr_gamma"]))
        return main, aux, opt, aux_opt, sched, loss_fn

    criterion = RateDistortionLoss(r["lmbda"], r["metric"])
    rhash = recipe_hash(r)
    stage = None

    start, resume_rng = 0, None
    last = out_dir / "last.pt"
    if last.exists() and placeholder.is_placeholder(last):  # a profile that did not train this quality
        last.unlink()
    if last.exists():
        state = checkpoints.load(last, map_location=device, numpy_rng=True)
        if state.get("recipe_hash") == rhash:
            model.load_state_dict(state["state_dict"])
            start = state["step"]
            stage = stage_at(plan, start)
            main_params, aux_params, optimizer, aux_optimizer, scheduler, stage_loss = optimisers(stage)
            optimizer.load_state_dict(state["optimizer"])
            if aux_optimizer is not None:
                aux_optimizer.load_state_dict(state["aux_optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            resume_rng = state["rng"][rank] if isinstance(state["rng"], list) else state["rng"]
            if rank == 0:
                print(f"[train] {key} q{quality}: resumed from step {start} ({last})")
        elif rank == 0:
            stale = last.with_name(f"last.{state.get('recipe_hash', 'old')}.pt")
            os.replace(last, stale)
            print(f"[train] {key} q{quality}: the recipe changed; previous state kept as {stale.name}, starting over")

    if start == 0:
        stage = stage_at(plan, 0)
        main_params, aux_params, optimizer, aux_optimizer, scheduler, stage_loss = optimisers(stage)
    net: nn.Module = model
    if world > 1:
        ignore = [n for n, _ in model.named_parameters() if n.endswith(".quantiles")]
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignore)
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    files = load_manifest(r["train_dataset"])
    loader = DataLoader(StepCrops(files, t["batch_size"] // world, t["patch_size"], t["seed"], rank),
                        batch_size=None, sampler=range(start, t["steps"]), num_workers=t["num_workers"],
                        pin_memory=device.type == "cuda")

    live = None
    if rank == 0:
        write_run_info(out_dir / "run.json", params=r, world_size=world, recipe_hash=rhash)
        from dvclive import Live

        live = Live(str(out_dir / "dvclive"), resume=start > 0, save_dvc_exp=False, dvcyaml=None,
                    report=None)

    from tqdm.auto import tqdm

    bar = tqdm(total=t["steps"], initial=start, desc=f"{key} q{quality}", disable=not progress or rank != 0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if t.get("bf16") and device.type == "cuda" else nullcontext()
    step = start
    _watch_stop_signal()
    net.train()
    batches = iter(loader)  # creating the iterator draws from torch's RNG: restore the state after it
    if resume_rng is not None:
        _set_rng_state(resume_rng)
    variable_rate = hasattr(model, "sample_lambda")  # ScalingNet: one λ per step, drawn from (seed, rank, step)
    for batch in batches:
        if plan and stage_at(plan, step) != stage:  # the next training stage: its own parameters and loss
            stage = stage_at(plan, step)
            main_params, aux_params, optimizer, aux_optimizer, scheduler, stage_loss = optimisers(stage)
            net.train()
        x = batch.to(device, non_blocking=True)
        if hasattr(model, "from_rgb"):  # Y / YUV 4:2:0 models code their own colour representation
            x = model.from_rgb(x)
        if variable_rate:
            gen = torch.Generator().manual_seed(t["seed"] * 1_000_003 + rank * 7919 + step)
            criterion.lmbda = model.sample_lambda(gen)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            out = net(x)
        if stage_loss is not None:  # the stage's loss sees the whole forward output (e.g. codebook terms)
            losses = stage_loss(out, x)
        else:
            losses = criterion({"x_hat": out["x_hat"].float(), "likelihoods": out["likelihoods"]}, x)
        if not torch.isfinite(losses["loss"]):
            bar.close()
            kept = f"the last good checkpoint is {last} (step {_saved_step(last)})" if last.exists() else \
                "no checkpoint was written yet"
            raise TrainingDiverged(f"{key} q{quality}: loss is {losses['loss'].item()} at step {step}; "
                                   f"training stopped, {kept}. Lower train.lr or check the data.")
        losses["loss"].backward()
        if t["clip_max_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(main_params, t["clip_max_norm"])
        optimizer.step()
        scheduler.step()
        if aux_optimizer is not None:
            aux_optimizer.zero_grad(set_to_none=True)
            aux_loss = model.aux_loss()
            grads = torch.autograd.grad(aux_loss, aux_params)
            for p, g in zip(aux_params, grads):
                if world > 1:
                    dist.all_reduce(g)
                    g /= world
                p.grad = g
            aux_optimizer.step()
        step += 1
        bar.update(1)
        if live is not None and (step % t["log_every"] == 0 or step == t["steps"]):
            live.step = step
            for name in ("loss", "bpp", "mse"):
                live.log_metric(f"train/{name}", losses[name].item())
            live.log_metric("train/lr", scheduler.get_last_lr()[0])
            live.make_summary()
        saved = step % t["checkpoint_every"] == 0 or step == t["steps"]
        if saved:
            _checkpoint(last, model, optimizer, aux_optimizer, scheduler, step, rhash, rank, world, stage)
        if _stop_requested(world, device) and step < t["steps"]:
            if not saved:
                _checkpoint(last, model, optimizer, aux_optimizer, scheduler, step, rhash, rank, world, stage)
            bar.close()
            if live is not None:
                live.make_summary()
            raise Interrupted(f"{key} q{quality}: stopped at step {step} of {t['steps']} ({signal.Signals(STOP_SIGNAL).name}); "
                              f"{last} holds that step: run the same command again to resume")
        if stop_after is not None and step - start >= stop_after:
            bar.close()
            return last
    bar.close()
    if step == 0:
        # a 0-step schedule (the seeded initialisation itself): the resumable state still marks it done
        _checkpoint(last, model, optimizer, aux_optimizer, scheduler, step, rhash, rank, world, stage)
    if live is not None:
        live.end()

    final = out_dir / "model.pt"
    if rank == 0:
        model.eval()
        model.update(force=True)
        state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        record = {"model": key, "kwargs": r["kwargs"], "quality": quality, "state_dict": state_dict,
                  "params": r, "git_sha": git_sha(), "updated": True,
                  "fingerprint": state_fingerprint(state_dict), "steps": step, "world_size": world}
        attention = attention_record(model)  # TinyLIC: the neighborhood-attention path that trained it
        if attention is not None:
            record["attention_impl"] = attention
        atomic_save(record, final)
    if world > 1:
        dist.barrier()
    return final


def _load_shared(model: nn.Module, main_key: str) -> tuple[str, str]:
    """An ablation variant (``models.<key>.train.base_from``) starts each quality from the shared
    initialisation of its paper's main model: every tensor of ``checkpoints/<main_key>/base/model.pt``
    whose name and shape the variant has too replaces the variant's own; the rest (the ablated part)
    keeps the variant's own base. Returns (the main base's fingerprint, "loaded/total" tensors)."""
    src = run_dir(main_key, BASE) / "model.pt"
    if not src.exists():
        raise FileNotFoundError(f"{src} missing: this variant starts from {main_key}'s base; "
                                f"run `lic train {main_key} --base` first")
    rec = checkpoints.load(src)
    own = model.state_dict()
    shared = {k: v for k, v in rec["state_dict"].items() if k in own and own[k].shape == v.shape}
    with torch.no_grad():  # in place: CompressAI's load_state_dict wants every entropy-model buffer
        for k, v in shared.items():
            own[k].copy_(v)
    return rec["fingerprint"].hex(), f"{len(shared)}/{len(own)}"


def _saved_step(path: Path) -> int | str:
    try:
        return checkpoints.load(path, numpy_rng=True)["step"]
    except Exception:
        return "unknown"


def _checkpoint(path, model, optimizer, aux_optimizer, scheduler, step, rhash, rank, world, stage=None) -> None:
    rng = _rng_state()
    if world > 1:  # every rank's RNG state, so each resumes its own stream
        gathered = [None] * world
        dist.all_gather_object(gathered, rng)
        rng = gathered
    if rank == 0:
        atomic_save({"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "aux_optimizer": aux_optimizer.state_dict() if aux_optimizer else None,
                      "scheduler": scheduler.state_dict(), "step": step, "rng": rng, "stage": stage,
                      "recipe_hash": rhash}, path)
    if world > 1:
        dist.barrier()


def is_active(params: dict, quality: int | str) -> bool:
    """Whether the profile trains ``quality`` (``train.<profile>.active_qualities``; the base always)."""
    return quality == BASE or quality in params["train"]["active_qualities"]


def main(key: str, quality: int, params: dict | None, progress: bool = True, resolved: dict | None = None,
         out_dir: Path | None = None) -> Path:
    """Entry point of ``lic train``: sets up torch.distributed when launched by torchrun.

    ``resolved``: a recipe file's content (:mod:`lic.recipes`) instead of ``params``. ``out_dir``: the run's
    folder instead of :func:`run_dir` (a run outside the pipeline, e.g. data/bench/coding's weights).
    """
    if resolved is not None:
        if not resolved["active"]:
            return placeholder.skip(key, quality, resolved["profile"], resolved["active_qualities"], out_dir)
    elif not is_active(params, quality):
        return placeholder.skip(key, quality, params["profile"], params["train"]["active_qualities"], out_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        return train(key, quality, params, out_dir, progress=progress,
                     resolved=resolved["recipe"] if resolved is not None else None)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
