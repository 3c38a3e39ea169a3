"""BD-rate / BD-PSNR: hand-checked cases, agreement with `bjontegaard`, and the spec's cross-check.

Expected values are worked out by hand (see the comments), taken from the spec (§3.4, computed there
with bjontegaard 1.3.0), or come from calling the `bjontegaard` package directly; none comes from
`lic.bdrate` itself.
"""

from __future__ import annotations

import math

import bjontegaard
import numpy as np
import pytest

from lic import reference
from lic.bdrate import bd_metric, bd_psnr, bd_rate, try_bd_rate

METHODS = ("pchip", "cubic")

# A realistic anchor: CompressAI's Kodak VTM points (bpp, PSNR), rounded.
RATES = [0.0482, 0.1125, 0.2458, 0.4905, 0.8748, 1.4308]
PSNRS = [26.14, 28.49, 31.20, 34.26, 37.42, 40.42]


@pytest.mark.parametrize("method", METHODS)
def test_identical_curves_give_zero(method):
    assert bd_rate(RATES, PSNRS, RATES, PSNRS, method=method) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS, method=method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("factor, expected", [(0.9, -10.0), (1.25, 25.0), (0.5, -50.0)])
def test_scaled_rates_at_same_quality(method, factor, expected):
    # Every test point needs `factor` times the anchor's bits at the same PSNR, so log-rate differs
    # by the constant log10(factor) over the whole PSNR range: BD-rate = factor - 1 exactly.
    test_rates = [r * factor for r in RATES]
    assert bd_rate(RATES, PSNRS, test_rates, PSNRS, method=method) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_constant_psnr_shift_on_a_straight_line(method):
    # Anchor on the line PSNR = 20 + 10*log10(R) (10 dB per decade of rate); the test curve has the
    # same rates and +0.5 dB. Both are straight lines in (PSNR, log10 R), which pchip and a cubic fit
    # reproduce exactly. Solving for the rate at equal PSNR P:
    #   anchor: log10 R_a = (P - 20) / 10,  test: log10 R_t = (P - 20.5) / 10
    #   => log10 R_t - log10 R_a = -0.05 everywhere  => BD-rate = 10**-0.05 - 1 = -10.8749062 %
    # and at equal rate the PSNR gap is the shift itself: BD-PSNR = +0.5 dB.
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    anchor = [20 + 10 * math.log10(r) for r in rates]
    test = [p + 0.5 for p in anchor]
    assert bd_rate(rates, anchor, rates, test, method=method) == pytest.approx(-10.8749062, abs=1e-6)
    assert bd_psnr(rates, anchor, rates, test, method=method) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_rate_scaling_on_a_line_gives_psnr_gain(method):
    # Same line; the test codec reaches each PSNR with 0.9x the rate, i.e. at rate R it has the
    # anchor's quality at R / 0.9: gain = 10*log10(1/0.9) = 0.4575749 dB.
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    anchor = [20 + 10 * math.log10(r) for r in rates]
    test_rates = [0.9 * r for r in rates]
    assert bd_psnr(rates, anchor, test_rates, anchor, method=method) == pytest.approx(0.4575749, abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_agrees_with_bjontegaard_package(method):
    # A curve with a different number of points and a bend, against the package called directly.
    t_rates = [0.06, 0.13, 0.27, 0.52, 0.91]
    t_psnr = [26.9, 29.3, 31.9, 34.6, 37.3]
    expected_rate = bjontegaard.bd_rate(RATES, PSNRS, t_rates, t_psnr, method=method,
                                        require_matching_points=False, min_overlap=0)
    expected_psnr = bjontegaard.bd_psnr(RATES, PSNRS, t_rates, t_psnr, method=method,
                                        require_matching_points=False, min_overlap=0)
    assert bd_rate(RATES, PSNRS, t_rates, t_psnr, method=method) == pytest.approx(expected_rate, abs=1e-10)
    assert bd_psnr(RATES, PSNRS, t_rates, t_psnr, method=method) == pytest.approx(expected_psnr, abs=1e-10)
    assert expected_rate < 0 < expected_psnr  # the test curve is better everywhere


def test_unsorted_points_and_nan_are_cleaned():
    t_rates = [0.06, 0.13, 0.27, 0.52, 0.91]
    t_psnr = [26.9, 29.3, 31.9, 34.6, 37.3]
    expected = bjontegaard.bd_rate(RATES, PSNRS, t_rates, t_psnr, method="pchip",
                                   require_matching_points=False, min_overlap=0)
    order = [3, 0, 4, 2, 1]
    messy_rates = [t_rates[i] for i in order] + [0.7]
    messy_psnr = [t_psnr[i] for i in order] + [float("nan")]
    assert bd_rate(RATES[::-1], PSNRS[::-1], messy_rates, messy_psnr) == pytest.approx(expected, abs=1e-10)


def test_ms_ssim_db_works_like_psnr():
    # MS-SSIM in dB is just another metric axis: the 0.9x-rate identity holds there too.
    db = [11.0, 13.2, 15.5, 17.3, 19.1, 20.1]
    assert bd_rate(RATES, db, [0.9 * r for r in RATES], db) == pytest.approx(-10.0, abs=1e-9)
    assert bd_metric(RATES, db, RATES, [d + 0.25 for d in db]) == pytest.approx(0.25, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_fewer_than_four_points_is_an_error(method):
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(RATES, PSNRS, RATES[:3], PSNRS[:3], method=method)
    with pytest.raises(ValueError, match="at least 4"):  # 4 given, one NaN
        bd_rate(RATES, PSNRS, RATES[:4], PSNRS[:3] + [float("nan")], method=method)
    with pytest.raises(ValueError, match="at least 4"):
        bd_psnr(RATES[:2], PSNRS[:2], RATES, PSNRS, method=method)


def test_no_overlap_is_an_error():
    high = [p + 30 for p in PSNRS]  # 56-70 dB, disjoint from 26-40 dB
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(RATES, PSNRS, RATES, high)
    far = [r * 1000 for r in RATES]
    with pytest.raises(ValueError, match="do not overlap"):
        bd_psnr(RATES, PSNRS, far, PSNRS)


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="unknown BD method"):
        bd_rate(RATES, PSNRS, RATES, PSNRS, method="akima2")
    with pytest.raises(ValueError, match="6 rates but 5"):
        bd_rate(RATES, PSNRS, RATES, PSNRS[:5])
    with pytest.raises(ValueError, match="non-positive rate"):
        bd_rate(RATES, PSNRS, [0.0] + RATES[1:], PSNRS)
    bumpy = PSNRS[:2] + [PSNRS[1] - 0.1] + PSNRS[3:]  # quality drops between two rates
    with pytest.raises(ValueError, match="not strictly increasing"):
        bd_rate(RATES, PSNRS, RATES, bumpy, method="pchip")
    bd_rate(RATES, PSNRS, RATES, bumpy, method="cubic")  # a least-squares fit copes
    with pytest.raises(ValueError, match="does not increase"):
        bd_rate(RATES, PSNRS, RATES, PSNRS[::-1], method="cubic")


def test_try_bd_rate_returns_reason():
    value, why = try_bd_rate(RATES, PSNRS, RATES[:3], PSNRS[:3])
    assert math.isnan(value) and "at least 4" in why
    value, why = try_bd_rate(RATES, PSNRS, [0.9 * r for r in RATES], PSNRS)
    assert value == pytest.approx(-10.0, abs=1e-9) and why is None


# Spec §3.4: Kodak curves vs the lossy-vae VTM-18.0 anchor, pchip / polyfit, bjontegaard 1.3.0.
CROSS_CHECK = [
    ("li2025-hpcm-base", -15.45, -15.40),
    ("li2025-hpcm-large", -19.39, -19.40),
    ("liu2023-tcm-large", -11.15, -11.23),
    ("jiang2023-mlicpp", -14.41, -14.44),
    ("he2022-elic", -6.37, -6.38),
    ("zou2022-stf", -3.46, -3.63),
    ("lu2022-tinylic", -3.08, -3.11),
    ("bpg444", 23.55, 23.48),
]


@pytest.mark.parametrize("key, pchip, cubic", CROSS_CHECK)
def test_spec_cross_check_against_vtm18(key, pchip, cubic):
    anchor = reference.load_reference("kodak", "vtm18.0-lossyvae")["results"]
    test = reference.load_reference("kodak", key)["results"]
    got_pchip = bd_rate(anchor["bpp"], anchor["psnr-rgb"], test["bpp"], test["psnr-rgb"], method="pchip")
    got_cubic = bd_rate(anchor["bpp"], anchor["psnr-rgb"], test["bpp"], test["psnr-rgb"], method="cubic")
    assert got_pchip == pytest.approx(pchip, abs=0.02)
    assert got_cubic == pytest.approx(cubic, abs=0.02)


def test_arrays_are_accepted():
    r, p = np.array(RATES), np.array(PSNRS)
    assert bd_rate(r, p, r * 0.9, p) == pytest.approx(-10.0, abs=1e-9)


def test_short_reasons_and_comparability():
    from lic.bdrate import comparability, short_reason

    for args, short in [((RATES, PSNRS, RATES[:3], PSNRS[:3]), "too few points"),
                        ((RATES, PSNRS, RATES, [p - 20 for p in PSNRS]), "curves do not overlap"),
                        ((RATES, PSNRS, RATES, [30, 29, 31, 32, 33, 34]), "curve not monotone")]:
        value, why = try_bd_rate(*args)
        assert math.isnan(value) and short_reason(why) == short
    # comparable: the same curve at 0.9x the rate; not: 1 dB of overlap out of a 14 dB range, or the same
    # PSNRs at 100x the rate (rates far beyond both curves' spread)
    assert comparability(RATES, PSNRS, [0.9 * r for r in RATES], PSNRS) is None
    assert short_reason(comparability(RATES, PSNRS, RATES, [p + 13.28 for p in PSNRS])) == "curves barely overlap"
    assert short_reason(comparability(RATES, PSNRS, [100 * r for r in RATES], PSNRS)) == "rates not comparable"
