"""Parameter and MAC counting against numbers worked out by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lic.complexity import (TOOL, complexity_record, count_macs, count_params, kmacs_per_pixel,
                            macs_by_module)


def _small_net():
    # 1x3x16x16 -> conv3x3(3->8, pad 1) -> ReLU -> conv1x1(8->4, stride 2) -> 4x8x8 -> flatten -> linear(256->10)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1, stride=2),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def test_conv_linear_net_by_hand():
    net = _small_net()
    # MACs = output elements x multiplies per output element (biases and ReLU not counted):
    #   conv3x3: 16*16 outputs x 8 ch x (3 in x 3 x 3) = 256 * 8 * 27 = 55296
    #   conv1x1 s2: 8*8 x 4 ch x 8 in               =  64 * 4 * 8  =  2048
    #   linear: 10 outputs x 256 inputs                             =  2560
    #   total 59904 MACs over 16*16 = 256 pixels -> 0.234 kMACs/pixel
    count = count_macs(net, 16, 16)
    assert count.macs == 59904
    assert count.by_module == {"": 59904, "0": 55296, "2": 2048, "4": 2560}
    assert kmacs_per_pixel(net, 16, 16) == 59904 / 256 / 1000
    assert macs_by_module(net, 16, 16) == {"": 59904, "0": 55296, "2": 2048, "4": 2560}
    # params: conv 8*3*9 + 8 = 224; conv 4*8 + 4 = 36; linear 256*10 + 10 = 2570
    assert count_params(net) == 224 + 36 + 2570


def test_non_square_input_uses_h_times_w():
    net = nn.Conv2d(3, 5, 1)  # 15 MACs per pixel
    assert count_macs(net, 8, 24).macs == 8 * 24 * 15
    assert kmacs_per_pixel(net, 8, 24) == 15 / 1000


class TwoHeadAttention(nn.Module):
    """Tokens = pixels; linear 3 -> 48 gives q, k, v of 2 heads x 8 dims; softmax(q k^T) v via SDPA."""

    def __init__(self, v_dim: int = 8, kv_heads: int = 2):
        super().__init__()
        self.v_dim, self.kv_heads = v_dim, kv_heads
        self.qk = nn.Linear(3, 2 * 8 + kv_heads * 8, bias=False)
        self.v = nn.Linear(3, kv_heads * v_dim, bias=False)

    def forward(self, x):
        b, _, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, L, 3)
        qk = self.qk(t)
        q = qk[..., :16].reshape(b, h * w, 2, 8).transpose(1, 2)
        k = qk[..., 16:].reshape(b, h * w, self.kv_heads, 8).transpose(1, 2)
        v = self.v(t).reshape(b, h * w, self.kv_heads, self.v_dim).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=self.kv_heads != 2)


def test_cpu_sdpa_is_counted():
    # 8x8 input -> L = S = 64 tokens, 2 heads, E = Ev = 8 (takes the CPU flash kernel, which
    # FlopCounterMode alone counts as 0).
    #   projections: 64 tokens x 3 in x (32 + 16) out = 9216
    #   Q K^T: B*H*L*S*E = 1*2*64*64*8 = 65536;  A V: 1*2*64*64*8 = 65536
    count = count_macs(TwoHeadAttention(), 8, 8)
    assert count.by_op["aten._scaled_dot_product_flash_attention_for_cpu"] == 131072
    assert count.macs == 9216 + 131072


def test_sdpa_math_fallback_is_not_counted_twice():
    # Ev = 4 != E = 8 sends CPU SDPA to the math path (bmm ops the counter sees by itself).
    #   projections: 64 x 3 x (32 + 8) = 7680;  Q K^T: 2*64*64*8 = 65536;  A V: 2*64*64*4 = 32768
    count = count_macs(TwoHeadAttention(v_dim=4), 8, 8)
    assert count.macs == 7680 + 65536 + 32768


def test_grouped_query_attention_counts_query_heads():
    # 2 query heads share 1 kv head: work is per query head.
    #   projections: 64 x 3 x (16 + 8 + 8) = 6144;  Q K^T + A V: 2 * (2*64*64*8) = 131072
    count = count_macs(TwoHeadAttention(kv_heads=1), 8, 8)
    assert count.macs == 6144 + 131072


class MHA(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 32, 1)
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        return self.mha(t, t, t, need_weights=False)[0]


def test_multihead_attention_fast_path_matches_hand_count():
    # 4x4 input -> 16 tokens of 32 dims.
    #   embed conv1x1: 16 x 3 x 32 = 1536
    #   in-projections q, k, v: 3 x 16 x 32 x 32 = 49152; out-projection 16 x 32 x 32 = 16384
    #   attention over 4 heads of 8: Q K^T 16*16*32 = 8192, A V 8192
    expected = 1536 + 49152 + 16384 + 8192 + 8192
    model = MHA().eval()
    fast = count_macs(model, 4, 4)
    assert "aten._native_multi_head_attention" in fast.by_op  # eval + no_grad takes the fused path
    assert fast.macs == expected

    def slow(m, x):  # training mode disables the fused path (dropout is 0, so same maths)
        m.train()
        return m(x)

    assert count_macs(model, 4, 4, fn=slow).macs == expected
    assert not model.training  # count_macs restores the mode it found (eval here)


def test_fn_profiles_another_path_with_module_names():
    net = _small_net()
    count = count_macs(net, 16, 16, fn=lambda m, x: m[0](x))  # only the first conv, called directly
    assert count.macs == 55296
    assert count.by_module == {"0": 55296}


@pytest.mark.filterwarnings("ignore::FutureWarning")  # compressai's torch.jit.script use
def test_mean_scale_hyperprior_parameter_count():
    from compressai.models import MeanScaleHyperprior

    # N = 128, M = 192; conv = 5x5 stride-2 Conv2d, deconv = 5x5 ConvTranspose2d (weights k*k*in*out + out biases);
    # GDN(C) has beta (C) + gamma (C x C).
    #   g_a: conv(3,N) 9600+128 | conv(N,N) x2: 409600+128 each | conv(N,M) 614400+192 | 3 GDN: 3*(128+16384)
    #        = 9728 + 819456 + 614592 + 49536 = 1,493,312
    #   g_s: deconv(M,N) 614400+128 | deconv(N,N) x2 = 819456 | deconv(N,3) 9600+3 | 3 IGDN 49536
    #        = 614528 + 819456 + 9603 + 49536 = 1,493,123
    #   h_a: conv3x3 s1 (M,N) 192*128*9+128 = 221312 | conv(N,N) x2 = 819456          = 1,040,768
    #   h_s: deconv(N,M) 614400+192 = 614592 | deconv(M, 3M/2=288) 192*288*25+288 = 1382688
    #        | conv3x3 s1 (288, 2M=384) 288*384*9+384 = 995712                          = 2,992,992
    #   entropy_bottleneck(N), filters (3,3,3,3) -> per channel: matrices 3+9+9+9+3 = 33,
    #        biases 3+3+3+3+1 = 13, factors 3+3+3+3 = 12, quantiles 3 -> 61 x 128        =     7,808
    #   gaussian_conditional: buffers only                                                      0
    #   total = 1493312 + 1493123 + 1040768 + 2992992 + 7808 = 7,028,003
    model = MeanScaleHyperprior(N=128, M=192)
    assert count_params(model) == 7_028_003


def test_complexity_record_fields():
    rec = complexity_record("toy", _small_net(), 16, 16)
    assert rec["key"] == "toy" and rec["params"] == 2830 and rec["macs"] == 59904
    assert rec["kmacs_per_pixel"] == 59904 / 256 / 1000
    assert rec["input"] == "1x3x16x16" and rec["path"] == "forward" and rec["tool"] == TOOL
    assert rec["kmacs_per_pixel_by_module"] == {"0": 55296 / 256 / 1000, "2": 2048 / 256 / 1000,
                                                "4": 2560 / 256 / 1000}

    def decoder_only(m, x):
        return m[4](torch.zeros(1, 256))

    assert complexity_record("toy", _small_net(), 16, 16, fn=decoder_only)["path"] == "decoder_only"


def test_training_mode_restored_per_module():
    net = _small_net().train()
    net[2].eval()  # e.g. a frozen part
    count_macs(net, 16, 16)
    assert net.training and net[0].training and not net[2].training


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_mean_scale_hyperprior_analysis_transform_macs():
    from compressai.models import MeanScaleHyperprior

    # g_a on 256x256 (kMACs per input pixel = MACs / 65536 / 1000); a 5x5 stride-2 conv (in -> out)
    # costs (output pixels) x in x out x 25, GDN(C) one 1x1 conv C x C at its resolution:
    #   conv(3,128)   -> 128^2: 16384*3*128*25       / 65536 / 1000                2.400
    #   GDN 128^2:       16384*128*128               / 65536 / 1000                4.096
    #   conv(128,128) -> 64^2:  4096*128*128*25      / 65536 / 1000               25.600
    #   GDN 64^2:                                                                    1.024
    #   conv(128,128) -> 32^2:  1024*128*128*25      / 65536 / 1000                6.400
    #   GDN 32^2:                                                                    0.256
    #   conv(128,192) -> 16^2:   256*128*192*25      / 65536 / 1000                2.400
    #   total                                                                       42.176
    model = MeanScaleHyperprior(N=128, M=192)
    rec = complexity_record("minnen2018-mean", model)
    assert rec["kmacs_per_pixel_by_module"]["g_a"] == pytest.approx(42.176, abs=1e-9)
    assert rec["kmacs_per_pixel_by_module"]["g_s"] == pytest.approx(42.176, abs=1e-9)  # mirror image
    assert rec["input"] == "1x3x256x256"
