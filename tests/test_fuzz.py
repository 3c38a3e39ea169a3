"""A seeded, bounded fuzz of the decoder (issue 15): a few hundred mutants per model family, each decoded in
a forked child with a time and memory limit. Long runs: ``python -m lic.fuzz --count N`` (docs/hardening.md)."""

from __future__ import annotations

import random

import pytest

from lic import fuzz
from lic.entropy.container import parse


@pytest.mark.parametrize("family", sorted(fuzz.FAMILIES))
def test_no_mutant_crashes_hangs_or_blows_up(family):
    rec = fuzz.fuzz(200, families=(family,), seed=7, timeout_s=30, mem_gb=3, cli_every=8, jobs=2,
                    sizes=((40, 70), (33, 129)))
    assert rec["failures"] == [], rec["failures"][:3]
    assert all(rec["outcomes"][f] == 0 for f in fuzz.FAILURES)
    assert rec["outcomes"]["decoded"] + rec["outcomes"]["rejected"] == 200
    assert rec["outcomes"]["rejected"] > 0 and rec["through_cli"] == 25
    assert rec["valid_checksum"] >= 80  # most mutants get past the checksums to the model checks and decoder
    assert {k.split("/")[0] for k in rec["by_category"]} == set(fuzz.CATEGORIES)


def test_mutants_are_reproducible_and_valid_ones_parse(tmp_path):
    targets = fuzz.build_targets(("reference",), tmp_path, seed=0)
    a = [fuzz.mutate(targets[0], random.Random(s)) for s in range(60)]
    b = [fuzz.mutate(targets[0], random.Random(s)) for s in range(60)]
    assert a == b
    for category, valid, data in a:
        if valid:
            parse(data)  # a valid mutant passes the container's checksums (the model checks come later)


def test_a_crashing_or_hanging_decoder_is_reported(tmp_path, monkeypatch):
    """The harness itself can fail: a decoder that segfaults, hangs or allocates past the limit is caught."""
    import ctypes
    import time

    import numpy as np

    targets = fuzz.build_targets(("reference",), tmp_path, seed=0)
    t, data = targets[0], targets[0].files[0]
    limits = dict(timeout_s=2, mem_bytes=2 ** 30, max_pixels=2 ** 20, workdir=tmp_path)
    cases = {"crash": lambda *a, **k: ctypes.string_at(0), "hang": lambda *a, **k: time.sleep(60),
             "memory": lambda *a, **k: np.ones(2 ** 31, np.uint8)}
    for outcome, fn in cases.items():
        monkeypatch.setattr(t.loaded.model, "decompress", fn)
        assert fuzz.run_one(t, data, cli=False, **limits)["outcome"] == outcome
    monkeypatch.undo()
    assert fuzz.run_one(t, data, cli=True, **limits)["outcome"] == "decoded"
