import json

import pytest

from lic import evaluate, results


def test_evaluation_writes_real_bitstreams_and_results(in_tiny_project):
    root, params = in_tiny_project
    path = evaluate.evaluate_model("minnen2018-mean", "sample", params, qualities=[1, 6], progress=False)
    assert path == root / "results/minnen2018-mean/sample.json"
    doc = json.loads(path.read_text())
    assert doc["name"] == "minnen2018-mean" and doc["meta"]["dataset"] == "sample"
    assert doc["results"]["quality"] == [1, 6] and doc["results"]["images"] == [2, 2]
    for row in doc["per_image"]:
        bitstream = root / "results/minnen2018-mean/bitstreams/sample" / f"q{row['quality']}" / f"{row['image']}.lic"
        assert row["bytes"] == bitstream.stat().st_size  # bpp from the file on disk
        assert row["bpp"] == pytest.approx(row["bytes"] * 8 / row["pixels"])
        assert row["decoded_exactly"] and row["decoding_time"] > 0 and row["bpp_estimated"] > 0
        assert 5 < row["psnr-rgb"] < 60
        # the payload is the coded streams: the file minus the container's header (lic.entropy.container)
        from lic.entropy.container import parse

        bs = parse(bitstream.read_bytes())
        assert row["payload_bytes"] == bs.stream_bytes + len(bs.extra) == bs.payload_bytes < row["bytes"]
    chelsea = [r for r in doc["per_image"] if r["image"] == "chelsea"]
    assert all(r["pixels"] == 64 * 64 for r in chelsea)
    bpp = doc["results"]["bpp"]
    assert bpp[0] == pytest.approx(sum(r["bpp"] for r in doc["per_image"] if r["quality"] == 1) / 2)
    assert doc["run"]["git_sha"] and doc["run"]["versions"]["compressai"] == "1.2.8"


def test_decoder_mismatch_is_an_error(in_tiny_project, monkeypatch):
    _, params = in_tiny_project
    import numpy as np

    real_decode = evaluate.decode
    monkeypatch.setattr(evaluate, "decode", lambda m, d: np.zeros_like(real_decode(m, d)))
    with pytest.raises(evaluate.DecoderMismatch, match="differs from the encoder"):
        evaluate.evaluate_model("minnen2018-mean", "sample", params, qualities=[1], progress=False)


def test_summarise_averages_per_quality_by_hand():
    rows = [{"image": i, "quality": q, "bytes": 1, "pixels": 1, "bpp": b, "psnr-rgb": p, "ms-ssim-rgb": float("nan"),
             "encoding_time": 1.0, "decoding_time": 2.0}
            for i, q, b, p in [("a", 2, 1.0, 30.0), ("b", 2, 3.0, 34.0), ("a", 1, 0.5, 28.0)]]
    s = results.summarise(rows)
    assert s["quality"] == [1, 2] and s["bpp"] == [0.5, 2.0] and s["psnr-rgb"] == [28.0, 32.0]
    assert s["ms-ssim-rgb"] == [None, None]
    with pytest.raises(ValueError, match="lacks"):
        results.summarise([{"image": "x"}])


def test_parallel_qualities_give_the_serial_results(in_tiny_project, monkeypatch):
    """evaluate.workers: qualities in forked processes give the same rows, in the same order, and the same
    files as one process (only the times differ); a worker's error reaches the caller."""
    from lic import parallel

    root, params = in_tiny_project
    monkeypatch.setattr(parallel, "_FORK_SAFE", True)  # minnen's evaluation runs no autograd in the workers
    docs, files = [], []
    for workers in (1, 2):
        path = evaluate.evaluate_model("minnen2018-mean", "sample", params, qualities=[1, 2, 6], progress=False,
                                       workers=workers)
        doc = json.loads(path.read_text())
        assert doc["meta"]["workers"] == workers
        docs.append([{k: v for k, v in r.items() if not k.endswith("_time")} for r in doc["per_image"]])
        files.append({p.relative_to(root): p.read_bytes()
                      for p in sorted((root / "results/minnen2018-mean/bitstreams").rglob("*.lic"))})
    assert docs[0] == docs[1] and [r["quality"] for r in docs[0]] == [1, 1, 2, 2, 6, 6]
    assert files[0] == files[1] and len(files[0]) == 6
    with pytest.raises(Exception, match="does not exist"):
        evaluate.evaluate_model("minnen2018-mean", "sample", params, qualities=[1, 5], progress=False, workers=2,
                                checkpoints={5: root / "checkpoints/nowhere/model.pt"})
