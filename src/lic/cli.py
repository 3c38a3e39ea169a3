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


def _cmd_notebook(args: argparse.Namespace) -> int:
    from lic.notebooks import run

    print(f"[notebook] {run(args.name)}")
    return 0


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

    p = sub.add_parser("notebook", help="execute notebooks/NAME.ipynb with papermill into reports/NAME/")
    p.add_argument("name")
    p.set_defaults(func=_cmd_notebook)
    return parser


#: Exceptions whose message tells the user what to do: printed without a traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from lic.config import ConfigError
    from lic.data.download import ChecksumError, DownloadError

    return (ConfigError, ChecksumError, DownloadError, FileNotFoundError, KeyError, ValueError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"lic: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
