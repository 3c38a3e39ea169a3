"""lic.bench: the protocol (T_AC is measured inside the coders, the classes are restored, the JSON
names the device); never the timings themselves."""

import json
import operator
import os

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


def test_training_options_are_parsed_and_applied():
    assert bench.parse_options("bf16+channels_last") == {"bf16": True, "channels_last": True, "compile": False}
    import pytest

    with pytest.raises(ValueError, match="unknown training option"):
        bench.parse_options("fp8")
    model = _tiny().train()
    r = bench.training_speed(model, batch=2, patch=64, steps=1, warmup=1, channels_last=True, bf16=True)
    assert r["channels_last"] and r["bf16"] and not r["compile"] and r["steps_per_s"] > 0
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_failing_training_option_is_recorded_not_fatal():
    params = {"bench": {"train_options": ["channels_last", "fp8"], "train_batch": 2, "train_patch": 64,
                        "train_steps": 1, "train_warmup": 0},
              "models": {"minnen2018-mean": {"kwargs": {"N": 16, "M": 24}}}}
    import pytest

    with pytest.raises(ValueError, match="unknown training option"):  # a typo fails before anything runs
        bench.training_options("minnen2018-mean", params, torch.device("cpu"), {"steps_per_s": 1.0}, progress=False)
    params["bench"]["train_options"] = ["channels_last"]
    rows = bench.training_options("minnen2018-mean", params, torch.device("cpu"), {"steps_per_s": 1.0},
                                  progress=False)
    assert rows[0]["option"] == "channels_last" and rows[0]["channels_last"] and "error" not in rows[0]
    assert rows[0]["speedup"] == rows[0]["steps_per_s"] > 0


def test_isolated_runs_report_errors_and_crashes():
    assert bench.run_isolated(operator.add, (2, 3)) == 5
    assert bench.run_isolated(operator.truediv, (1, 0)) == {"error": "ZeroDivisionError: division by zero"}
    assert bench.run_isolated(os.abort, ()) == {"error": "the measuring process died (signal 6)"}


def test_load_all_reads_every_device_file(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"device_name": "A", "models": []}))
    (tmp_path / "b.json").write_text(json.dumps({"device_name": "B", "models": []}))
    assert [d["device_name"] for d in bench.load_all(tmp_path)] == ["A", "B"]


def test_coding_time_counts_the_fast_coder_of_a_model(monkeypatch):
    """HPCM with entropy_coder="fast" codes y and z through lic.entropy.fast only (CompressAI's
    per-call classes would raise here); its coder calls are counted as T_AC, and the classes of
    both paths are restored afterwards."""
    import lic.entropy.fast as fast

    def refuse(*args, **kwargs):
        raise AssertionError("compressai.ans used on the fast path")

    before = {n: getattr(fast, n) for n in bench.CODER_CLASSES["lic.entropy.fast"]}
    torch.manual_seed(0)
    model = registry.build("li2025-hpcm-base", M=32, N=32, g_channels=(16, 24, 32), g_blocks=(1, 1, 1),
                           h_blocks=(1, 1), ep_blocks=((1, 1), (1, 1)), num_heads=4, windows=(1, 2, 4),
                           entropy_coder="fast").eval()
    model.update(force=True)
    for name in ("BufferedRansEncoder", "RansEncoder", "RansDecoder"):  # after CompressAI's own init
        monkeypatch.setattr(compressai.ans, name, refuse)
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    r = bench.coding_time(model, [img], warmup=0, repeats=1, pad_multiple=64)
    assert r["enc_ac_ms"] > 0 and r["dec_ac_ms"] > 0
    assert r["enc_net_ms"] > 0 and r["dec_net_ms"] > 0
    assert {n: getattr(fast, n) for n in before} == before


def test_ac_timer_counts_every_call_of_the_models_coder_helper():
    """Each operation of lic.entropy.fast.coder("fast") -- buffered, stepwise and one-shot -- lands
    in T_AC (the objects are made through the wrapped names)."""
    from lic.entropy.fast import coder

    rc = coder("fast")
    tables = rc.make_tables([[0, 1 << 15, 1 << 16]], [3], [0])
    sym, idx = torch.tensor([0, 1, 0, 0], dtype=torch.int32), torch.zeros(4, dtype=torch.int32)
    one_shot = rc.encode(sym, idx, tables)
    for op in ("encoder", "decoder", "encode", "decode"):
        with bench.ACTimer() as timer:
            if op == "encoder":
                enc = rc.encoder()
                enc.encode(sym, idx, tables)
                assert enc.flush() == one_shot
            elif op == "decoder":
                assert torch.equal(rc.decoder(one_shot).decode(idx, tables), sym)
            elif op == "encode":
                assert rc.encode(sym, idx, tables) == one_shot
            else:
                assert torch.equal(rc.decode(one_shot, idx, tables), sym)
        assert timer.seconds > 0, op


def test_bench_coding_model_times_both_coder_paths_side_by_side(tmp_path):
    """lic.bench_coding --model: the record of a tiny HPCM on a small crop of the photo (its
    timings are not checked, only the protocol: both paths, T_AC inside, same streams and image)."""
    from lic import bench_coding
    from lic.entropy import fast

    tiny = dict(M=32, N=32, g_channels=[16, 24, 32], g_blocks=[1, 1, 1], h_blocks=[1, 1],
                ep_blocks=[[1, 1], [1, 1]], num_heads=4, windows=[1, 2, 4])
    helpers = (fast.RansCoder.encode, fast._Encoder.encode, fast._StreamDecoder.decode)
    out = tmp_path / "hpcm.json"
    threads = torch.get_num_threads()
    rec = bench_coding.main(["--model", "li2025-hpcm-base", "--model-kwargs", json.dumps(tiny),
                             "--image-size", "64", "96", "--warmup", "0", "--repeats", "2", "--out", str(out)])
    torch.set_num_threads(threads)
    assert json.loads(out.read_text()) == json.loads(json.dumps(rec))
    assert rec["identical_streams"] and rec["same_reconstruction"] and rec["stream_bytes"] > 0
    assert rec["image"]["height"] == 64 and rec["image"]["width"] == 96 and rec["weights"] == "random-init"
    assert {"cpu", "platform"} <= set(rec["device"]) and rec["date"] and "numba" in rec["versions"]
    for name in ("compressai", "fast"):
        p = rec["paths"][name]
        assert len(p["runs"]) == 2
        assert 0 < p["enc_ac_ms"] < p["enc_ms"] and 0 < p["dec_ac_ms"] < p["dec_ms"]
        # the helper's time holds the coder calls (plus the path's conversions)
        assert p["enc_ac_ms"] <= p["enc_ac_conv_ms"] < p["enc_ms"]
        assert p["dec_ac_ms"] <= p["dec_ac_conv_ms"] < p["dec_ms"]
    assert rec["ratio"]["enc_ac"] > 0 and set(rec["saved_ms"]) == {"enc", "dec"}
    assert (fast.RansCoder.encode, fast._Encoder.encode, fast._StreamDecoder.decode) == helpers  # restored
    photo = bench_coding.kodak_photo(512, 768)
    assert photo.shape == (512, 768, 3) and photo.dtype == np.uint8 and photo.std() > 20
    from PIL import Image

    odd = tmp_path / "odd.png"  # a photo file of any size (padded to the model's multiple)
    Image.fromarray(photo[100:150, 200:270]).save(odd)
    rec = bench_coding.main(["--model", "li2025-hpcm-base", "--model-kwargs", json.dumps(tiny), "--image", str(odd),
                             "--warmup", "0", "--repeats", "1", "--out", str(out)])
    torch.set_num_threads(threads)
    assert rec["image"] == {"source": str(odd), "height": 50, "width": 70} and rec["identical_streams"]
    assert rec["weights_info"] == {"checkpoint": None, "seed": 0} and "omp_num_threads" in rec["protocol"]

    # trained weights (a checkpoint record), kept in a folder that notebook 03 reads (lic.bench.load_coding)
    from lic import bench
    from lic.models import registry
    from lic.reports.hpcm import coder_paths_table

    ck = tmp_path / "tiny.pt"
    torch.save({"model": "li2025-hpcm-base", "kwargs": tiny, "steps": 7, "params": {"lmbda": 0.01},
                "state_dict": registry.build("li2025-hpcm-base", **tiny).state_dict()}, ck)
    kept = tmp_path / "coding"
    rec = bench_coding.main(["--model", "li2025-hpcm-base", "--checkpoint", str(ck), "--image", str(odd),
                             "--warmup", "0", "--repeats", "1", "--out", str(kept / "tiny_odd.json")])
    torch.set_num_threads(threads)
    w = rec["weights_info"]
    assert (w["checkpoint"], w["steps"], w["lmbda"], len(w["fingerprint"])) == ("tiny.pt", 7, 0.01, 16)
    (kept / "tiny.recipe.json").write_text("{}")  # the folder's other JSON (a recipe) is not a record
    table = coder_paths_table(bench.load_coding(kept))
    assert list(table.index) == ["tiny_odd.json"]
    row = table.loc["tiny_odd.json"]
    assert row["weights"] == "7 steps, λ=0.01" and row["image"] == "odd.png" and row["identical_streams"]
    assert row["ratio_ac"] == rec["ratio"]["ac"] and row["bpp"] == rec["bpp"]
    assert coder_paths_table([]).empty


def _loaded(model):
    from lic.codec import LoadedModel, state_fingerprint

    return LoadedModel(model, "minnen2018-mean", 1, state_fingerprint(model.state_dict()), {})


def test_cross_device_decodes_every_stream_on_every_device():
    """Two copies of one model stand for two devices: every pair decodes to the encoder's image, and
    both encoders write the same bytes."""
    import copy

    model = _tiny()
    img = (np.random.default_rng(0).random((40, 72, 3)) * 255).astype(np.uint8)
    r = bench.cross_device({"a": _loaded(model), "b": _loaded(copy.deepcopy(model))}, [img])
    assert r["devices"] == ["a", "b"] and r["same_stream"] and r["all_identical"]
    assert [(p["encode"], p["decode"]) for p in r["pairs"]] == [("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")]
    assert all(p["max_abs_diff"] == 0 and p["psnr_db"] == float("inf") for p in r["pairs"])
    assert "note" not in r
    one = bench.cross_device({"cpu": _loaded(model)}, [img])
    assert one["all_identical"] and "one device" in one["note"]


def test_cross_device_reports_a_decoder_whose_network_differs():
    """A decoder whose hyper-synthesis computes slightly different scales (what a GPU's floats can do)
    under the same fingerprint: its pairs are reported as not identical, or with the error it raised,
    and the controls stay exact."""
    import copy

    from lic.reports.hpcm import cross_device_table

    model = _tiny()
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.h_s.parameters():
            p.add_(0.05 * torch.randn_like(p))
    a, b = _loaded(model), _loaded(other)
    b.fingerprint = a.fingerprint
    img = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    r = bench.cross_device({"a": a, "b": b}, [img])
    by = {(p["encode"], p["decode"]): p for p in r["pairs"]}
    assert by["a", "a"]["identical"] and by["b", "b"]["identical"]
    assert not by["a", "b"]["identical"] and not by["b", "a"]["identical"]
    assert not r["all_identical"] and not r["same_stream"]
    for p in (by["a", "b"], by["b", "a"]):
        assert p.get("error") or p["max_abs_diff"] > 0
    doc = {"device_name": "X", "profile": "default", "models": [{"model": "minnen2018-mean", "cross_device": r}]}
    table = cross_device_table([doc])
    assert table.loc[("X [default]", "minnen2018-mean", "a", "a"), "identical"] == "1/1"
    assert table.loc[("X [default]", "minnen2018-mean", "a", "b"), "identical"] == "0/1"
    assert cross_device_table([]).empty


def test_isolated_runner_reuses_its_worker_until_a_call_kills_it():
    with bench.IsolatedRunner() as runner:
        first, second = runner.run(os.getpid, ()), runner.run(os.getpid, ())
        assert first == second != os.getpid()                      # one spawned worker, reused
        assert runner.run(operator.truediv, (1, 0)) == {"error": "ZeroDivisionError: division by zero"}
        assert runner.run(os.getpid, ()) == first                  # an exception does not cost the worker
        assert runner.run(os.abort, ()) == {"error": "the measuring process died (signal 6)"}
        assert runner.run(os.getpid, ()) not in (first, os.getpid())  # a new worker after the crash
    assert runner._proc is None


def test_run_writes_one_record_per_model_with_the_given_images(in_tiny_project, tmp_path):
    """lic bench on photo files (--images): coding time, training speed and its options, the cross-device
    control; the JSON names the device and the files."""
    from PIL import Image

    root, params = in_tiny_project
    png = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)).save(png)
    params = {**params, "bench": {**params["bench"], "train_steps": 1, "train_warmup": 0, "repeats": 1,
                                  "warmup": 0, "train_patch": 64, "train_batch": 2}}
    path = bench.run(params, device="cpu", models=["minnen2018-mean"], out=tmp_path / "b.json", progress=False,
                     image_files=[png])
    doc = json.loads(path.read_text())
    assert doc["dataset"] == "files: photo.png" and doc["image_sizes"] == [[48, 80]] and doc["torch_device"] == "cpu"
    (rec,) = doc["models"]
    assert rec["model"] == "minnen2018-mean" and rec["coding"]["images"] == 1
    assert rec["training"]["steps_per_s"] > 0
    assert [o["option"] for o in rec["training_options"]] == params["bench"]["train_options"]
    assert rec["cross_device"]["devices"] == ["cpu"] and rec["cross_device"]["all_identical"]


def _abort(*args):
    os.abort()  # what torch 2.14.1's CPU backward did to TCM on some machines (heap corruption: signal 6)


def test_run_records_a_measurement_whose_process_died_and_goes_on(in_tiny_project, tmp_path, monkeypatch):
    """A crash inside one model's measurement (no ``except`` can catch it) becomes that model's error
    record; the other measurements and models still run and the JSON is written."""
    from PIL import Image

    root, params = in_tiny_project
    png = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)).save(png)
    params = {**params, "bench": {**params["bench"], "train_steps": 1, "train_warmup": 0, "repeats": 1,
                                  "warmup": 0, "train_patch": 64, "train_batch": 1, "cross_device_images": 0}}
    real_coding = bench._coding_worker
    monkeypatch.setattr(bench, "_coding_worker", _abort)
    path = bench.run(params, device="cpu", models=["minnen2018-mean"], out=tmp_path / "a.json", progress=False,
                     image_files=[png])
    (rec,) = json.loads(path.read_text())["models"]
    assert rec["coding"] == {"error": "the measuring process died (signal 6)"}
    assert rec["weights"] == bench._weights_of("minnen2018-mean", params["bench"]["quality"])[0]
    assert "cross_device" not in rec
    assert rec["training"]["steps_per_s"] > 0                           # measured in its own process
    assert all("speedup" in o for o in rec["training_options"])

    monkeypatch.setattr(bench, "_coding_worker", real_coding)
    monkeypatch.setattr(bench, "_option_worker", _abort)
    path = bench.run(params, device="cpu", models=["minnen2018-mean"], out=tmp_path / "b.json", progress=False,
                     image_files=[png])
    (rec,) = json.loads(path.read_text())["models"]
    assert rec["coding"]["images"] == 1
    assert rec["training"] == {"error": "the measuring process died (signal 6)"}
    assert [o["error"] for o in rec["training_options"]] == ["the measuring process died (signal 6)"] * len(
        params["bench"]["train_options"])

    from lic.reports.hpcm import table_a, table_c, training_options_table

    doc = {"device_name": "X", "profile": "default", "models": [rec]}
    assert table_a([doc])["X [default]"].isna().all()
    assert not table_c([doc], []).empty and not training_options_table([doc]).empty


def test_a_known_crash_is_skipped_only_where_it_was_seen(monkeypatch):
    """TCM's channels-last backward with torch 2.14.1 on oneDNN's AVX2 kernels (docs/hpcm.md): skipped
    with its reason on such a CPU, run everywhere else (another torch, AVX-512, another model, a GPU)."""
    cpu, cl = torch.device("cpu"), {"channels_last": True, "bf16": False, "compile": False}
    monkeypatch.setattr(torch, "__version__", "2.14.1+cpu")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert bench.onednn_avx2_only()
    why = bench.known_crash("liu2023-tcm-small", cl, cpu)
    assert why.startswith("skipped: known crash") and "AVX2" in why
    assert bench.known_crash("kuang2025-cgoo-nomsc", cl, cpu)
    assert bench.known_crash("li2025-hpcm-base", cl, cpu) is None
    assert bench.known_crash("liu2023-tcm-small", {**cl, "channels_last": False}, cpu) is None
    assert bench.known_crash("liu2023-tcm-small", cl, torch.device("cuda")) is None
    monkeypatch.setenv("LIC_BENCH_RUN_KNOWN_CRASHES", "1")
    assert bench.known_crash("liu2023-tcm-small", cl, cpu) is None
    monkeypatch.delenv("LIC_BENCH_RUN_KNOWN_CRASHES")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert not bench.onednn_avx2_only() and bench.known_crash("liu2023-tcm-small", cl, cpu) is None
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert bench.known_crash("liu2023-tcm-small", cl, cpu)
    monkeypatch.setattr(torch, "__version__", "2.15.0")
    assert bench.known_crash("liu2023-tcm-small", cl, cpu) is None


def test_training_options_record_a_known_crash_as_skipped(monkeypatch):
    monkeypatch.setattr(bench, "known_crash", lambda key, opts, dev: "skipped: known crash (test)")
    params = {"bench": {"train_options": ["channels_last"], "train_batch": 1, "train_patch": 64, "train_steps": 1,
                        "train_warmup": 0}, "models": {"minnen2018-mean": {"kwargs": {"N": 16, "M": 24}}}}
    rows = bench.training_options("minnen2018-mean", params, torch.device("cpu"), {"steps_per_s": 1.0}, progress=False)
    assert rows == [{"option": "channels_last", "error": "skipped: known crash (test)", "skipped": True}]


def test_bench_hpcm_attention_times_both_orders_and_compares_their_outputs(tmp_path):
    """python -m lic.bench_hpcm_attention: a record with both orders' medians per HPCM cell input of a
    768x512 image, their ratio, and how far apart their outputs are (float rounding only)."""
    from lic import bench_hpcm_attention as b

    rec = b.main(["--out", str(tmp_path / "a.json"), "--repeats", "2"])
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved["kind"] == "hpcm-attention-order"
    assert [c["stage"] for c in saved["cases"]] == ["s1", "s2", "s3"] and saved["device"]["cpu"]
    for c in rec["cases"]:
        assert c["window_then_project_ms"] > 0 and c["project_then_window_ms"] > 0
        assert c["max_abs_diff"] < 1e-4  # the same function: only float rounding apart
        assert c["outputs_bit_identical"] == (c["max_abs_diff"] == 0)
