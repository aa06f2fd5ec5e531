"""Sample photos built from portraits that ship in installed packages (scikit-image's astronaut).

Used by `idphoto-ray demo`, the end-to-end tests and the benchmark, so every machine can run them offline.
Each sample's name says what it exercises and the expected outcome.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def astronaut(scale: float = 1.0) -> np.ndarray:
    """scikit-image's 512² portrait, optionally enlarged to a phone-like resolution."""
    from skimage import data

    img = data.astronaut()
    if scale == 1.0:
        return img
    side = int(round(img.shape[0] * scale))
    return np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.LANCZOS))


def jpeg_bytes(img: Image.Image, quality: int = 92, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _on_background(
    base: np.ndarray, rgb: tuple[int, int, int], scale: float, aspect: float = 1.0
) -> Image.Image:
    """The portrait scaled and placed on a larger plain canvas (width/height = aspect), like a photo from
    further away."""
    h, w = base.shape[:2]
    small = Image.fromarray(base).resize((int(w * scale), int(h * scale)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (int(h * 1.25 * aspect), int(h * 1.25)), rgb)
    canvas.paste(small, ((canvas.width - small.width) // 2, canvas.height - small.height))
    return canvas


def portrait_3x4(base: np.ndarray) -> Image.Image:
    """The good path: the portrait framed 3:4 upright, as a camera held in portrait orientation takes it.

    The source is square with a flag and a shuttle model beside the subject; a 3:4 frame keeps the whole
    height (room above the hair, shoulders to the bottom edge) and trims the sides to 75 %, centred on the
    face (x ≈ 0.48 of the width), which drops most of the flag and the shuttle's edge at the shoulder.
    """
    h, w = base.shape[:2]
    width = h * 3 // 4
    left = round(0.48 * w - width / 2)
    return Image.fromarray(base[:, left : left + width])


def sample_files() -> dict[str, bytes]:
    """name → file bytes. Names: <case>.<ext>.

    The portrait is enlarged 2.5× (1280 px) so inter-eye distance reaches ICAO's 90 px like a phone photo;
    `small/low_resolution.jpg` keeps a deliberately tiny one.
    """
    base = astronaut(2.5)
    upright = Image.fromarray(base)
    files: dict[str, bytes] = {}
    files["portrait/upright.jpg"] = jpeg_bytes(upright)
    files["portrait/high_quality.png"] = _png(upright)
    files["portrait/rotated_10deg.jpg"] = jpeg_bytes(
        upright.rotate(10, resample=Image.Resampling.BICUBIC, fillcolor=(90, 90, 90))
    )
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; viewers rotate 90° clockwise to show it upright
    files["phone/exif_rotated.jpg"] = jpeg_bytes(
        upright.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes()
    )
    files["phone/cmyk.jpg"] = jpeg_bytes(upright.convert("CMYK"))
    rgba = upright.convert("RGBA")
    rgba.putalpha(255)
    files["phone/alpha.png"] = _png(rgba)
    files["phone/grey.jpg"] = jpeg_bytes(upright.convert("L"))
    files["phone/large_4000x3000.jpg"] = jpeg_bytes(
        _on_background(base, (200, 210, 220), 1.0, aspect=4 / 3).resize(
            (4000, 3000), Image.Resampling.BICUBIC
        ),
        quality=90,
    )
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        buf = io.BytesIO()
        upright.save(buf, format="HEIF", quality=90)
        files["phone/photo.heic"] = buf.getvalue()
    except (ImportError, OSError, KeyError, ValueError):
        pass
    files["backgrounds/red_wall.jpg"] = jpeg_bytes(_on_background(base, (200, 20, 20), 0.8))
    files["backgrounds/green_wall.jpg"] = jpeg_bytes(_on_background(base, (40, 160, 60), 0.8))
    files["good/ok_portrait_3x4.jpg"] = jpeg_bytes(portrait_3x4(base))
    files["small/low_resolution.jpg"] = jpeg_bytes(upright.resize((200, 200), Image.Resampling.LANCZOS))
    head = Image.fromarray(astronaut()).crop(
        (130, 20, 320, 330)
    )  # two people side by side, heads a realistic size in the frame
    two = Image.new("RGB", (head.width * 2, head.height))
    two.paste(head, (0, 0))
    two.paste(head.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (head.width, 0))
    files["bad/two_faces.jpg"] = jpeg_bytes(two)
    from skimage import data

    files["bad/no_face_coffee.jpg"] = jpeg_bytes(Image.fromarray(data.coffee()))
    good = files["portrait/upright.jpg"]
    files["bad/truncated.jpg"] = good[: len(good) // 3]
    files["bad/not_an_image.jpg"] = b"this is a text file with a .jpg name\n" * 20
    files["bad/empty.png"] = b""
    return files


def write_samples(folder: str | Path) -> list[Path]:
    """Write the sample set into a folder (subfolders kept) and return the paths."""
    root = Path(folder)
    written = []
    for name, data in sample_files().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written
