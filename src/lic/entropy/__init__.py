"""Entropy coding: the bitstream container (and, later, the fast coding path)."""

from lic.entropy.container import Bitstream, BitstreamError, parse

__all__ = ["Bitstream", "BitstreamError", "parse"]
