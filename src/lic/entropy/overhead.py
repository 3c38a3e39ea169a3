"""What the container costs: header bytes of version 1 and version 2 for each model family at a given rate.

``python -m lic.entropy.overhead [--bpp 0.1] [--out FILE]`` encodes a 768x512 (Kodak-sized) image with each
family's default-profile model (random weights: only the stream layout and side information matter here),
then rescales its streams to the target rate (same proportions, so every length varint has the size a real
file at that rate has) and counts the bytes that are not coded strings, in both container versions. HPCM's
in-stream CRC-32 prefixes count as overhead in version 1 (version 2 stores them once, in the container).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KEYS = ("minnen2018-mean", "li2025-hpcm-base", "liu2023-tcm-small", "kuang2025-cgoo-noonline", "lu2022-tinylic-v3",
        "lu2022-tinylic-vr", "lu2022-tinylic-msr")
KODAK = (512, 768)


def overhead_record(bpp: float = 0.1, keys=KEYS) -> dict:
    import numpy as np
    import torch

    from lic import codec
    from lic.config import load_params
    from lic.entropy.container import parse

    params = load_params(profile="default")
    h, w = KODAK
    img = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    target = round(bpp * h * w / 8)
    rows = []
    for key in keys:
        torch.manual_seed(0)
        model = registry_build(key, params)
        loaded = codec.LoadedModel(model, key, 3, codec.state_fingerprint(model.state_dict()), {})
        bs = parse(codec.encode(loaded, img, estimate=False).data)
        sealed = 4 if getattr(model, "stream_crc", False) else 0  # HPCM's per-stream CRC prefix (version 1)
        total = bs.stream_bytes or 1
        bs.streams = [[bytes(max(1, round(len(s) * target / total))) for s in g] for g in bs.streams]
        strings = bs.stream_bytes + len(bs.extra)
        v2 = len(bs.to_bytes()) - strings
        bs.version, bs.key, bs.fingerprint = 1, key, loaded.fingerprint
        bs.shape = tuple(int(s) for s in model.bitstream_shape(*_padded(model, h, w)))
        n_streams = sum(len(g) for g in bs.streams)
        v1 = len(bs.to_bytes()) - strings + sealed * n_streams
        rows.append({"model": key, "streams": n_streams, "payload_bytes": strings, "header_bytes_v1": v1,
                     "header_bytes_v2": v2, "share_v1_percent": round(100 * v1 / (strings + v1), 3),
                     "share_v2_percent": round(100 * v2 / (strings + v2), 3)})
    return {"image": f"{w}x{h} (Kodak)", "bpp": bpp, "payload_bytes_target": target, "models": rows,
            "note": "header = file bytes - coded strings (and side information); version 1 includes HPCM's "
                    "in-stream CRC-32 prefixes"}


def registry_build(key: str, params: dict):
    from lic.models import registry

    model = registry.build(key, **params["models"][key]["kwargs"]).eval()
    model.update(force=True)
    return model


def _padded(model, h: int, w: int) -> tuple[int, int]:
    from lic.entropy.layout import padded_size

    return padded_size(model, h, w)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lic.entropy.overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--bpp", type=float, default=0.1)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    rec = overhead_record(args.bpp)
    text = json.dumps(rec, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    for r in rec["models"]:
        print(f"{r['model']:28s} v1 {r['header_bytes_v1']:3d} B ({r['share_v1_percent']:.2f} %)  "
              f"v2 {r['header_bytes_v2']:3d} B ({r['share_v2_percent']:.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
