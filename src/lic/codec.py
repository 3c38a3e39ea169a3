"""Images to bitstream files and back, with any registered model and its checkpoint.

``encode`` pads the image to the model's multiple (edge replication, right and bottom; or, under the
authors' evaluation protocol, centred zeros: :class:`Padding`), runs ``model.compress``, wraps the
streams in the container (:mod:`lic.entropy.container`) and also decodes them once, so the encoder
knows the exact reconstruction the decoder will produce. ``decode`` checks every header field against
this model and checkpoint (:mod:`lic.entropy.layout`) before anything is allocated, runs
``model.decompress`` on the bounds-checked rANS path (:mod:`lic.entropy.fast`: the same symbols as
CompressAI's decoder, which does not check its input) and crops where the loaded model's padding put
the image.

Models whose streams carry their own CRC-32 prefix (HPCM's ``stream_crc``) keep it in the model's
format; a version-2 container stores that CRC once, as the stream's container checksum, and puts the
prefix back before decoding.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lic.checkpoints import CheckpointError
from lic.checkpoints import load as load_record
from lic.entropy import layout
from lic.entropy.container import FORMAT_VERSION, Bitstream, BitstreamError, parse
from lic.images import ImageError, read_image  # noqa: F401  (codec.read_image / codec.ImageError: the API)
from lic.limits import DEFAULT_MAX_PIXELS
from lic.metrics import to_tensor, to_uint8
from lic.models import registry


def state_fingerprint(state_dict: dict) -> bytes:
    """First 8 bytes of a sha256 over the weights (names, shapes, dtypes and bytes), order-independent."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        if not torch.is_tensor(t):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()[:8]


@dataclass(frozen=True)
class Padding:
    """How an image is filled up to a multiple before coding, and so where the decoder crops it from.

    ``edge`` (the pipeline's): replicate the last row and column, right and bottom; the image sits at
    the top left. ``centre-zeros`` (the authors' evaluation scripts, ``lic evaluate --protocol authors``):
    zeros around the image, split evenly (the odd pixel right / bottom), to ``multiple`` (None: the
    model's). The container records it (:mod:`lic.entropy.container`, version 2), so any decoder crops
    the right pixels."""

    mode: str = "edge"
    multiple: int | None = None

    def __post_init__(self):
        if self.mode not in ("edge", "centre-zeros"):
            raise ValueError(f"padding mode must be 'edge' or 'centre-zeros', not {self.mode!r}")
        if self.multiple is not None and self.mode == "edge":
            raise ValueError("edge padding is to the model's own multiple (the container derives the frame from it)")
        if self.multiple is not None and (self.multiple < 1 or self.multiple & (self.multiple - 1)):
            raise ValueError(f"padding multiple must be a power of 2, not {self.multiple}")

    def offsets(self, height: int, width: int, model_multiple: int) -> tuple[int, int]:
        """(top, left) of a ``height × width`` image inside its padded frame."""
        if self.mode == "edge":
            return 0, 0
        m = self.multiple or model_multiple
        return ((-height) % m) // 2, ((-width) % m) // 2


EDGE = Padding()


@dataclass
class LoadedModel:
    model: torch.nn.Module
    key: str
    quality: int
    fingerprint: bytes
    record: dict
    padding: Padding = EDGE  # how encode pads (decode follows the container's record of it)

    @property
    def pad_multiple(self) -> int:
        return self.model.pad_multiple


def load_checkpoint(path: str | Path, device: str = "cpu", *, as_key: str | None = None,
                    kwargs: dict | None = None) -> LoadedModel:
    """Rebuild the model of a checkpoint record (``model``, ``kwargs``, ``state_dict``, ...).

    ``as_key``/``kwargs``: build another registered model (an encoder-side variant, e.g. CGOO without
    online optimisation) with these kwargs and load the record's weights into it; the weights'
    fingerprint is unchanged, so the decoder of the original model decodes its streams too."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    from lic import placeholder

    if placeholder.is_placeholder(path):
        note = placeholder.read(path)
        raise CheckpointError(f"{path} is a placeholder: quality {note['quality']} of {note['model']} is not trained "
                              f"by profile {note['profile']!r} (train.{note['profile']}.active_qualities)")
    record = load_record(path, map_location=device)  # weights only: no code in the file runs
    if not isinstance(record, dict) or not {"model", "kwargs", "state_dict"} <= set(record):
        raise CheckpointError(f"{path} is not a lic checkpoint (needs model, kwargs, state_dict)")
    if as_key is not None:
        record = {**record, "model": as_key, "kwargs": record["kwargs"] if kwargs is None else kwargs}
    model = registry.build(record["model"], **record["kwargs"])
    model.load_state_dict(record["state_dict"])
    model.to(device).eval()
    if not record.get("updated", False):
        model.update(force=True)  # an intermediate (training) checkpoint: build the CDF tables now
    fp = record.get("fingerprint") or state_fingerprint(model.state_dict())
    quality = record.get("quality", 0)
    quality = quality if isinstance(quality, int) else 0  # 0: the shared initialisation ("base")
    return LoadedModel(model, record["model"], quality, bytes(fp), record)


def image_format(path: str | Path) -> str:
    """Pillow's format name for ``path``'s extension (``.png`` -> ``PNG``), or :class:`ImageError`."""
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise ImageError(f"{path}: cannot tell the image format from the extension {suffix or '(none)'!r}; "
                         f"name the output .png")
    return fmt


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Write ``img`` atomically (:mod:`lic.atomic`): complete, or not at all and no temporary file left."""
    from lic import atomic

    fmt = image_format(path)
    with atomic.atomic_file(path) as f:
        Image.fromarray(img).save(f, format=fmt)


def pad(x: torch.Tensor, multiple: int, padding: Padding = EDGE) -> torch.Tensor:
    """Pad (N, C, H, W) to multiples of ``multiple`` (``padding.multiple`` when set): by edge
    replication on the right and bottom, or with zeros centred around the image (the authors' scripts:
    ``(W' - w) // 2`` columns left, the rest right; rows likewise)."""
    multiple = padding.multiple or multiple
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if padding.mode == "edge":
        return F.pad(x, (0, pw, 0, ph), mode="replicate")
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="constant", value=0.0)


@dataclass
class Encoded:
    data: bytes
    reconstruction: np.ndarray  # what the decoder will output, (H, W, 3) uint8
    bits_estimated: float       # -log2 likelihoods of the model's forward, over the padded image
    encoding_time: float
    bits_capped: float = float("nan")  # the part of bits_estimated at the likelihood bound
    payload_bytes: int = 0      # the coded streams and the model's extra bytes: the file minus the container


LIKELIHOOD_BOUND = 1e-9  # CompressAI's likelihood lower bound: a symbol can cost at most ~29.9 bits


@torch.no_grad()
def estimate_bits(model: torch.nn.Module, x_padded: torch.Tensor) -> tuple[float, float]:
    """(bits, capped_bits): -log2 of the likelihoods of an eval-mode forward, and the part of them
    spent on symbols whose likelihood sits at the lower bound. The entropy coder codes such outliers
    with escape codes, far cheaper than the capped ~30 bits, so a model with many of them (an
    under-trained one) writes files smaller than its estimate.

    ``x_padded`` is the model's own input: for Y / YUV 4:2:0 models already through ``from_rgb``
    (what :func:`encode` compressed), never converted a second time here."""
    out = model(x_padded)
    bits = capped = 0.0
    for lk in out["likelihoods"].values():
        b = -torch.log2(lk)
        bits += float(b.sum())
        capped += float(b[lk <= LIKELIHOOD_BOUND * 1.001].sum())
    return bits, capped


@torch.no_grad()
def encode(loaded: LoadedModel, img: np.ndarray, *, estimate: bool = True,
           padding: Padding | None = None, version: int = FORMAT_VERSION) -> Encoded:
    """Compress an (H, W, 3) uint8 image into container bytes. ``padding``: instead of
    ``loaded.padding`` (decode the stream with a model loaded with the same padding); ``version``: of
    the container (1 for tests of the old format)."""
    model = loaded.model
    padding = loaded.padding if padding is None else padding
    _check_padding(loaded, padding)
    device = next(model.parameters()).device
    h, w = img.shape[:2]
    x = pad(to_tensor(img).to(device), loaded.pad_multiple, padding)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    if hasattr(model, "from_rgb"):  # Y / YUV 4:2:0 models: their own representation of the padded image
        x = model.from_rgb(x)
    if hasattr(model, "compress_with_size"):  # encoder decisions on the image, not the padding (MSR)
        out = model.compress_with_size(x, (h, w))
    else:
        out = model.compress(x)
    shape = tuple(int(s) for s in out["shape"])
    pad_multiple = 0 if padding.mode == "edge" else (padding.multiple or loaded.pad_multiple)
    expected = layout.expected_shape(model, h, w, pad_multiple)
    if shape != expected:  # the decoder derives it: a model bug, never the input's
        raise RuntimeError(f"{loaded.key}.compress stored latent shape {shape}, but its bitstream_shape gives "
                           f"{expected}")
    extra = out.get("extra", b"")
    streams = [list(group) for group in out["strings"]]
    if version >= 2 and getattr(model, "stream_crc", False):
        streams = [[_unseal(s) for s in group] for group in streams]
    bs = Bitstream(key=loaded.key, quality=loaded.quality, fingerprint=loaded.fingerprint, height=h, width=w,
                   shape=shape, streams=streams, extra=extra, version=version, pad_multiple=pad_multiple)
    data = bs.to_bytes()
    if device.type == "cuda":
        torch.cuda.synchronize()
    enc_time = time.perf_counter() - t0
    # the encoder's reconstruction: the model's own exact decoder output when its compress returns one
    # (CGOO decodes every candidate to choose), else the streams decoded by this model
    recon = (_to_image(loaded, out["x_hat"], h, w, padding) if "x_hat" in out
             else _decode_streams(loaded, bs, padding=padding))
    bits, capped = estimate_bits(model, x) if estimate else (float("nan"), float("nan"))
    return Encoded(data, recon, bits, enc_time, capped, bs.payload_bytes)


def _check_padding(loaded: LoadedModel, padding: Padding) -> None:
    if padding.mode == "edge":
        return
    if padding.multiple is not None and padding.multiple % loaded.pad_multiple:
        raise ValueError(f"padding multiple {padding.multiple} is not a multiple of {loaded.key}'s "
                         f"{loaded.pad_multiple}")
    if hasattr(loaded.model, "compress_with_size"):  # its decisions read the image at the top left
        raise ValueError(f"{loaded.key} decides on the image at the top left of its padded frame: "
                         f"centred padding does not apply to it")


def _unseal(s: bytes) -> bytes:
    """A model's CRC-prefixed stream without its prefix (the container keeps the CRC)."""
    if len(s) < 4 or struct.unpack(">I", s[:4])[0] != zlib.crc32(s[4:]):
        raise RuntimeError("a stream_crc model wrote a stream without a valid CRC-32 prefix")
    return s[4:]


def _model_streams(model, bs: Bitstream) -> list[list[bytes]]:
    if bs.version >= 2 and getattr(model, "stream_crc", False):
        return [[struct.pack(">I", zlib.crc32(s)) + s for s in group] for group in bs.streams]
    return bs.streams


def _decode_streams(loaded: LoadedModel, bs: Bitstream, shape: tuple[int, ...] | None = None,
                    padding: Padding | None = None) -> np.ndarray:
    kwargs = {"extra": bs.extra} if bs.extra else {}
    shape = bs.shape if shape is None else shape
    with fast_coder(loaded.model):
        out = loaded.model.decompress(_model_streams(loaded.model, bs), list(shape), **kwargs)
    return _to_image(loaded, out["x_hat"], bs.height, bs.width, padding)


@contextlib.contextmanager
def fast_coder(model: torch.nn.Module):
    """Decode on the bounds-checked rANS path (:mod:`lic.entropy.fast`) whatever ``entropy_coder`` the
    model was built with: both paths decode the same symbols from valid streams, and only this one is
    safe on a damaged or hostile stream (CompressAI's C++ decoder reads past the end of one)."""
    saved = [(m, m.entropy_coder_name) for m in model.modules() if hasattr(m, "entropy_coder_name")]
    try:
        for m, _ in saved:
            m.entropy_coder_name = "fast"
        yield model
    finally:
        for m, name in saved:
            m.entropy_coder_name = name


def _to_image(loaded: LoadedModel, x_hat: torch.Tensor, height: int, width: int,
              padding: Padding | None = None) -> np.ndarray:
    """The decoded frame cropped to the image: at the top left (edge padding; a model's own extra
    padding is right / bottom too), or where centred padding put it."""
    if hasattr(loaded.model, "to_rgb"):
        x_hat = loaded.model.to_rgb(x_hat)
    top, left = (loaded.padding if padding is None else padding).offsets(height, width, loaded.pad_multiple)
    return to_uint8(x_hat.clamp(0, 1)[..., top:top + height, left:left + width])


@torch.no_grad()
def decode(loaded: LoadedModel, data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode container bytes with ``loaded`` into an (H, W, 3) uint8 image. Every header field is checked
    against the model and checkpoint first (:func:`lic.entropy.layout.check`; ``max_pixels``, the largest
    image the caller accepts, ``--max-pixels``, caps the image size: :class:`lic.limits.LimitError`);
    anything wrong is a one-line :class:`BitstreamError`."""
    bs = parse(data)
    shape = layout.check(bs, loaded, max_pixels)
    try:
        padding = Padding("centre-zeros", bs.pad_multiple) if bs.pad_multiple else EDGE  # the header's
        return _decode_streams(loaded, bs, shape, padding)
    except BitstreamError:
        raise
    except Exception as e:  # a stream that passes its CRC but decodes to nonsense
        msg = " ".join(str(e).split())[:300]  # one line, whatever the model's message
        raise BitstreamError(f"corrupted bitstream: decoding failed ({type(e).__name__}: {msg})") from e
