"""Reading the images ``lic compress`` codes: any file Pillow opens, as (H, W, 3) uint8 RGB, within a pixel cap.

The cap (``max_pixels``, :data:`lic.limits.DEFAULT_MAX_PIXELS`, ``--max-pixels``) is checked on the size the
file declares, right after Pillow has read the header and before any pixel is decoded, so a small file that
declares a huge image (a decompression bomb) is refused without allocating it. Pillow's own bomb check is
then held to the same cap while the pixels are read (it also sizes GIF frames and ICO/ICNS sub-images), and
its ``DecompressionBombError`` becomes a one-line :class:`~lic.limits.LimitError` too.

Everything that changes the pixels the user sees in a viewer is said with a ``UserWarning`` (the CLI prints
each as one line): a conversion to RGB (grey, palette, CMYK, alpha dropped), a 16-bit image reduced to
8 bits, an EXIF orientation applied, and an animated or multi-page file of which only the first frame is
coded.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lic.limits import DEFAULT_MAX_PIXELS, LimitError, check_pixels

EXIF_ORIENTATION = 0x0112
_ORIENTATION_NAMES = {2: "mirrored", 3: "rotated 180°", 4: "flipped", 5: "transposed", 6: "rotated 90° clockwise",
                      7: "transversed", 8: "rotated 90° counter-clockwise"}


class ImageError(ValueError):
    """An input image cannot be read or used."""


@contextlib.contextmanager
def _pillow_cap():
    """Pillow's own bomb check switched off while the header is read (:func:`check_pixels` checks the
    declared size next, with its one-line message) and restored afterwards; :func:`_hold_pillow_to` then
    holds it to the cap for what Pillow sizes while decoding (GIF frames, ICO/ICNS sub-images)."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _hold_pillow_to(max_pixels: int) -> None:
    """Pillow raises above 2 x MAX_IMAGE_PIXELS: half the cap, rounded up (its warning is ignored)."""
    Image.MAX_IMAGE_PIXELS = (max_pixels + 1) // 2


def _sixteen_bit(im: Image.Image) -> bool:
    """Whether the file stores 16 bits per sample. Pillow opens 48/64-bit RGB(A) PNGs and TIFFs as 8-bit
    ``RGB``/``RGBA`` (keeping the high byte): only the decoder's raw mode says so."""
    if im.mode.startswith("I;16"):
        return True
    for tile in im.tile:
        args = tile[3]
        raw = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args
                                                  and isinstance(args[0], str) else "")
        if ";16" in raw:
            return True
    return False


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read any image Pillow can open as (H, W, 3) uint8 RGB, warning when it is converted.

    Raises :class:`~lic.limits.LimitError` if the declared size exceeds ``max_pixels`` (before decoding)
    and :class:`ImageError` if the file is not a readable image."""
    path = Path(path)
    name = path.name
    try:
        with _pillow_cap(), Image.open(path) as im:
            try:
                check_pixels(im.height, im.width, max_pixels)
            except LimitError as e:
                raise LimitError(f"{path}: {e}") from None
            _hold_pillow_to(max_pixels)
            frames = getattr(im, "n_frames", 1) if getattr(im, "is_animated", False) else 1
            if frames > 1:
                warnings.warn(f"{name}: animated or multi-page image ({frames} frames); only the first frame "
                              f"is coded", stacklevel=2)
            sixteen = _sixteen_bit(im)
            im.load()
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
            if orientation in _ORIENTATION_NAMES:
                warnings.warn(f"{name}: EXIF orientation {orientation} applied (the image is coded "
                              f"{_ORIENTATION_NAMES[orientation]}, as viewers show it)", stacklevel=2)
                im = ImageOps.exif_transpose(im)
            arr = _to_rgb8(im, name, sixteen)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except LimitError:
        raise
    except Image.DecompressionBombError as e:
        raise LimitError(f"{path}: image exceeds the limit of {max_pixels:,} pixels (--max-pixels): {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{path}: not a readable image ({e})") from e
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ImageError(f"{path}: unsupported image shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _to_rgb8(im: Image.Image, name: str, sixteen: bool) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        warnings.warn(f"{name}: 16-bit image converted to 8-bit RGB", stacklevel=3)
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(arr / peak * 255 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if sixteen:  # Pillow has already kept the high byte of each sample
        warnings.warn(f"{name}: 16-bit {mode} image converted to 8-bit RGB"
                      + (" (alpha dropped)" if "A" in mode else ""), stacklevel=3)
        return np.asarray(im.convert("RGB") if mode != "RGB" else im, dtype=np.uint8)
    if mode != "RGB":
        warnings.warn(f"{name}: {mode} image converted to RGB" + (" (alpha dropped)" if "A" in mode else ""),
                      stacklevel=3)
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)
