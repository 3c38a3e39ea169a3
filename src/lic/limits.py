"""Resource limits shared by every path that reads untrusted input (images, bitstreams, checkpoints).

``DEFAULT_MAX_PIXELS`` caps the image size that ``lic compress`` reads and ``lic decompress`` writes
(``--max-pixels``): 2^28 pixels (about 268 megapixels, 16384 x 16384) is far above any real photograph
the papers evaluate (Tecnick 1200 x 1200, CLIC 2048 x 1365) while keeping a decoder's memory bounded by
the image size the user agreed to, never by a value in a file header.
"""

from __future__ import annotations

DEFAULT_MAX_PIXELS = 2 ** 28


class LimitError(ValueError):
    """An input exceeds a resource limit (one line: what, how large, the limit, and the option to raise it)."""


def check_pixels(height: int, width: int, max_pixels: int = DEFAULT_MAX_PIXELS, *, what: str = "image") -> None:
    """Raise :class:`LimitError` unless ``height`` x ``width`` is a positive size within ``max_pixels``."""
    if height < 1 or width < 1:
        raise LimitError(f"{what} size {width}x{height} is empty")
    if height * width > max_pixels:
        raise LimitError(f"{what} of {width}x{height} = {height * width:,} pixels exceeds the limit of "
                         f"{max_pixels:,} pixels (--max-pixels)")
