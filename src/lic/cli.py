"""The ``lic`` command line. Errors the user can act on print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_params(args: argparse.Namespace) -> int:
    from lic.config import load_params

    print(json.dumps(load_params(profile=args.profile), indent=1))
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from lic.data.registry import DATASETS

    for ds in DATASETS.values():
        where = "network" if ds.needs_network else "package"
        print(f"{ds.name:30s} {where:8s} {ds.description}")
    return 0


def _cmd_data_prepare(args: argparse.Namespace) -> int:
    from lic.config import load_params
    from lic.data.prepare import stage

    params = load_params(profile=args.profile)
    manifest = stage(args.name, params, progress=not args.quiet)
    state = f"{manifest['count']} images" if manifest.get("used", True) else manifest["note"]
    print(f"[data] {args.name}: {state}")
    return 0


def _cmd_launch(args: argparse.Namespace) -> int:
    from lic import paths
    from lic.launch import executors, state

    root = paths.ROOT
    if args.status:
        print(state.report(root))
        return 0
    if args.plan:
        from lic.config import load_params
        from lic.launch import graph, plan

        stages = graph.load(root)
        chosen = graph.select(stages, args.targets) if args.targets else sorted(stages)
        params = load_params(profile=args.profile)
        rows, total = plan.plan([stages[a] for a in chosen], params)
        if not rows:
            raise ValueError(f"no training stage among {args.targets}: --plan prices training stages")
        print(plan.render(rows, total, params["profile"]))
        return 0
    if args.profile:
        raise ValueError("--profile only applies to --plan (launch the paper profile after `dvc exp run -S "
                         "profile=paper --dry` or with profile: paper in params.yaml)")
    for name in ("max_parallel", "gpus_per_job", "cpus_per_job", "timeout_min"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.executor == "local" and (args.slurm_partition or args.slurm_arg):
        raise ValueError("--slurm-partition/--slurm-arg need --executor slurm")
    from lic.launch.runner import Launcher

    opts = executors.Options(max_parallel=args.max_parallel, gpus_per_job=args.gpus_per_job,
                             cpus_per_job=args.cpus_per_job, timeout_min=args.timeout_min,
                             partition=args.slurm_partition, slurm_args=executors.parse_slurm_args(args.slurm_arg),
                             signal_delay_s=args.signal_delay_s, max_requeues=args.max_requeues)
    return Launcher(root, args.executor, opts).run(args.targets, dry=args.dry)


def _cmd_notebook(args: argparse.Namespace) -> int:
    from lic.notebooks import run

    print(f"[notebook] {run(args.name)}")
    return 0


def _cmd_warm(args: argparse.Namespace) -> int:
    from lic.warm import run_with_server

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise ValueError("lic warm: no command given (lic warm -- dvc repro)")
    return run_with_server(cmd)


def _cmd_recipes(args: argparse.Namespace) -> int:
    from lic.config import load_params
    from lic.recipes import write_all

    files = write_all(load_params(profile=args.profile), args.out)
    print(f"[recipes] {len(files)} training recipes under {files[0].parents[2] if files else args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    quality = "base" if args.base else args.quality
    if args.recipe:
        from lic import recipes

        resolved = recipes.read(args.recipe)
        if (resolved["model"], resolved["quality"]) != (args.model, quality):
            raise ValueError(f"{args.recipe} is the recipe of {resolved['model']} q{resolved['quality']}, "
                             f"not {args.model} q{quality}")
        if not resolved["active"]:
            from lic import placeholder  # no torch import for a quality the profile skips

            placeholder.skip(args.model, quality, resolved["profile"], resolved["active_qualities"], args.out)
            return 0
        from lic.train import main

        print(f"[train] {main(args.model, quality, None, progress=not args.quiet, resolved=resolved, out_dir=args.out)}")
        return 0
    from lic.config import load_params

    params = load_params(profile=args.profile)
    if quality != "base" and quality not in params["train"]["active_qualities"]:
        # the profile does not train this quality: placeholders, without importing torch (lic.placeholder)
        from lic import placeholder

        placeholder.skip(args.model, quality, params["profile"], params["train"]["active_qualities"], args.out)
        return 0
    from lic.train import main

    path = main(args.model, quality, params, progress=not args.quiet, out_dir=args.out)
    print(f"[train] {path}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from lic.config import load_params
    from lic.evaluate import main

    # given checkpoints are the papers' sizes (lic import-official): the paper profile's threads, workers
    # and datasets unless --profile says otherwise
    params = load_params(profile=args.profile or ("paper" if args.checkpoint else None))
    if not args.checkpoint:
        if args.dataset or args.results or args.protocol:
            raise ValueError("--dataset, --results and --protocol go with --checkpoint (the pipeline's "
                             "evaluation takes data.<profile>.eval, pads by edge replication and writes results/)")
        for path in main(args.model, params, progress=not args.quiet):
            print(f"[evaluate] {path}")
        return 0
    return _evaluate_checkpoints(args, params)


def _evaluate_checkpoints(args: argparse.Namespace, params: dict) -> int:
    """``lic evaluate KEY --checkpoint FILE...``: given checkpoints (e.g. imported released weights)
    instead of the pipeline's, written under --results, then a summary with BD-rates."""
    from pathlib import Path

    import pandas as pd

    from lic import official, paths
    from lic.codec import CheckpointError
    from lic.evaluate import main

    by_quality: dict[int, Path] = {}
    for f in args.checkpoint:
        q = official.checkpoint_quality(f, args.model)
        if q in by_quality:
            raise CheckpointError(f"{f} and {by_quality[q]} are both quality {q}")
        by_quality[q] = Path(f)
    root = Path(args.results) if args.results else Path(paths.ROOT) / "imported" / "results"
    datasets = args.dataset or params["data"]["eval"]
    # released weights: the authors' protocol unless told otherwise; other checkpoints: the pipeline's
    protocol = args.protocol or ("authors" if official.releases().get(args.model) else "pipeline")
    paths_out = main(args.model, params, progress=not args.quiet, datasets=datasets, checkpoints=by_quality,
                     results_root=root, protocol=protocol)
    for dataset, path in zip(datasets, paths_out):
        print(f"[evaluate] {path} (protocol {protocol}: "
              + ("centred zero padding as the authors' script; compare bpp_payload with the paper)"
                 if protocol == "authors" else "edge padding; bpp counts the whole file)"))
        per_q, bd = official.summary(args.model, dataset, path)
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(per_q.to_string(float_format=lambda v: f"{v:.4f}"))
            print(f"BD-rate: no published curves of {dataset} in data/reference" if bd is None
                  else bd.to_string(float_format=lambda v: f"{v:+.2f}"))
    return 0


def _cmd_import_official(args: argparse.Namespace) -> int:
    import json

    from lic import official
    from lic.config import load_params

    if args.list:
        for key, release in official.releases().items():
            print(f"{key}: {release.released}")
        return 0
    if not args.model or not args.source:
        raise ValueError("give MODEL and FILE (or --list)")
    try:
        kwargs = None if args.kwargs is None else json.loads(args.kwargs)
    except json.JSONDecodeError as e:
        raise ValueError(f"--kwargs is not JSON: {e}") from None
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ValueError("--kwargs must be a JSON object")
    params = load_params(profile="paper")  # the released models are the papers' sizes
    info = official.import_official(args.model, args.source, args.out, quality=args.quality, kwargs=kwargs,
                                    params=params)
    lam = "" if info["lambda"] is None else f", λ = {info['lambda']:g}"
    print(f"{info['out']}: {info['model']} q{info['quality']}{lam}, {info['params']:,} parameters, weights "
          f"{info['fingerprint']} (from {args.source}, sha256 {info['source_sha256'][:16]}…)")
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from lic import atomic
    from lic.codec import encode, load_checkpoint, read_image

    with warnings.catch_warnings(record=True) as caught:  # the image first: a bad one fails before the model loads
        warnings.simplefilter("always")
        img = read_image(args.input, max_pixels=args.max_pixels)
    for w in caught:
        print(f"lic: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    loaded = load_checkpoint(args.checkpoint)
    if args.model and args.model != loaded.key:
        raise ValueError(f"--model {args.model} but {args.checkpoint} holds a {loaded.key!r} model")
    enc = encode(loaded, img, estimate=False)
    out = Path(args.output)
    atomic.write_bytes(out, enc.data)
    h, w = img.shape[:2]
    print(f"{out}: {len(enc.data)} bytes, {len(enc.data) * 8 / (h * w):.4f} bpp ({w}x{h}, {loaded.key} q{loaded.quality})")
    return 0


def _cmd_decompress(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lic.codec import decode, image_format, load_checkpoint, write_image
    from lic.entropy.container import parse

    image_format(args.output)  # an unknown output extension is an error before any decoding
    data = Path(args.input).read_bytes()
    header = parse(data)  # a file that is not a lic bitstream: refused before the checkpoint is read
    loaded = load_checkpoint(args.checkpoint)
    img = decode(loaded, data, max_pixels=args.max_pixels)
    write_image(args.output, img)  # atomic: a complete PNG or none, never a temporary file left
    print(f"{args.output}: {header.width}x{header.height} from {loaded.key} q{header.quality}")
    return 0


def _cmd_complexity(args: argparse.Namespace) -> int:
    import json

    from lic import paths
    from lic.complexity import complexity_record
    from lic.config import load_params
    from lic.models import registry

    import torch

    records = []
    for profile in ("default", "paper"):
        params = load_params(profile=profile)
        for key in params["complexity"]["models"]:
            # a model that the pipeline does not train (e.g. TCM-large for HPCM Table C) is measured at its
            # registered (paper) kwargs, in the paper profile only
            if key not in params["models"] and profile == "default":
                continue
            kwargs = params["models"][key]["kwargs"] if key in params["models"] else {}
            torch.manual_seed(0)
            model = registry.build(key, **kwargs)
            # Y / YUV 4:2:0 models code their own representation of the RGB input: profile that conversion too
            fn = (lambda m, x: m(m.from_rgb(x))) if hasattr(model, "from_rgb") else None
            rec = complexity_record(key, model, fn=fn, path="forward" if fn is None else "forward(from_rgb(x))")
            del model
            records.append({**rec, "key": f"{key} ({profile})", "model": key, "profile": profile, "kwargs": kwargs})
            print(f"[complexity] {key} ({profile}): {rec['params']:,} params, {rec['kmacs_per_pixel']:.2f} kMACs/px",
                  flush=True)
    out = paths.RESULTS / "complexity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"models": records}, indent=1) + "\n")
    return 0


def _cmd_anchors(args: argparse.Namespace) -> int:
    import json

    from lic import anchors, paths
    from lic.config import load_params

    params = load_params(profile=args.profile)
    out_dir = paths.RESULTS / args.codec
    codec = anchors.get(args.codec)
    if not codec.available():
        # Not faked: the stage records why there is no curve, and the notebooks show the published one.
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("*.json"):
            old.unlink()
        note = {"codec": args.codec, "available": False, "reason": codec.unavailable_reason()}
        (out_dir / "unavailable.txt").write_text(json.dumps(note, indent=1) + "\n")
        print(f"lic: warning: anchor {args.codec} skipped: {note['reason']}", file=sys.stderr)
        return 0
    for ds in params["data"]["eval"]:
        print(f"[anchors] {anchors.evaluate_codec(args.codec, ds, params, progress=not args.quiet)}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from lic import bench
    from lic.config import load_params

    params = load_params(profile=args.profile)
    path = bench.run(params, device=args.device, models=args.models or None, out=args.out, progress=not args.quiet,
                     cross_devices=args.cross_devices or None, image_files=args.images or None)
    print(f"[bench] {path}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _max_pixels_option(p: argparse.ArgumentParser, what: str) -> None:
    from lic.limits import DEFAULT_MAX_PIXELS

    p.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"{what} (default 2^28 = {DEFAULT_MAX_PIXELS:,} pixels, e.g. 16384x16384; memory use "
                        f"grows with the image size)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lic", description="lic-repro: learned image compression "
                                     "replications (HPCM, TinyLIC, TCM/CGOO)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="print the resolved params.yaml of the active profile")
    p.add_argument("--profile", choices=["default", "paper"], default=None)
    p.set_defaults(func=_cmd_params)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("list", help="list the registered datasets")
    p.set_defaults(func=_cmd_data_list)
    p = data.add_parser("prepare", help="the data stage: download/verify, lay out, write the manifest")
    p.add_argument("name")
    p.add_argument("--profile", choices=["default", "paper"], default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_data_prepare)

    p = sub.add_parser("train", help="train (or resume) a registered model at one quality")
    p.add_argument("model")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--quality", type=int, help="train this quality (from the shared initialisation)")
    which.add_argument("--base", action="store_true", help="train the shared initialisation (train.base_steps)")
    p.add_argument("--profile", choices=["default", "paper"], default=None)
    p.add_argument("--recipe", default=None, help="a resolved recipe file (recipes/train/<model>/q<Q>.json, "
                   "written by `lic recipes`) instead of params.yaml; what the DVC stages use")
    p.add_argument("--out", default=None, help="the run's folder (default checkpoints/<model>/q<Q> or base): a run "
                   "outside the pipeline, e.g. the weights of data/bench/coding/")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("recipes", help="write the resolved training recipes of the profile to recipes/train/")
    p.add_argument("--profile", choices=["default", "paper"], default=None)
    p.add_argument("--out", default=None, help="another folder (e.g. to read the paper profile's recipes "
                   "without touching the pipeline's)")
    p.set_defaults(func=_cmd_recipes)

    p = sub.add_parser("evaluate", help="real-bitstream evaluation of a trained model on the eval datasets")
    p.add_argument("model")
    p.add_argument("--profile", choices=["default", "paper"], default=None)
    p.add_argument("--checkpoint", nargs="+", metavar="FILE", help="evaluate these checkpoints (one per "
                   "quality, e.g. from `lic import-official`) instead of the pipeline's, and print a summary "
                   "with BD-rates against the published curves; the paper profile's settings unless --profile")
    p.add_argument("--dataset", nargs="+", metavar="NAME", help="with --checkpoint: these prepared datasets "
                   "(default: data.<profile>.eval, Kodak, CLIC and Tecnick in the paper profile), e.g. kodak after "
                   "`lic data prepare kodak --profile paper`")
    p.add_argument("--results", metavar="DIR", help="with --checkpoint: where results and bitstreams go "
                   "(default: imported/results)")
    p.add_argument("--protocol", choices=["authors", "pipeline"], default=None, help="with --checkpoint: "
                   "'authors' pads with centred zeros to the multiple of the paper's own evaluation script "
                   "(default for keys with released weights); 'pipeline' pads right/bottom by edge "
                   "replication, as the pipeline's evaluation. Both record payload and file bpp")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("import-official", help="a released official checkpoint (HPCM, TCM, TinyLIC v3) as a "
                       "lic checkpoint for compress / decompress / evaluate --checkpoint (lic.official)")
    p.add_argument("model", nargs="?", help="registry key, e.g. li2025-hpcm-base")
    p.add_argument("source", nargs="?", metavar="FILE", help="the released file (*.pth.tar, *.pth)")
    p.add_argument("--quality", type=int, default=None, help="its quality (default: read from the λ in "
                   "the file name)")
    p.add_argument("--out", default=None, help="the lic checkpoint to write (default: imported/<model>/q<Q>.pt)")
    p.add_argument("--kwargs", default=None, help="constructor kwargs as JSON (default: the paper profile's)")
    p.add_argument("--list", action="store_true", help="list the models with released weights and where they are")
    p.set_defaults(func=_cmd_import_official)

    p = sub.add_parser("compress", help="compress an image into a bitstream file")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--checkpoint", required=True, help="a model.pt written by `lic train`")
    p.add_argument("--model", default=None, help="registry key (checked against the checkpoint)")
    _max_pixels_option(p, "refuse a larger input image, before decoding its pixels")
    p.set_defaults(func=_cmd_compress)

    p = sub.add_parser("decompress", help="decode a bitstream file into a PNG")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--checkpoint", required=True, help="the checkpoint that encoded the file")
    _max_pixels_option(p, "refuse a bitstream whose header declares a larger image, before decoding it")
    p.set_defaults(func=_cmd_decompress)

    p = sub.add_parser("complexity", help="params and kMACs/pixel of every evaluated model -> results/complexity.json")
    p.set_defaults(func=_cmd_complexity)

    p = sub.add_parser("anchors", help="evaluate a classical codec on the eval datasets (real files)")
    p.add_argument("codec")
    p.add_argument("--profile", choices=["default", "paper"], default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_anchors)

    p = sub.add_parser("bench", help="coding time (T_Net/T_AC) and training speed of bench.models -> JSON")
    p.add_argument("--profile", choices=["default", "paper"], default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--models", nargs="*", help="registry keys (default: bench.models)")
    p.add_argument("--out", default=None, help="output JSON (default: results/bench/<profile>-<device>.json)")
    p.add_argument("--images", nargs="*", metavar="PNG", help="code these photo files (default: the first "
                   "bench.images of the profile's first evaluation dataset)")
    p.add_argument("--cross-devices", nargs="*", metavar="DEVICE",
                   help="devices of the cross-device decoding check (default: cuda and cpu when CUDA exists, else cpu)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("warm", help="run CMD (e.g. dvc repro) with a warm fork server for its lic commands "
                       "(lic.warm: saves ~10 s of imports and teardown per command)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    p.set_defaults(func=_cmd_warm)

    p = sub.add_parser("launch", help="run DVC stages as independent jobs (local processes/GPUs or SLURM via "
                       "submitit), each recorded in its dvc.lock when it ends; --plan prices them in GPU-hours")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="stage names or globs ('train_hpcm@*'); default: every changed training stage")
    p.add_argument("--executor", choices=["local", "slurm"], default="local")
    p.add_argument("--max-parallel", type=int, help="jobs at once (local: default one per GPU, one on a CPU)")
    p.add_argument("--gpus-per-job", type=int, help="GPUs per job; more than 1 runs training under torchrun")
    p.add_argument("--cpus-per-job", type=int, help="CPU cores per job (slurm: --cpus-per-task; local: threads)")
    p.add_argument("--timeout-min", type=int, help="slurm: each job's time limit; it requeues and resumes at it")
    p.add_argument("--slurm-partition")
    p.add_argument("--slurm-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an extra #SBATCH option, e.g. --slurm-arg account=lab --slurm-arg qos=high (repeatable)")
    p.add_argument("--signal-delay-s", type=int, default=120,
                   help="seconds between SLURM's warning signal and the time limit (default 120)")
    p.add_argument("--max-requeues", type=int, default=1000,
                   help="slurm: time limits a job may reach (each time requeued and resumed) before it fails")
    p.add_argument("--status", action="store_true", help="list launched stages: queued, running, done, failed")
    p.add_argument("--plan", action="store_true", help="steps and estimated GPU-hours per training stage")
    p.add_argument("--profile", choices=["default", "paper"], help="--plan: price this profile")
    p.add_argument("--dry", action="store_true", help="list the stages that would be launched, in order")
    p.set_defaults(func=_cmd_launch)

    p = sub.add_parser("notebook", help="execute notebooks/NAME.ipynb with papermill into reports/NAME/")
    p.add_argument("name")
    p.set_defaults(func=_cmd_notebook)
    return parser


#: Exceptions whose message tells the user what to do: printed without a traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from lic.codec import CheckpointError, ImageError
    from lic.config import ConfigError
    from lic.data.download import ChecksumError, DownloadError
    from lic.entropy.container import BitstreamError
    from lic.launch.runner import LaunchError
    from lic.train import Interrupted, TrainingDiverged

    return (ConfigError, ChecksumError, DownloadError, FileNotFoundError, KeyError, ValueError,
            BitstreamError, ImageError, CheckpointError, TrainingDiverged, Interrupted, LaunchError, IsADirectoryError,
            PermissionError)


def main(argv: list[str] | None = None) -> int:
    from lic.quiet import ignore_known_warnings

    ignore_known_warnings()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"lic: error: {msg}", file=sys.stderr)
        return 2


def entry() -> None:
    """The ``lic`` console script: through the warm server when ``$LIC_WARM`` names one (:mod:`lic.warm`),
    else here; either way without the interpreter's slow teardown once the command has returned."""
    from lic import warm

    status = warm.run_remote(sys.argv[1:])
    if status is None:
        from lic import parallel

        parallel.mark_fork_safe()  # a fresh process: no torch computation has run yet
        status = main()
    warm.exit_now(int(status or 0))


if __name__ == "__main__":
    entry()
