"""A parsed container checked against the model and checkpoint that will decode it.

:func:`check` runs before anything is allocated for the image and before any coder sees a byte of it.
Each field must be what this model and checkpoint can have written:

* model (key or id) and weights fingerprint: the checkpoint's;
* coder: one this decoder implements; channels: 3 (every model codes RGB files);
* quality: the checkpoint's (a variable-rate model: any, its rate is in the model's side information);
* image size: positive and within ``max_pixels`` (:func:`lic.limits.check_pixels`);
* padding: edge, or centred zeros to a multiple of the model's own (at most 4096);
* latent shape: exactly the model's ``bitstream_shape`` of the padded size (version 1 stores it; version 2
  does not, and the derived one is used);
* streams: the model's group layout (``bitstream_groups``: (min, max) streams per group, default one
  y and one z stream), each stream at most :data:`MAX_STREAM_BYTES_PER_PIXEL` x padded pixels (far above
  any real rate: raw RGB is 3 bytes a pixel), side information at most :data:`MAX_EXTRA_BYTES`.

Every model registers ``bitstream_shape(height, width)``: the ``shape`` its ``compress`` returns for a
padded ``height`` x ``width`` RGB input (:func:`lic.codec.encode` checks the two agree on every encode).
"""

from __future__ import annotations

from lic.entropy.container import CODER_COMPRESSAI_RANS, Bitstream, BitstreamError
from lic.limits import DEFAULT_MAX_PIXELS, check_pixels

MAX_STREAM_BYTES_PER_PIXEL = 32
MAX_EXTRA_BYTES = 4096
DEFAULT_GROUPS = ((1, 1), (1, 1))  # [y strings], [z strings], one image


def padded_size(model, height: int, width: int, multiple: int = 0) -> tuple[int, int]:
    """The padded frame of an image: to ``multiple`` (centred padding, a multiple of the model's) or, when 0,
    to the model's own ``pad_multiple``."""
    m = multiple or model.pad_multiple
    return -(-height // m) * m, -(-width // m) * m


def expected_shape(model, height: int, width: int, multiple: int = 0) -> tuple[int, ...]:
    """The latent shape ``model.compress`` stores for an image of ``height`` x ``width`` (before padding)."""
    return tuple(int(s) for s in model.bitstream_shape(*padded_size(model, height, width, multiple)))


def check(bs: Bitstream, loaded, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, ...]:
    """Raise :class:`BitstreamError` (or :class:`lic.limits.LimitError` for a size over the cap) unless every
    field of ``bs`` fits ``loaded`` (a :class:`lic.codec.LoadedModel`); return the latent shape to decode."""
    from lic.entropy.container import model_id

    if (bs.key is not None and bs.key != loaded.key) or bs.model_id != model_id(loaded.key):
        raise BitstreamError(f"bitstream was made by model {_name(bs)}, but the checkpoint is a {loaded.key!r}")
    if bs.fingerprint != loaded.fingerprint[:len(bs.fingerprint)]:
        raise BitstreamError(f"bitstream was made by another checkpoint of {loaded.key!r} (weights fingerprint "
                             f"{bs.fingerprint.hex()}, this checkpoint {loaded.fingerprint.hex()}); "
                             f"decode it with the checkpoint that encoded it")
    if bs.coder != CODER_COMPRESSAI_RANS:
        raise BitstreamError(f"bitstream uses entropy coder {bs.coder}, which this decoder does not implement")
    if bs.channels != 3:
        raise BitstreamError(f"bitstream declares {bs.channels} channels; lic files hold RGB images (3)")
    model = loaded.model
    if not hasattr(model, "set_lambda") and bs.quality != loaded.quality:
        raise BitstreamError(f"bitstream is quality {bs.quality}, but the checkpoint is quality {loaded.quality} "
                             f"of the same weights: the header is corrupted")
    check_pixels(bs.height, bs.width, max_pixels, what="decoded image")
    if bs.pad_multiple % model.pad_multiple:
        raise BitstreamError(f"corrupted bitstream: padding multiple {bs.pad_multiple} is not a multiple of "
                             f"{loaded.key}'s {model.pad_multiple}")
    shape = expected_shape(model, bs.height, bs.width, bs.pad_multiple)
    if bs.version == 1 and tuple(bs.shape) != shape:
        raise BitstreamError(f"corrupted bitstream: latent shape {tuple(bs.shape)} is not the {shape} that "
                             f"{loaded.key} derives from a {bs.width}x{bs.height} image")
    groups = getattr(model, "bitstream_groups", DEFAULT_GROUPS)
    counts = [len(g) for g in bs.streams]
    if len(counts) != len(groups) or any(not lo <= n <= hi for n, (lo, hi) in zip(counts, groups)):
        raise BitstreamError(f"corrupted bitstream: stream layout {counts} is not one {loaded.key} writes "
                             f"(per group, at least/at most: {[list(g) for g in groups]})")
    hp, wp = padded_size(model, bs.height, bs.width, bs.pad_multiple)
    limit = 64 + MAX_STREAM_BYTES_PER_PIXEL * hp * wp
    if bs.stream_bytes > limit:
        raise BitstreamError(f"corrupted bitstream: {bs.stream_bytes} bytes of streams for a {bs.width}x{bs.height} "
                             f"image (at most {limit})")
    if len(bs.extra) > MAX_EXTRA_BYTES:
        raise BitstreamError(f"corrupted bitstream: {len(bs.extra)} bytes of side information "
                             f"(at most {MAX_EXTRA_BYTES})")
    return shape


def _name(bs: Bitstream) -> str:
    if bs.key is not None:
        return repr(bs.key)
    from lic.models import registry

    key = registry.key_for_id(bs.model_id)
    return repr(key) if key is not None else f"id {bs.model_id:#06x} (not a model of this lic version)"
