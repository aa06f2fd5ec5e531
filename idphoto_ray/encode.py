"""Pixels → JPEG/PNG bytes: sRGB-tagged, DPI written, never any EXIF/GPS, optional size cap.

Encoding always starts from a fresh `Image.fromarray`, so no metadata from the source photo can carry over.
A `max_kb` cap is met by searching JPEG quality (never by padding bytes, as some tools do to hit a size
exactly); when even the floor quality is too big the photo fails with MAX_KB_UNREACHABLE and says by how much.

Chroma subsampling: 4:4:4 at quality ≥ 90, 4:2:0 below. At high quality the aim is fidelity, and 4:2:0 halves
colour resolution exactly where ID photos are most sensitive: the hair/shoulder edge against a saturated
blue or red background, which shows a colour fringe. Below 90 the file is size-constrained, and spending the
bytes on luma detail instead of chroma gives the better-looking photo for the same size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image, ImageCms

from idphoto_ray.types import PhotoError, Reason

Format = Literal["jpeg", "png"]
FULL_CHROMA_QUALITY = 90
_SUBSAMPLING_444 = 0
_SUBSAMPLING_420 = 2
#: The profile header's creation date (ICC.1 §7.2.8: bytes 24–35, six big-endian uint16), fixed so that the
#: same photo encodes to the same bytes in every run; LittleCMS stamps the time it builds the profile.
PROFILE_DATE = (2024, 1, 1, 0, 0, 0)


@dataclass
class EncodedImage:
    """Encoded file bytes plus what was actually written (the quality chosen by the max_kb search)."""

    data: bytes
    format: Format
    quality: int | None
    width: int
    height: int


@lru_cache(maxsize=1)
def srgb_icc_profile() -> bytes:
    """The standard sRGB ICC profile (LittleCMS built-in), embedded so viewers and print shops don't guess.

    Its creation date is set to `PROFILE_DATE` (the profile ID stays unset, all zeros, which ICC allows)."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = b"".join(v.to_bytes(2, "big") for v in PROFILE_DATE)
    return bytes(data)


def encode_image(
    pixels: np.ndarray,
    fmt: Format = "jpeg",
    dpi: int = 300,
    quality: int = 95,
    max_kb: int | None = None,
    min_quality: int = 50,
) -> EncodedImage:
    """Encode HxWx3 (RGB) or HxWx4 (RGBA) uint8 pixels. RGBA always becomes PNG: JPEG has no alpha.

    max_kb is in KiB (1024 bytes). JPEG quality is searched in [min_quality, quality] for the highest that
    fits.
    """
    image = _to_image(pixels)
    if image.mode == "RGBA":
        fmt = "png"
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"unknown output format {fmt!r}; use 'jpeg' or 'png'")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    limit = None if max_kb is None else max_kb * 1024
    if fmt == "png":
        return _encode_png(image, dpi, limit)
    return _encode_jpeg_capped(image, dpi, quality, min(min_quality, quality), limit)


def _to_image(pixels: np.ndarray) -> Image.Image:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(f"expected HxWx3 or HxWx4 uint8 pixels, got {pixels.dtype} {pixels.shape}")
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ValueError(f"empty image {pixels.shape}")
    return Image.fromarray(np.ascontiguousarray(pixels), "RGBA" if pixels.shape[2] == 4 else "RGB")


def _encode_jpeg_capped(
    image: Image.Image, dpi: int, quality: int, floor: int, limit: int | None
) -> EncodedImage:
    """Highest quality in [floor, quality] whose file fits `limit` bytes (binary search; size grows with
    quality)."""
    first = _encode_jpeg(image, dpi, quality)
    if limit is None or len(first.data) <= limit:
        return first
    tried = {quality: first}
    best: EncodedImage | None = None
    lo, hi = floor, quality - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        tried[mid] = _encode_jpeg(image, dpi, mid)
        if len(tried[mid].data) <= limit:
            best, lo = tried[mid], mid + 1
        else:
            hi = mid - 1
    if best is not None:
        return best
    smallest = tried.get(floor) or _encode_jpeg(image, dpi, floor)
    raise PhotoError(
        Reason.MAX_KB_UNREACHABLE,
        f"{image.width}x{image.height} JPEG is {len(smallest.data) / 1024:.1f} KiB even at quality {floor} "
        f"(max_kb {limit // 1024}); lower min_jpeg_quality or raise max_kb",
    )


def _encode_jpeg(image: Image.Image, dpi: int, quality: int) -> EncodedImage:
    subsampling = _SUBSAMPLING_444 if quality >= FULL_CHROMA_QUALITY else _SUBSAMPLING_420
    data = _save(
        image,
        "JPEG",
        quality=quality,
        subsampling=subsampling,
        optimize=True,
        dpi=(dpi, dpi),
        icc_profile=srgb_icc_profile(),
    )
    return EncodedImage(data, "jpeg", quality, image.width, image.height)


def _encode_png(image: Image.Image, dpi: int, limit: int | None) -> EncodedImage:
    """PNG is lossless, so the only lever for a cap is compression effort; then it fails honestly."""
    data = _save(image, "PNG", dpi=(dpi, dpi), icc_profile=srgb_icc_profile())
    if limit is not None and len(data) > limit:
        data = _save(
            image, "PNG", dpi=(dpi, dpi), icc_profile=srgb_icc_profile(), compress_level=9, optimize=True
        )
        if len(data) > limit:
            raise PhotoError(
                Reason.MAX_KB_UNREACHABLE,
                f"{image.width}x{image.height} PNG is {len(data) / 1024:.1f} KiB at maximum compression "
                f"(max_kb {limit // 1024}); PNG is lossless, use jpeg output to meet a size cap",
            )
    return EncodedImage(data, "png", None, image.width, image.height)


def _save(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    try:
        image.save(buf, fmt, **params)
    except (OSError, ValueError) as exc:
        raise PhotoError(Reason.ENCODE_ERROR, f"{fmt} encoding failed: {exc}") from None
    return buf.getvalue()
