"""lic.checkpoints: no checkpoint runs code when read; non-checkpoints and old files are handled."""

import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from lic import checkpoints, cli, official, train
from lic.checkpoints import CheckpointError


class RunsCode:
    """Unpickling this calls ``Path.write_text(marker, "ran")``: what a malicious checkpoint would do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.write_text, (self.marker, "ran")


@pytest.fixture
def evil(tmp_path):
    """(checkpoint, marker): a lic-shaped record whose ``params`` run code when unpickled."""
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"model": "minnen2018-mean", "kwargs": {"N": 16, "M": 24}, "quality": 1, "state_dict": {},
                "params": RunsCode(marker)}, path)
    # the file really runs code with the unrestricted unpickler (in a copy, so the marker starts absent)
    control = tmp_path / "control"
    torch.save({"x": RunsCode(control)}, tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert control.read_text() == "ran"
    return path, marker


def test_a_checkpoint_that_runs_code_is_refused_without_running_it(evil):
    path, marker = evil
    for load in (lambda: checkpoints.load(path), lambda: checkpoints.load(path, numpy_rng=True),
                 lambda: official.checkpoint_quality(path)):
        with pytest.raises(CheckpointError, match="refused to load checkpoint .*evil.pt: its pickle would call "
                                                  ".*pathlib"):
            load()
    assert not marker.exists()


def _png(path, h=24, w=40):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_cli_refuses_it_in_one_line(evil, in_tiny_project, tmp_path, capsys):
    path, marker = evil
    root, _ = in_tiny_project
    src = _png(tmp_path / "in.png")
    assert cli.main(["compress", str(src), str(tmp_path / "x.lic"), "--checkpoint",
                     str(root / "checkpoints/minnen2018-mean/q1/model.pt")]) == 0
    capsys.readouterr()
    for args in (["compress", str(src), str(tmp_path / "y.lic")],
                 ["decompress", str(tmp_path / "x.lic"), str(tmp_path / "out.png")],
                 ["evaluate", "minnen2018-mean"]):
        assert cli.main([*args, "--checkpoint", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lic: error: refused to load checkpoint") and err.count("\n") == 1, err
    assert not marker.exists()
    assert not (tmp_path / "y.lic").exists() and not (tmp_path / "out.png").exists()


def test_cli_decompress_max_pixels(in_tiny_project, tmp_path, capsys):
    root, _ = in_tiny_project
    ckpt = str(root / "checkpoints/minnen2018-mean/q1/model.pt")
    src = _png(tmp_path / "in.png")
    assert cli.main(["compress", str(src), str(tmp_path / "x.lic"), "--checkpoint", ckpt]) == 0
    capsys.readouterr()
    out = tmp_path / "out.png"
    assert cli.main(["decompress", str(tmp_path / "x.lic"), str(out), "--checkpoint", ckpt,
                     "--max-pixels", str(24 * 40 - 1)]) == 2
    assert "40x24 = 960 pixels exceeds the limit of 959" in capsys.readouterr().err and not out.exists()
    assert cli.main(["decompress", str(tmp_path / "x.lic"), str(out), "--checkpoint", ckpt,
                     "--max-pixels", str(24 * 40)]) == 0


def _not_checkpoints(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(4096)}}, tmp_path / "whole.pt")
    files = {"text": b"model = 'minnen2018-mean'\n", "png": _png(tmp_path / "p.png").read_bytes(), "empty": b"",
             "truncated zip": (tmp_path / "whole.pt").read_bytes()[:3000]}
    out = {}
    for name, data in files.items():
        out[name] = tmp_path / f"{name.replace(' ', '_')}.pt"
        out[name].write_bytes(data)
    out["folder"] = tmp_path
    return out


def test_non_checkpoint_files_are_one_line_errors(tmp_path, capsys):
    src = _png(tmp_path / "in.png")
    for name, path in _not_checkpoints(tmp_path).items():
        with pytest.raises(CheckpointError):
            checkpoints.load(path)
        assert cli.main(["compress", str(src), str(tmp_path / "x.lic"), "--checkpoint", str(path)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("lic: error:") and "checkpoint" in err and str(path) in err \
            and err.count("\n") == 1, (name, err)


def test_new_training_state_needs_no_allow_list(tmp_path):
    """last.pt's RNG state is tensors and plain data: readable with weights_only=True and nothing allowed."""
    np.random.seed(1)
    torch.save({"rng": train._rng_state()}, tmp_path / "last.pt")
    expected = np.random.rand(3)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "last.pt") == []
    train._set_rng_state(checkpoints.load(tmp_path / "last.pt")["rng"])
    assert np.array_equal(np.random.rand(3), expected)


def test_old_training_state_with_numpy_arrays_still_resumes_identically(in_tiny_project, tmp_path):
    """A last.pt written before the list form (numpy's RNG keys as an ndarray) resumes exactly; only the
    resume path admits numpy's array globals."""
    _, params = in_tiny_project
    full = train.train("minnen2018-mean", 2, params, tmp_path / "full", progress=False)
    train.train("minnen2018-mean", 2, params, tmp_path / "cut", progress=False, stop_after=3)
    last = tmp_path / "cut" / "last.pt"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(last) == []  # what train writes now
    state = torch.load(last, weights_only=True)
    name, keys, *rest = state["rng"]["numpy"]
    state["rng"]["numpy"] = (name, np.asarray(keys, dtype=np.uint32), *rest)  # the old layout
    torch.save(state, last)
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(last)
    with pytest.raises(CheckpointError, match="refused.*numpy"):
        checkpoints.load(last)
    resumed = train.train("minnen2018-mean", 2, params, tmp_path / "cut", progress=False)
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in (full, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
