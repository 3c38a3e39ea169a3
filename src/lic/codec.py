"""Images to bitstream files and back, with any registered model and its checkpoint.

``encode`` pads the image to the model's multiple (edge replication), runs ``model.compress``,
wraps the streams in the container (:mod:`lic.entropy.container`) and also decodes them once, so the
encoder knows the exact reconstruction the decoder will produce. ``decode`` checks every header field
against this model and checkpoint (:mod:`lic.entropy.layout`) before anything is allocated, runs
``model.decompress`` on the bounds-checked rANS path (:mod:`lic.entropy.fast`: the same symbols as
CompressAI's decoder, which does not check its input) and crops.

Models whose streams carry their own CRC-32 prefix (HPCM's ``stream_crc``) keep it in the model's
format; a version-2 container stores that CRC once, as the stream's container checksum, and puts the
prefix back before decoding.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from lic.entropy import layout
from lic.entropy.container import FORMAT_VERSION, Bitstream, BitstreamError, parse
from lic.limits import DEFAULT_MAX_PIXELS
from lic.metrics import to_tensor, to_uint8
from lic.models import registry


class ImageError(ValueError):
    """An input image cannot be read or used."""


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not a lic checkpoint."""


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


@dataclass
class LoadedModel:
    model: torch.nn.Module
    key: str
    quality: int
    fingerprint: bytes
    record: dict

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
    try:
        record = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
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


def read_image(path: str | Path) -> np.ndarray:
    """Read any image Pillow can open as (H, W, 3) uint8 RGB, warning when it is converted."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                warnings.warn(f"{path.name}: 16-bit image converted to 8-bit RGB", stacklevel=2)
                arr = np.asarray(im, dtype=np.float64)
                peak = 65535.0 if arr.max() > 255 else 255.0
                arr = np.clip(arr / peak * 255 + 0.5, 0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=2)
            if mode != "RGB":
                warnings.warn(f"{path.name}: {mode} image converted to RGB"
                              + (" (alpha dropped)" if "A" in mode else ""), stacklevel=2)
                im = im.convert("RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: not a readable image ({e})") from e
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ImageError(f"{path}: unsupported image shape {arr.shape}")
    return np.ascontiguousarray(arr)


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


def pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (N, C, H, W) on the right and bottom to multiples of ``multiple`` by edge replication."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


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
def encode(loaded: LoadedModel, img: np.ndarray, *, estimate: bool = True, version: int = FORMAT_VERSION) -> Encoded:
    """Compress an (H, W, 3) uint8 image into container bytes (``version``: of the container; 1 for
    tests of the old format)."""
    model = loaded.model
    device = next(model.parameters()).device
    h, w = img.shape[:2]
    x = pad(to_tensor(img).to(device), loaded.pad_multiple)
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
    if shape != layout.expected_shape(model, h, w):  # the decoder derives it: a model bug, never the input's
        raise RuntimeError(f"{loaded.key}.compress stored latent shape {shape}, but its bitstream_shape gives "
                           f"{layout.expected_shape(model, h, w)}")
    extra = out.get("extra", b"")
    streams = [list(group) for group in out["strings"]]
    if version >= 2 and getattr(model, "stream_crc", False):
        streams = [[_unseal(s) for s in group] for group in streams]
    bs = Bitstream(key=loaded.key, quality=loaded.quality, fingerprint=loaded.fingerprint, height=h, width=w,
                   shape=shape, streams=streams, extra=extra, version=version)
    data = bs.to_bytes()
    if device.type == "cuda":
        torch.cuda.synchronize()
    enc_time = time.perf_counter() - t0
    # the encoder's reconstruction: the model's own exact decoder output when its compress returns one
    # (CGOO decodes every candidate to choose), else the streams decoded by this model
    recon = _to_image(loaded, out["x_hat"], h, w) if "x_hat" in out else _decode_streams(loaded, bs)
    bits, capped = estimate_bits(model, x) if estimate else (float("nan"), float("nan"))
    return Encoded(data, recon, bits, enc_time, capped, bs.payload_bytes)


def _unseal(s: bytes) -> bytes:
    """A model's CRC-prefixed stream without its prefix (the container keeps the CRC)."""
    if len(s) < 4 or struct.unpack(">I", s[:4])[0] != zlib.crc32(s[4:]):
        raise RuntimeError("a stream_crc model wrote a stream without a valid CRC-32 prefix")
    return s[4:]


def _model_streams(model, bs: Bitstream) -> list[list[bytes]]:
    if bs.version >= 2 and getattr(model, "stream_crc", False):
        return [[struct.pack(">I", zlib.crc32(s)) + s for s in group] for group in bs.streams]
    return bs.streams


def _decode_streams(loaded: LoadedModel, bs: Bitstream, shape: tuple[int, ...] | None = None) -> np.ndarray:
    kwargs = {"extra": bs.extra} if bs.extra else {}
    shape = bs.shape if shape is None else shape
    with fast_coder(loaded.model):
        out = loaded.model.decompress(_model_streams(loaded.model, bs), list(shape), **kwargs)
    return _to_image(loaded, out["x_hat"], bs.height, bs.width)


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


def _to_image(loaded: LoadedModel, x_hat: torch.Tensor, height: int, width: int) -> np.ndarray:
    if hasattr(loaded.model, "to_rgb"):
        x_hat = loaded.model.to_rgb(x_hat)
    return to_uint8(x_hat.clamp(0, 1)[..., :height, :width])


@torch.no_grad()
def decode(loaded: LoadedModel, data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode container bytes with ``loaded`` into an (H, W, 3) uint8 image. Every header field is checked
    against the model and checkpoint first (:func:`lic.entropy.layout.check`; ``max_pixels`` caps the image
    size, :class:`lic.limits.LimitError`); anything wrong is a one-line :class:`BitstreamError`."""
    bs = parse(data)
    shape = layout.check(bs, loaded, max_pixels)
    try:
        return _decode_streams(loaded, bs, shape)
    except BitstreamError:
        raise
    except Exception as e:  # a stream that passes its CRC but decodes to nonsense
        msg = " ".join(str(e).split())[:300]  # one line, whatever the model's message
        raise BitstreamError(f"corrupted bitstream: decoding failed ({type(e).__name__}: {msg})") from e
