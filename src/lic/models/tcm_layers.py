"""Building blocks of TCM (Liu, Sun, Katto, CVPR 2023): window attention, the Swin block, the
mixed transformer-CNN block (ConvTransBlock) and the Swin-attention module of the entropy model
(SWAtten).

Written from the project's specification (``shared/specs/tcm-cgoo.md`` §1.2-1.3), which describes
the official code jmliu206/LIC_TCM@6c6d7a3. Attribute names follow the official state_dict scheme
(spec §1.7) so that the released checkpoints load: ``msa.embedding_layer``,
``msa.relative_position_params``, ``msa.linear``, ``ln1``/``ln2``, ``mlp.{0,2}``, ``conv1_1``,
``conv1_2``, ``conv_block.conv{1,2}``, ``trans_block``, ``non_local_block.block_{1,2}``,
``in_conv``/``out_conv``. No buffer is persistent (the official key list has none in these
modules); the relative-position index and the shifted-window mask are recomputed or cached.

Shapes: WMSA/Block take NHWC tensors; SwinBlock, ConvTransBlock and SWAtten take NCHW tensors.
"""

from __future__ import annotations

import torch
from compressai.layers import AttentionBlock, ResidualBlock, conv1x1
from torch import nn

__all__ = ["WMSA", "Block", "ConvTransBlock", "SwinBlock", "SWAtten", "DropPath"]


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (per sample); identity at rate 0 or in eval mode.
    TCM's defaults use rate 0, so this never acts there."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class WMSA(nn.Module):
    """(Shifted-)window multi-head self-attention on an NHWC tensor (spec §1.3).

    ``type='W'``: plain windows; ``'SW'``: the input is rolled by ``-(p//2)`` on H and W first,
    attention across the wrap-around seam is masked, and the result is rolled back.

    The qkv projection's output channels are read as ``3·heads`` consecutive groups of ``head_dim``
    channels (q of every head, then k, then v): this grouping is what the released weights expect.
    The relative-position table is stored as (heads, 2p-1, 2p-1).
    """

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int, type: str):
        super().__init__()
        if type not in ("W", "SW"):
            raise ValueError(f"WMSA type must be 'W' or 'SW', got {type!r}")
        if input_dim % head_dim:
            raise ValueError(f"input_dim {input_dim} is not a multiple of head_dim {head_dim}")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.head_dim = head_dim
        self.n_heads = input_dim // head_dim
        self.scale = head_dim ** -0.5
        self.window_size = window_size
        self.type = type
        p = window_size
        self.embedding_layer = nn.Linear(input_dim, 3 * input_dim, bias=True)
        # Initialised like the official code: a truncated normal (std .02) drawn as ((2p-1)², heads)
        # and then stored as (heads, 2p-1, 2p-1).
        table = torch.zeros((2 * p - 1) ** 2, self.n_heads)
        nn.init.trunc_normal_(table, std=0.02)
        self.relative_position_params = nn.Parameter(
            table.view(2 * p - 1, 2 * p - 1, self.n_heads).transpose(1, 2).transpose(0, 1).contiguous())
        self.linear = nn.Linear(input_dim, output_dim)
        cord = torch.stack(torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij"), -1).view(-1, 2)
        relation = cord[:, None, :] - cord[None, :, :] + (p - 1)  # (p², p², 2)
        self.register_buffer("_rel_index", relation, persistent=False)
        self._mask_cache: dict = {}

    def relative_bias(self) -> torch.Tensor:
        """(heads, p², p²): bias[h, a, b] = params[h, Δrow(a,b)+p-1, Δcol(a,b)+p-1]."""
        r = self._rel_index
        return self.relative_position_params[:, r[..., 0], r[..., 1]]

    def shift_mask(self, hw: int, ww: int, device) -> torch.Tensor:
        """Boolean (hw·ww, p², p²) mask, True where a query may not attend to a key (the tokens of
        the last window row/column that came from opposite sides of the cyclic shift)."""
        key = (hw, ww, str(device))
        mask = self._mask_cache.get(key)
        if mask is None:
            p = self.window_size
            s = p - p // 2
            m = torch.zeros(hw, ww, p, p, p, p, dtype=torch.bool, device=device)
            m[-1, :, :s, :, s:, :] = True
            m[-1, :, s:, :, :s, :] = True
            m[:, -1, :, :s, :, s:] = True
            m[:, -1, :, s:, :, :s] = True
            mask = m.reshape(hw * ww, p * p, p * p)
            self._mask_cache[key] = mask
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        p = self.window_size
        if h % p or w % p:
            raise ValueError(f"window attention needs H and W divisible by the window {p}, got {h}x{w} "
                             "(TCM inputs must be multiples of 128 and at least 256 per side)")
        half = p // 2
        if self.type == "SW":
            x = torch.roll(x, shifts=(-half, -half), dims=(1, 2))
        hw, ww = h // p, w // p
        nw, n = hw * ww, p * p
        x = x.reshape(b, hw, p, ww, p, c).permute(0, 1, 3, 2, 4, 5).reshape(b, nw, n, c)
        qkv = self.embedding_layer(x).view(b, nw, n, 3 * self.n_heads, self.head_dim)
        qkv = qkv.permute(3, 0, 1, 2, 4)  # (3·heads, b, nw, n, head_dim)
        q, k, v = qkv.chunk(3, dim=0)      # each (heads, b, nw, n, head_dim)
        sim = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        sim = sim + self.relative_bias()[:, None, None]
        if self.type == "SW":
            sim = sim.masked_fill(self.shift_mask(hw, ww, x.device)[None, None], float("-inf"))
        out = torch.matmul(sim.softmax(dim=-1), v)  # (heads, b, nw, n, head_dim)
        out = out.permute(1, 2, 3, 0, 4).reshape(b, nw, n, self.n_heads * self.head_dim)
        out = self.linear(out)
        co = out.shape[-1]
        out = out.view(b, hw, ww, p, p, co).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, co)
        if self.type == "SW":
            out = torch.roll(out, shifts=(half, half), dims=(1, 2))
        return out


class Block(nn.Module):
    """Pre-norm Swin transformer block on NHWC: x += DP(WMSA(LN1 x)); x += DP(MLP(LN2 x)),
    MLP = Linear(d, 4d), GELU, Linear(4d, d)."""

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int,
                 drop_path: float = 0.0, type: str = "W"):
        super().__init__()
        if input_dim != output_dim:
            raise ValueError("Block needs input_dim == output_dim (residual connections)")
        self.ln1 = nn.LayerNorm(input_dim)
        self.msa = WMSA(input_dim, input_dim, head_dim, window_size, type)
        self.drop_path = DropPath(drop_path)
        self.ln2 = nn.LayerNorm(input_dim)
        self.mlp = nn.Sequential(nn.Linear(input_dim, 4 * input_dim), nn.GELU(),
                                 nn.Linear(4 * input_dim, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.msa(self.ln1(x)))
        return x + self.drop_path(self.mlp(self.ln2(x)))


class ConvTransBlock(nn.Module):
    """The TCM block on ``conv_dim + trans_dim`` channels (NCHW), spec §1.3:

    t = conv1_1(x) split into a CNN half and a transformer half; the CNN half goes through a
    ResidualBlock **and** gets its input added once more (the official double identity, kept);
    the transformer half goes through a (S)W-MSA Block; out = x + conv1_2(concat).
    """

    def __init__(self, conv_dim: int, trans_dim: int, head_dim: int, window_size: int,
                 drop_path: float = 0.0, type: str = "W"):
        super().__init__()
        self.conv_dim, self.trans_dim = conv_dim, trans_dim
        c = conv_dim + trans_dim
        self.trans_block = Block(trans_dim, trans_dim, head_dim, window_size, drop_path, type)
        self.conv1_1 = nn.Conv2d(c, c, 1, 1, 0, bias=True)
        self.conv1_2 = nn.Conv2d(c, c, 1, 1, 0, bias=True)
        self.conv_block = ResidualBlock(conv_dim, conv_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv_x, trans_x = torch.split(self.conv1_1(x), (self.conv_dim, self.trans_dim), dim=1)
        conv_x = self.conv_block(conv_x) + conv_x  # double identity (official quirk)
        trans_x = self.trans_block(trans_x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.conv1_2(torch.cat((conv_x, trans_x), dim=1))


class SwinBlock(nn.Module):
    """A W block then an SW block, on NCHW.

    The official padding branch for maps no larger than the window (pad to p+1, never cropped) is
    not reproduced: it cannot run in the official code either (p+1 is not divisible by p), so a
    clear error is raised by :class:`WMSA` instead; TCM pads its inputs to at least 256 px.
    """

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int,
                 drop_path: float = 0.0):
        super().__init__()
        self.block_1 = Block(input_dim, output_dim, head_dim, window_size, drop_path, "W")
        self.block_2 = Block(input_dim, output_dim, head_dim, window_size, drop_path, "SW")
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.permute(0, 2, 3, 1)
        t = self.block_2(self.block_1(t))
        return t.permute(0, 3, 1, 2)


class SWAtten(AttentionBlock):
    """Swin-attention module of the entropy model (spec §1.3), channel-squeezed to ``inter_dim``:
    x = in_conv(x); out = conv_a(x)·sigmoid(conv_b(SwinBlock(x))) + x; return out_conv(out).

    Subclasses CompressAI's ``AttentionBlock(inter_dim)`` for ``conv_a``/``conv_b``, as the official
    code does, so the keys are ``conv_a.{0,1,2}.conv.{0,2,4}``, ``conv_b.{0,1,2}.conv.{0,2,4}``,
    ``conv_b.3``.
    """

    def __init__(self, input_dim: int, output_dim: int, head_dim: int = 16, window_size: int = 8,
                 drop_path: float = 0.0, inter_dim: int = 128):
        super().__init__(N=inter_dim)
        self.non_local_block = SwinBlock(inter_dim, inter_dim, head_dim, window_size, drop_path)
        self.in_conv = conv1x1(input_dim, inter_dim)
        self.out_conv = conv1x1(inter_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        identity = x
        z = self.non_local_block(x)
        a = self.conv_a(x)
        b = self.conv_b(z)
        out = a * torch.sigmoid(b) + identity
        return self.out_conv(out)

