import io
import random
import struct
import zlib

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin
from skimage import data

from idphoto_ray.decode import DecodedImage, decode_image
from idphoto_ray.types import PhotoError, Reason


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _reason(payload: bytes, **kw) -> Reason:
    with pytest.raises(PhotoError) as info:
        decode_image(payload, **kw)
    return info.value.reason


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height; only the header is real, as in a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_rgb_jpeg_small_image_is_not_upscaled(astronaut):
    d = decode_image(_save(Image.fromarray(astronaut), "PNG"), long_side=1600)
    assert isinstance(d, DecodedImage)
    assert d.rgb.shape == (512, 512, 3) and d.rgb.dtype == np.uint8
    assert d.scale == 1.0 and d.original_size == (512, 512)
    assert d.format == "PNG" and d.mode == "RGB"
    np.testing.assert_array_equal(d.rgb, astronaut)


def test_downscale_to_long_side_and_scale(astronaut):
    wide = Image.fromarray(astronaut).resize((1000, 600))
    d = decode_image(_save(wide, "PNG"), long_side=500)
    assert d.rgb.shape == (300, 500, 3)
    assert d.original_size == (1000, 600) and d.scale == pytest.approx(0.5)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_matches_exif_transpose(astronaut, orientation):
    src = Image.fromarray(astronaut[:, :400])  # non-square so 90° turns are visible in the shape
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = _save(src, "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(payload))).convert("RGB"))
    d = decode_image(payload)
    np.testing.assert_array_equal(d.rgb, expected)
    assert d.original_size == (expected.shape[1], expected.shape[0])


def test_rotated_exif_jpeg_decodes_like_the_upright_one(astronaut):
    upright = Image.fromarray(astronaut).resize((640, 480))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewer must turn it 90° clockwise
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    a = decode_image(_save(upright, "JPEG", quality=95), long_side=320)
    b = decode_image(_save(stored, "JPEG", quality=95, exif=exif.tobytes()), long_side=320)
    assert a.rgb.shape == b.rgb.shape == (240, 320, 3)
    assert a.original_size == b.original_size == (640, 480)
    diff = np.abs(a.rgb.astype(int) - b.rgb.astype(int))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 16


def test_large_jpeg_uses_draft_dct_scaling(astronaut, monkeypatch):
    big = _save(Image.fromarray(astronaut).resize((4000, 3000)), "JPEG", quality=90)
    requested = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original_draft(self, mode, size)
        requested.append((size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    d = decode_image(big, long_side=1600)
    assert d.rgb.shape == (1200, 1600, 3) and d.scale == pytest.approx(0.4)
    assert requested == [((1600, 1200), (2000, 1500))]  # libjpeg decoded at 1/2 scale, never the full 12 MP

    # Speed is measured in benchmarks, not asserted in unit tests (wall clock flakes on shared cores).


def test_only_jpeg_is_decoded_at_reduced_scale(astronaut):
    im = Image.fromarray(astronaut).resize((1024, 768))
    jpeg = decode_image(_save(im, "JPEG"), long_side=800, cover=256)
    assert jpeg.reduced and min(jpeg.rgb.shape[:2]) < 600
    for fmt in ("PNG", "TIFF"):  # no reduced decode: the working image comes back, to be kept
        other = decode_image(_save(im, fmt), long_side=800, cover=256)
        assert not other.reduced and other.rgb.shape == (600, 800, 3)
    assert not decode_image(_save(im, "JPEG"), long_side=800).reduced
    for payload in (b"not an image", b""):
        with pytest.raises(PhotoError):
            decode_image(payload, cover=256)


@pytest.mark.parametrize(
    "size, orientation", [((4000, 3000), 1), ((3000, 4000), 1), ((4000, 3000), 6), ((300, 200), 1)]
)
def test_cover_decodes_just_enough_for_a_square_model_input(astronaut, size, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = _save(Image.fromarray(astronaut).resize(size), "JPEG", quality=90, exif=exif.tobytes())
    full = decode_image(payload, long_side=1600)
    small = decode_image(payload, long_side=1600, cover=256)
    assert small.reduced and not full.reduced
    assert small.original_size == full.original_size
    h, w = small.rgb.shape[:2]
    assert (h > w) == (full.rgb.shape[0] > full.rgb.shape[1])  # same orientation as the working image
    if min(size) >= 256:
        assert min(h, w) >= 256 and min(h, w) <= 257
        assert max(h, w) / min(h, w) == pytest.approx(max(size) / min(size), rel=0.01)
    else:
        assert (w, h) == size  # never upscaled
    with pytest.raises(ValueError, match="cover"):
        decode_image(payload, cover=0)


def test_cmyk_jpeg_including_adobe_inverted(astronaut):
    payload = _save(Image.fromarray(astronaut).convert("CMYK"), "JPEG", quality=95)
    assert b"Adobe" in payload  # Pillow writes Adobe APP14 with inverted CMYK
    d = decode_image(payload)
    assert d.mode == "CMYK" and d.rgb.shape == (512, 512, 3)
    assert np.abs(d.rgb.astype(int) - astronaut.astype(int)).mean() < 6


def test_palette_with_transparency_is_composited_on_white(astronaut):
    im = Image.fromarray(astronaut).quantize(64)
    d = decode_image(_save(im, "PNG", transparency=int(np.asarray(im)[0, 0])))
    assert d.mode == "P"
    assert tuple(d.rgb[0, 0]) == (255, 255, 255)


def test_palette_without_transparency(astronaut):
    im = Image.fromarray(astronaut).quantize(64)
    d = decode_image(_save(im, "GIF"))
    np.testing.assert_array_equal(d.rgb, np.asarray(im.convert("RGB")))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_grey(astronaut, fmt):
    grey = Image.fromarray(astronaut).convert("L")
    d = decode_image(_save(grey, fmt))
    assert d.mode == "L" and d.rgb.shape == (512, 512, 3)
    assert np.array_equal(d.rgb[..., 0], d.rgb[..., 2])
    assert np.abs(d.rgb[..., 0].astype(int) - np.asarray(grey).astype(int)).mean() < 3  # JPEG q75


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(astronaut, mode):
    rgba = np.dstack([astronaut, np.zeros(astronaut.shape[:2], np.uint8)])
    rgba[:256, :, 3] = 255
    rgba[256:300, :, 3] = 128
    im = Image.fromarray(rgba, "RGBA").convert(mode)
    d = decode_image(_save(im, "PNG"))
    assert d.mode == mode
    top = np.asarray(im.convert("RGB"))[:256]
    np.testing.assert_array_equal(d.rgb[:256], top)
    assert (d.rgb[300:] == 255).all()  # fully transparent → white, not the hidden colour
    half = np.asarray(im.convert("RGBA"), dtype=float)[256:300]
    expected = half[..., :3] * half[..., 3:] / 255 + 255 * (1 - half[..., 3:] / 255)
    assert np.abs(d.rgb[256:300] - expected).max() <= 1


def test_16bit_png_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 256 * 64).reshape(64, 256).astype(np.uint16)
    im = Image.fromarray(ramp)
    assert im.mode == "I;16"
    d = decode_image(_save(im, "PNG"))
    assert d.mode.startswith("I;16")
    grey = d.rgb[..., 0].astype(int)
    assert grey.min() == 0 and grey.max() == 255
    np.testing.assert_allclose(grey, np.round(ramp / 257), atol=1)
    assert len(np.unique(grey)) > 200  # a clip at 255 would leave a flat white image


def test_32bit_int_tiff():
    ramp = np.linspace(0, 65535, 128 * 64).reshape(64, 128).astype(np.int32)
    d = decode_image(_save(Image.fromarray(ramp, "I"), "TIFF"))
    assert d.mode == "I"
    np.testing.assert_allclose(d.rgb[..., 0].astype(int), np.round(ramp / 257), atol=1)


@pytest.mark.parametrize("top, expect_max", [(1.0, 255), (5000.0, 255)])
def test_32bit_float_tiff(top, expect_max):
    ramp = np.linspace(0, top, 128 * 64, dtype=np.float32).reshape(64, 128)
    d = decode_image(_save(Image.fromarray(ramp, "F"), "TIFF"))
    grey = d.rgb[..., 0].astype(int)
    assert d.mode == "F" and grey.min() == 0 and grey.max() == expect_max
    assert np.all(np.diff(grey, axis=1) >= 0)  # monotone ramp survives


def test_heic(astronaut):
    payload = _save(Image.fromarray(astronaut[:, :400]), "HEIF", quality=90)
    d = decode_image(payload)
    assert d.format == "HEIF" and d.rgb.shape == (512, 400, 3)
    assert np.abs(d.rgb.astype(int) - astronaut[:, :400].astype(int)).mean() < 6


def test_heic_with_orientation_is_upright(astronaut):
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(astronaut[:, :400]).transpose(Image.Transpose.ROTATE_90)  # 512 wide, 400 tall
    d = decode_image(_save(stored, "HEIF", quality=90, exif=exif.tobytes()))
    assert d.rgb.shape == (512, 400, 3) and d.original_size == (400, 512)
    assert np.abs(d.rgb.astype(int) - astronaut[:, :400].astype(int)).mean() < 8


def test_truncated_jpeg_is_decode_error(astronaut):
    payload = _save(Image.fromarray(astronaut), "JPEG")
    assert _reason(payload[: len(payload) // 2]) == Reason.DECODE_ERROR
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("payload", [b"", b"hello, not an image", bytes(random.Random(1).randbytes(4096))])
def test_not_an_image(payload):
    assert _reason(payload) == Reason.NOT_AN_IMAGE


def test_pixel_guard_runs_on_the_header_before_decoding(monkeypatch):
    payload = _png_header_only(9000, 9000)  # 81 MP: over our 80 MP default, under Pillow's own limit
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels decoded before the guard")
    )
    assert _reason(payload) == Reason.TOO_LARGE


def test_pillow_bomb_error_is_too_large():
    assert _reason(_png_header_only(100_000, 100_000), max_pixels=10**12) == Reason.TOO_LARGE


def test_guard_is_configurable(astronaut):
    payload = _save(Image.fromarray(astronaut), "PNG")
    assert _reason(payload, max_pixels=512 * 511) == Reason.TOO_LARGE
    assert decode_image(payload, max_pixels=512 * 512).rgb.shape == (512, 512, 3)


def test_unsupported_mode():
    im = Image.frombytes("LAB", (16, 16), bytes(16 * 16 * 3))
    payload = _save(im, "TIFF")
    assert _reason(payload) == Reason.UNSUPPORTED_MODE


def test_fuzzed_jpegs_only_decode_or_fail_typed(astronaut):
    good = _save(Image.fromarray(astronaut).resize((256, 256)), "JPEG", quality=85)
    rng = random.Random(1234)
    outcomes = set()
    for _ in range(50):
        buf = bytearray(good)
        for _ in range(rng.randint(1, 20)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        if rng.random() < 0.3:
            buf = buf[: rng.randrange(len(buf))]
        try:
            d = decode_image(bytes(buf))
        except PhotoError as exc:
            outcomes.add(exc.reason)
        else:
            assert d.rgb.dtype == np.uint8 and d.rgb.ndim == 3 and d.rgb.shape[2] == 3
            outcomes.add("ok")
    assert outcomes <= {"ok", Reason.DECODE_ERROR, Reason.NOT_AN_IMAGE, Reason.TOO_LARGE}
    assert Reason.DECODE_ERROR in outcomes


def test_heif_opener_registered():
    assert "HEIF" in Image.registered_extensions().values()
    assert pillow_heif.__version__
