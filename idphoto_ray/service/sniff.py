"""What an upload really is, from its first bytes, never from its name or its Content-Type.

Pillow opens dozens of formats, some through outside programs (EPS through Ghostscript), so the service
hands it only the formats the batch job reads (the extensions in `read.IMAGE_EXTENSIONS`), recognised by
their signatures.
"""

from __future__ import annotations

#: Signature checks → the extension the batch job lists the file under.
_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("jpg", b"\xff\xd8\xff", 0),
    ("png", b"\x89PNG\r\n\x1a\n", 0),
    ("gif", b"GIF87a", 0),
    ("gif", b"GIF89a", 0),
    ("bmp", b"BM", 0),
    ("tif", b"II*\x00", 0),
    ("tif", b"MM\x00*", 0),
)
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def sniff_image(data: bytes) -> str | None:
    """The image format's usual extension (jpg, png, webp, gif, bmp, tif, heic), or None."""
    for ext, magic, offset in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heic"
    return None


def is_zip(data: bytes) -> bool:
    return data[:4] in ZIP_SIGNATURES
