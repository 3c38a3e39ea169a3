"""lic.bench_attention (a benchmark, nothing timed here): the record's structure with a tiny model, the
watchdog, and the notebook's table of it."""

from __future__ import annotations

import json
import math

import pytest

TINY = '{"N": 16, "M": 48, "depths": [1, 1, 1, 1, 1, 1], "kernel_size": 5}'


def test_bench_runs_each_case_in_a_subprocess_and_records_it(tmp_path):
    from lic import bench_attention
    from lic.reports import tinylic

    out = tmp_path / "a.json"
    bench_attention.main(["--cases", "reference:1", "--size", "64", "--steps", "1", "--kwargs", TINY,
                          "--out", str(out), "--rss-limit-gb", "0.05"])
    over = json.loads(out.read_text())["cases"]
    assert len(over) == 1 and over[0]["status"] == "over-limit" and over[0]["returncode"] == 3  # the watchdog
    bench_attention.main(["--cases", "chunked:2", "flex:1", "--size", "64", "--steps", "1", "--threads", "1",
                          "--kwargs", TINY, "--out", str(out), "--skip", "natten:8=not installed"])
    rec = json.loads(out.read_text())
    assert rec["kind"] == "attention-bench" and rec["versions"]["torch"] and rec["kwargs"]["N"] == 16
    ok, flex, skipped = rec["cases"]
    assert ok["status"] == "ok" and ok["steps_done"] == 1 and ok["peak_rss_gb"] > 0.1 and ok["steps_per_s"] > 0
    assert ok["attention"] == {"option": "chunked", "resolved": "chunked"} and ok["threads"] == 1
    assert flex["status"] == "error" and "cannot train on the CPU" in flex["error"]
    assert skipped == {"impl": "natten", "batch": 8, "size": 64, "status": "not run", "reason": "not installed"}
    t = tinylic.attention_table([rec])
    assert list(t["path"]) == ["chunked", "flex", "natten"] and list(t["status"]) == ["ok", "error", "not run"]
    assert t.iloc[0]["s / step"] == ok["step_s"][0] and t.iloc[2]["note"] == "not installed"
    assert tinylic.attention_table([{"cases": [{**ok, "step_s": [9.0, 2.0, 4.0, 3.0]}]}]).iloc[0]["s / step"] == 3.0
    assert math.isnan(t.iloc[2]["peak RSS (GiB)"]) and tinylic.attention_table([]).empty
    assert t.iloc[0]["model size"].startswith("N=16") and t.iloc[0]["CPU s / step"] > 0


def test_bad_case_is_a_one_line_error(capsys):
    from lic import bench_attention

    safe = ["--kwargs", TINY, "--size", "32", "--steps", "1", "--out", "/dev/null"]  # should a case slip through
    for argv in (["--cases", "fast:8"], ["--cases", "chunked:x"], ["--cases", "--skip", "nat=why"],
                 ["--cases", "--streams", "x"]):
        with pytest.raises(SystemExit) as e:
            bench_attention.main(argv + safe)
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert e.value.code == 2 and "bad case" in err, (argv, err)
