"""Bjøntegaard delta rate and delta metric between two rate-distortion curves.

Two interpolation methods, both delegated to the ``bjontegaard`` package (FAU-LMS, 1.3.0):

* ``"pchip"`` (default): piecewise cubic Hermite interpolation of log-rate over the metric, the
  method of the JCT-VC/JVET common test conditions (JCTVC-L1100, JVET-T2010 Excel sheet);
* ``"cubic"``: the classic VCEG-M33 method (Bjøntegaard 2001), a least-squares cubic polynomial.

Both integrate over the **overlap** of the two curves' metric ranges (BD-rate) or log-rate ranges
(BD-metric), so a wide anchor (VTM at 26-47 dB) against a learned codec (28-38 dB) is compared on
28-38 dB only. The metric may be PSNR or MS-SSIM in dB (``-10 log10(1 - MS-SSIM)``); do not pass
linear MS-SSIM, whose scale compresses the high-quality end.

Before delegating, points are cleaned the same way for every caller: non-finite values dropped,
points sorted by rate, and a ``ValueError`` that says what is wrong when a curve has fewer than
:data:`MIN_POINTS` points, a non-positive rate, a metric that does not increase with rate (pchip
needs a monotone curve), or when the curves do not overlap.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

METHODS = ("pchip", "cubic")
MIN_POINTS = 4  # a cubic needs 4 points; the CTC sheets use 4 QPs


def _curve(rate: Sequence[float], metric: Sequence[float], which: str) -> tuple[np.ndarray, np.ndarray]:
    """Drop NaN/inf points, sort by rate and check there are enough of them."""
    r = np.asarray(rate, dtype=np.float64).ravel()
    m = np.asarray(metric, dtype=np.float64).ravel()
    if r.shape != m.shape:
        raise ValueError(f"{which} curve: {r.size} rates but {m.size} metric values")
    keep = np.isfinite(r) & np.isfinite(m)
    r, m = r[keep], m[keep]
    if r.size < MIN_POINTS:
        raise ValueError(f"{which} curve has {r.size} usable (finite) points; BD needs at least "
                         f"{MIN_POINTS}")
    if np.any(r <= 0):
        raise ValueError(f"{which} curve has a non-positive rate ({r.min()}); rates must be > 0 "
                         "(bpp or kbps)")
    order = np.argsort(r, kind="stable")
    return r[order], m[order]


def _check_monotone(rate: np.ndarray, metric: np.ndarray, which: str, method: str) -> None:
    if metric[-1] <= metric[0]:
        raise ValueError(f"{which} curve: the metric does not increase with rate ({metric[0]:.4f} at "
                         f"{rate[0]:.4g} vs {metric[-1]:.4f} at {rate[-1]:.4g}); check the columns")
    if method == "pchip" and not (np.all(np.diff(metric) > 0) and np.all(np.diff(rate) > 0)):
        raise ValueError(f"{which} curve is not strictly increasing (metric {metric.round(4).tolist()} "
                         f"at rates {rate.round(4).tolist()}); pchip interpolation needs a monotone "
                         "curve: drop the offending points or use method='cubic'")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; use one of {METHODS}")


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Length of the overlap of the ranges of ``a`` and ``b`` (0 when disjoint)."""
    return max(0.0, min(a.max(), b.max()) - max(a.min(), b.min()))


def bd_rate(anchor_bpp: Sequence[float], anchor_metric: Sequence[float],
            test_bpp: Sequence[float], test_metric: Sequence[float], method: str = "pchip") -> float:
    """Average rate difference of ``test`` against ``anchor`` at equal quality, in percent.

    Negative means the test codec needs fewer bits for the same PSNR (or MS-SSIM dB). The average
    is taken over the overlap of the two metric ranges.
    """
    _check_method(method)
    ar, am = _curve(anchor_bpp, anchor_metric, "anchor")
    tr, tm = _curve(test_bpp, test_metric, "test")
    _check_monotone(ar, am, "anchor", method)
    _check_monotone(tr, tm, "test", method)
    if _overlap(am, tm) <= 0:
        raise ValueError(f"the metric ranges do not overlap (anchor {am.min():.3f}-{am.max():.3f}, "
                         f"test {tm.min():.3f}-{tm.max():.3f}); BD-rate is undefined")
    import bjontegaard

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package's small-overlap warning; see module docstring
        value = bjontegaard.bd_rate(ar, am, tr, tm, method=method, require_matching_points=False)
    return float(value)


def bd_metric(anchor_bpp: Sequence[float], anchor_metric: Sequence[float],
              test_bpp: Sequence[float], test_metric: Sequence[float], method: str = "pchip") -> float:
    """Average metric difference (dB) of ``test`` over ``anchor`` at equal rate.

    Positive means the test codec has higher quality at the same rate. The average is over the
    overlap of the two log-rate ranges.
    """
    _check_method(method)
    ar, am = _curve(anchor_bpp, anchor_metric, "anchor")
    tr, tm = _curve(test_bpp, test_metric, "test")
    _check_monotone(ar, am, "anchor", method)
    _check_monotone(tr, tm, "test", method)
    if _overlap(np.log10(ar), np.log10(tr)) <= 0:
        raise ValueError(f"the rate ranges do not overlap (anchor {ar.min():.4g}-{ar.max():.4g}, "
                         f"test {tr.min():.4g}-{tr.max():.4g}); BD-metric is undefined")
    import bjontegaard

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_psnr(ar, am, tr, tm, method=method, require_matching_points=False)
    return float(value)


def bd_psnr(anchor_bpp: Sequence[float], anchor_psnr: Sequence[float],
            test_bpp: Sequence[float], test_psnr: Sequence[float], method: str = "pchip") -> float:
    """BD-PSNR in dB: :func:`bd_metric` with PSNR (the same call works for MS-SSIM dB)."""
    return bd_metric(anchor_bpp, anchor_psnr, test_bpp, test_psnr, method=method)


def try_bd_rate(anchor_bpp, anchor_metric, test_bpp, test_metric,
                method: str = "pchip") -> tuple[float, str | None]:
    """:func:`bd_rate`, but ``(nan, reason)`` instead of raising when it is not computable."""
    try:
        return bd_rate(anchor_bpp, anchor_metric, test_bpp, test_metric, method=method), None
    except ValueError as exc:
        return math.nan, str(exc)


#: (phrase of a long reason, the few words a table cell shows instead), first match wins
_SHORT = (("do not overlap", "curves do not overlap"), ("barely overlap", "curves barely overlap"),
          ("differ by more than", "rates not comparable"), ("not strictly increasing", "curve not monotone"),
          ("does not increase", "curve not monotone"), ("usable (finite) points", "too few points"),
          ("non-positive rate", "rate not positive"), ("not available", "no anchor curve"),
          ("no result for", "not evaluated"), (" has no ", "metric not measured"))


def short_reason(reason: str | BaseException) -> str:
    """The few words a table cell shows for a BD value that cannot be computed (``n/a: <this>``)."""
    text = str(reason)
    for phrase, short in _SHORT:
        if phrase in text:
            return short
    return text.split(";")[0].split("\n")[0][:40]


MIN_OVERLAP = 0.5  # share of the shorter curve's metric range the other curve must cover


def comparability(anchor_bpp: Sequence[float], anchor_metric: Sequence[float],
                  test_bpp: Sequence[float], test_metric: Sequence[float]) -> str | None:
    """Why a BD value between these two curves would be noise rather than a result (None: comparable).

    A BD-rate integrates over the overlap of the two metric ranges; when that overlap is under
    :data:`MIN_OVERLAP` of the shorter curve's range, or when the curves' mean log-rates differ by more
    than the wider curve spans (two minutes-trained models landing at unrelated rates), the number
    describes the extrapolated ends of two cubics, not the codecs. Trained models' curves (the paper
    profile) pass; the default profile's smoke curves often do not."""
    ar, am = _curve(anchor_bpp, anchor_metric, "anchor")
    tr, tm = _curve(test_bpp, test_metric, "test")
    shorter = min(am.max() - am.min(), tm.max() - tm.min())
    if shorter > 0 and _overlap(am, tm) < MIN_OVERLAP * shorter:
        return (f"the curves barely overlap ({_overlap(am, tm):.2f} dB of a {shorter:.2f} dB range); "
                "BD-rate would extrapolate")
    la, lt = np.log10(ar), np.log10(tr)
    spread = max(la.max() - la.min(), lt.max() - lt.min())
    if abs(la.mean() - lt.mean()) > spread:
        return (f"the rates differ by more than their spread (mean log10 bpp {la.mean():.2f} vs {lt.mean():.2f}, "
                f"spread {spread:.2f})")
    return None
