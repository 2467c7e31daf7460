"""Opening an image file with its size checked from the header, before any pixel is decoded.

A dataset folder is untrusted input: one 10000×10000 JPEG takes ~4 GB to decode, and PIL's own
guard (``DecompressionBombError`` above ~179 Mpx) names no file. ``open_checked`` reads the
header, refuses an image over ``max_pixels()`` (``$REID_BENCH_MAX_PIXELS``, default
``DEFAULT_MAX_PIXELS``) and names the file in every error.
"""

from __future__ import annotations

import os
from typing import Any

from ..core.errors import DatasetError

ENV = "REID_BENCH_MAX_PIXELS"
# The largest images the suite reads are Oxford5k's (1024×768); re-ID crops are ~128×64.
DEFAULT_MAX_PIXELS = 40_000_000


def max_pixels() -> int:
    """The pixel limit: ``$REID_BENCH_MAX_PIXELS`` (a positive integer) or the default."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise DatasetError(f"${ENV}={raw!r}: expected a positive whole number of pixels, e.g. "
                           f"{ENV}={DEFAULT_MAX_PIXELS}")
    return value


def open_checked(path: str | os.PathLike) -> Any:
    """``PIL.Image.open(path)`` (header read, nothing decoded) after checking width × height
    against ``max_pixels()``; use it as a context manager. Raises DatasetError naming ``path``
    for an image over the limit, and for a file PIL cannot open."""
    from PIL import Image

    limit = max_pixels()
    # PIL's own check (inside open: a warning above ~89 Mpx, an error naming no file above
    # ~179 Mpx, a fixed limit) is replaced by ours below: every image the suite reads is opened
    # here. The same value from every thread, so data check's threads agree.
    Image.MAX_IMAGE_PIXELS = None
    try:
        im = Image.open(path)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from exc
    w, h = im.size
    if w * h > limit:
        im.close()
        raise DatasetError(f"{path}: image is {w}×{h} = {w * h} pixels, over the limit of "
                           f"{limit} (${ENV}); refused before decoding. Re-ID images are "
                           "small: this file is likely corrupt or not part of the dataset")
    return im
