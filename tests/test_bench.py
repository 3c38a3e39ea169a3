"""lic.bench: the protocol (T_AC is measured inside the coders, the classes are restored, the JSON
names the device); never the timings themselves."""

import json

import compressai.ans
import numpy as np
import torch

from lic import bench
from lic.models import registry


def _tiny():
    torch.manual_seed(0)
    model = registry.build("minnen2018-mean", N=16, M=24).eval()
    model.update(force=True)
    return model


def test_ac_timer_wraps_and_restores_the_coder_classes():
    import compressai.entropy_models as em

    before = (compressai.ans.RansEncoder, compressai.ans.RansDecoder, getattr(em, "RansEncoder", None))
    with bench.ACTimer() as timer:
        assert compressai.ans.RansEncoder is not before[0]
        enc = compressai.ans.RansEncoder()
        cdf = [0, 1 << 15, 1 << 16]
        enc.encode_with_indexes([0, 1, 0], [0, 0, 0], [cdf], [3], [0])
        assert timer.seconds > 0
    assert (compressai.ans.RansEncoder, compressai.ans.RansDecoder, getattr(em, "RansEncoder", None)) == before


def test_coding_time_splits_network_and_arithmetic_coding():
    model = _tiny()
    img = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    r = bench.coding_time(model, [img], warmup=0, repeats=2)
    for side in ("enc", "dec"):
        assert r[f"{side}_ac_ms"] > 0 and r[f"{side}_net_ms"] > 0
        assert abs(r[f"{side}_ac_ms"] + r[f"{side}_net_ms"] - r[f"{side}_total_ms"]) < 1e-6
    assert r["images"] == 1 and r["repeats"] == 2


def test_training_speed_runs_the_optimiser():
    model = _tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = bench.training_speed(model, batch=2, patch=64, steps=2, warmup=1)
    assert r["steps_per_s"] > 0 and r["batch"] == 2 and r["patch"] == 64
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_load_all_reads_every_device_file(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"device_name": "A", "models": []}))
    (tmp_path / "b.json").write_text(json.dumps({"device_name": "B", "models": []}))
    assert [d["device_name"] for d in bench.load_all(tmp_path)] == ["A", "B"]
