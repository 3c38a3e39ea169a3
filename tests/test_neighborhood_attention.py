"""Pure-PyTorch neighborhood attention vs a naive per-pixel reference written from the definition
(spec tinylic.md §3.3: shifted edge windows, rpb indexed by relative offset)."""

from __future__ import annotations

import json

import pytest
import torch

from lic.layers.neighborhood_attention import NeighborhoodAttention, neighborhood_attention


def naive_na(q, k, v, ks, rpb):
    """Loop over pixels: NATTEN's ni/pi formulas verbatim (window clipped to the axis if L < k)."""
    B, h, H, W, d = q.shape
    r = ks // 2
    out = torch.zeros_like(q)
    for i in range(H):
        for j in range(W):
            if H >= ks:
                ni = max(i - r, 0) + (H - i - r - 1 if i + r >= H else 0)
                pi = r + (r - i if i < r else 0) + (H - i - 1 - r if i + r >= H else 0)
                rows = range(ni, ni + ks)
            else:  # extension: the whole axis, bias by relative offset
                ni, rows = 0, range(H)
                pi = ks - 1 - i
            if W >= ks:
                nj = max(j - r, 0) + (W - j - r - 1 if j + r >= W else 0)
                pj = r + (r - j if j < r else 0) + (W - j - 1 - r if j + r >= W else 0)
                cols = range(nj, nj + ks)
            else:
                nj, cols = 0, range(W)
                pj = ks - 1 - j
            logits, vals = [], []
            for a, ki in enumerate(rows):
                for b, kj in enumerate(cols):
                    assert ki - i + ks - 1 == pi + a and kj - j + ks - 1 == pj + b  # relative offset
                    logits.append((q[:, :, i, j] * k[:, :, ki, kj]).sum(-1) + rpb[:, pi + a, pj + b])
                    vals.append(v[:, :, ki, kj])
            attn = torch.stack(logits, -1).softmax(-1)  # (B, h, n)
            out[:, :, i, j] = (attn.unsqueeze(-1) * torch.stack(vals, -2)).sum(-2)
    return out


@pytest.mark.parametrize("H,W,ks", [(7, 7, 7), (9, 11, 7), (8, 5, 3), (3, 3, 3), (4, 6, 5),
                                    (5, 9, 7), (2, 2, 3), (1, 4, 3)])
def test_matches_naive_reference(H, W, ks):
    g = torch.Generator().manual_seed(H * 100 + W * 10 + ks)
    B, h, d = 2, 3, 4
    q, k, v = (torch.randn(B, h, H, W, d, generator=g) for _ in range(3))
    rpb = torch.randn(h, 2 * ks - 1, 2 * ks - 1, generator=g)
    ours = neighborhood_attention(q, k, v, ks, rpb)
    ref = naive_na(q, k, v, ks, rpb)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_row_chunking_is_exact(monkeypatch):
    import lic.layers.neighborhood_attention as na
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 10, 9, 4, generator=g) for _ in range(3))
    rpb = torch.randn(2, 5, 5, generator=g)
    full = neighborhood_attention(q, k, v, 3, rpb)
    monkeypatch.setattr(na, "_CHUNK_ELEMS", 2 * 9 * 4 * 9 * 3)  # 3 rows per chunk
    torch.testing.assert_close(neighborhood_attention(q, k, v, 3, rpb), full, atol=0, rtol=0)


def test_module_matches_reference_and_layout():
    torch.manual_seed(0)
    m = NeighborhoodAttention(dim=12, kernel_size=3, num_heads=3)
    assert tuple(m.rpb.shape) == (3, 5, 5) and m.scale == pytest.approx(0.5)
    assert {n for n, _ in m.named_parameters()} == {"qkv.weight", "qkv.bias", "rpb", "proj.weight",
                                                      "proj.bias"}
    x = torch.randn(2, 5, 4, 12)
    qkv = m.qkv(x).reshape(2, 5, 4, 3, 3, 4).permute(3, 0, 4, 1, 2, 5)  # [q|k|v] x head x hd
    ref = naive_na(qkv[0] * 0.5, qkv[1], qkv[2], 3, m.rpb)
    ref = m.proj(ref.permute(0, 2, 3, 1, 4).reshape(2, 5, 4, 12))
    torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-5)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 1, 4, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    rpb = torch.randn(1, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: neighborhood_attention(*t[:3], 3, t[3]), (q, k, v, rpb))


def test_module_trains_on_cpu():
    torch.manual_seed(0)
    m = NeighborhoodAttention(dim=8, kernel_size=3, num_heads=2)
    x = torch.randn(1, 6, 6, 8)
    m(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_even_kernel_rejected():
    with pytest.raises(ValueError):
        NeighborhoodAttention(dim=8, kernel_size=4, num_heads=2)


def test_edge_windows_are_shifted_inside_the_map():
    """A corner query of a 7×7 map with k=5 sees rows/cols 0..4, not a zero-padded window."""
    from lic.layers.neighborhood_attention import bias_indices, window_starts
    assert window_starts(7, 5).tolist() == [0, 0, 0, 1, 2, 2, 2]
    assert bias_indices(7, 5)[0].tolist() == [4, 5, 6, 7, 8]  # key − query + k − 1 for query 0
    assert bias_indices(7, 5)[6].tolist() == [0, 1, 2, 3, 4]  # last query: keys 2..6
    # only the key at distance 0 is large: every corner query must pick exactly its own value
    q = torch.zeros(1, 1, 7, 7, 1)
    k = torch.zeros(1, 1, 7, 7, 1)
    v = torch.arange(49.0).reshape(1, 1, 7, 7, 1)
    rpb = torch.full((1, 9, 9), -1e4)
    rpb[0, 4, 4] = 0.0
    out = neighborhood_attention(q, k, v, 5, rpb)
    torch.testing.assert_close(out, v)


def _natten_module_or_skip():
    from lic.bench_natten import NattenUnavailable, _load_natten
    try:
        return _load_natten("cuda" if torch.cuda.is_available() else "cpu")
    except NattenUnavailable as e:
        pytest.skip(str(e))


def test_natten_path_matches_pytorch_path():
    """natten's kernels (CUDA, or its CPU kernels) through the layer's own calls: same outputs."""
    na = _natten_module_or_skip()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 20, 17, 16, generator=g).to(device) for _ in range(3))
    rpb = torch.randn(4, 13, 13, generator=g).to(device)
    torch.testing.assert_close(na._na_natten(q, k, v, 7, rpb), na._na_torch(q, k, v, 7, rpb), atol=1e-4, rtol=1e-4)


def test_natten_ops_and_gradients_match_in_float64():
    na = _natten_module_or_skip()
    from lic.bench_natten import OP_CASES, _op_case
    for i, case in enumerate(OP_CASES):
        rec = _op_case(na, case, "cuda" if torch.cuda.is_available() else "cpu", i)
        assert rec["max_abs_diff_float64"] < 1e-10, rec
        assert max(rec["max_abs_grad_diff_float64"].values()) < 1e-10, rec


def test_natten_status_names_why_not():
    import lic.layers.neighborhood_attention as na
    status = na.natten_status()
    assert isinstance(status, str) and status
    if na._natten_f is None:
        assert "natten" in status and ("import" in status or "installed" in status)
    else:  # natten 0.17.5 imports this name, which torch 2.14 dropped: the layer provides it
        assert hasattr(torch.cuda, "_device_t")


def test_natten_absent_leaves_torch_alone(monkeypatch):
    import importlib.util

    import lic.layers.neighborhood_attention as na
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.delattr(torch.cuda, "_device_t", raising=False)
    assert na._import_natten() == (None, "natten is not installed")
    assert not hasattr(torch.cuda, "_device_t")


def test_natten_is_used_only_on_listed_device_types(monkeypatch):
    import lic.layers.neighborhood_attention as na
    q = torch.zeros(1, 1, 8, 8, 4)
    monkeypatch.setattr(na, "_natten_ops", lambda: (None, None))
    assert not na._natten_available(q, 7)  # cpu is not in NATTEN_DEVICE_TYPES
    monkeypatch.setattr(na, "NATTEN_DEVICE_TYPES", {"cuda", "cpu"})
    assert na._natten_available(q, 7)
    assert not na._natten_available(q, 9)  # a map smaller than the kernel: PyTorch path


def _window_ops():
    """natten's unfused op pair (qk -> logits over each query's window, av) written with the module's
    window rules: a stand-in that lets the check script's harness run where natten is not installed."""
    from lic.layers.neighborhood_attention import bias_indices, window_starts

    def windows(t, ks):
        B, h, H, W, d = t.shape
        kh, kw = min(ks, H), min(ks, W)
        rows = t.unfold(2, kh, 1).index_select(2, window_starts(H, ks))      # (B, h, H, W, d, kh)
        both = rows.unfold(3, kw, 1).index_select(3, window_starts(W, ks))    # (B, h, H, W, d, kh, kw)
        return both.reshape(B, h, H, W, d, kh * kw)

    def qk(q, k, rpb, ks):
        H, W = q.shape[2:4]
        bi, bj = bias_indices(H, ks), bias_indices(W, ks)
        bias = rpb[:, bi[:, None, :, None], bj[None, :, None, :]].reshape(rpb.shape[0], H, W, -1)
        return (q.unsqueeze(-2) @ windows(k, ks)).squeeze(-2) + bias

    def av(a, v, ks):
        return (a.unsqueeze(-2) @ windows(v, ks).transpose(-1, -2)).squeeze(-2)

    return qk, av


def test_natten_check_script_runs_and_detects_a_wrong_kernel(monkeypatch, tmp_path):
    """lic.bench_natten end to end with a stand-in for natten's ops: the record's structure, the model
    case (streams, cross decoding), and a deliberately wrong bias layout failing the run."""
    import lic.bench_natten as bn
    import lic.layers.neighborhood_attention as na

    qk, av = _window_ops()
    monkeypatch.setattr(na, "_natten_ops", lambda: (qk, av))
    monkeypatch.setattr(bn, "TIME_CASES", bn.TIME_CASES[-1:])
    monkeypatch.setattr(bn, "OP_CASES", bn.OP_CASES[:3])
    out = tmp_path / "natten.json"
    rec = bn.main(["--out", str(out), "--device", "cpu", "--model-size", "64", "--repeats", "1"])
    assert out.exists() and rec["float64_within_tolerance"] and rec["worst_float64_diff"] < 1e-12
    assert "cpu" not in na.NATTEN_DEVICE_TYPES  # restored after the run
    m = rec["model"]
    assert m["identical_streams"] and m["max_abs_diff_x_hat"] < 1e-4
    assert m["decodes_to_encoder_image"]["torch->torch"]["identical"]
    assert set(m["decodes_to_encoder_image"]) == {"natten->natten", "natten->torch", "torch->natten", "torch->torch"}
    assert rec["time"][0]["natten_ms"] > 0 and rec["time"][0]["torch_ms"] > 0

    # the bias transposed (rows <-> columns): only visible on non-square windows / biases
    monkeypatch.setattr(na, "_natten_ops", lambda: (lambda q, k, rpb, ks: qk(q, k, rpb.transpose(-1, -2), ks), av))
    monkeypatch.setattr(bn, "_model_case", lambda *a, **k: {})
    with pytest.raises(SystemExit) as e:
        bn.main(["--out", str(out), "--device", "cpu", "--repeats", "1"])
    assert e.value.code == 1
    assert json.loads(out.read_text())["float64_within_tolerance"] is False


def test_natten_check_script_says_why_natten_is_unusable(monkeypatch):
    import lic.bench_natten as bn
    import lic.layers.neighborhood_attention as na
    monkeypatch.setattr(na, "_natten_ops", lambda: None)
    with pytest.raises(SystemExit, match="natten's kernels are not usable here"):
        bn.main(["--device", "cpu"])
