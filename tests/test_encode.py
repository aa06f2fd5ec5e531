import io

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin
from skimage import data

from idphoto_ray.encode import PROFILE_DATE, EncodedImage, encode_image, srgb_icc_profile
from idphoto_ray.types import PhotoError, Reason


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 1寸-sized crop of a real photo (295×413)."""
    return np.ascontiguousarray(data.astronaut()[40:453, 100:395])


def _open(enc: EncodedImage) -> Image.Image:
    return Image.open(io.BytesIO(enc.data))


def _assert_clean(enc: EncodedImage) -> None:
    im = _open(enc)
    assert len(im.getexif()) == 0 and "exif" not in im.info
    assert b"Exif\x00\x00" not in enc.data  # no APP1 EXIF segment, so no GPS IFD either


def test_jpeg_defaults(photo):
    enc = encode_image(photo)
    im = _open(enc)
    assert enc.format == "jpeg" and im.format == "JPEG" and enc.quality == 95
    assert (enc.width, enc.height) == im.size == (295, 413)
    assert im.info["dpi"] == (300, 300)
    assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4 at quality >= 90
    assert np.abs(np.asarray(im).astype(int) - photo.astype(int)).mean() < 3
    _assert_clean(enc)


def test_srgb_profile_embedded(photo):
    icc = _open(encode_image(photo)).info["icc_profile"]
    assert icc == srgb_icc_profile()
    desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    assert "sRGB" in desc


def test_source_exif_never_carries_over(photo):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    src = io.BytesIO()
    Image.fromarray(photo).save(src, "JPEG", exif=exif.tobytes())
    decoded = np.asarray(Image.open(src))
    for fmt in ("jpeg", "png"):
        enc = encode_image(decoded, fmt=fmt)
        _assert_clean(enc)
        assert b"PhoneMaker" not in enc.data


def test_dpi_from_spec(photo):
    enc = encode_image(photo, dpi=350)
    assert _open(enc).info["dpi"] == (350, 350)
    png = encode_image(photo, fmt="png", dpi=350)
    assert tuple(round(v) for v in _open(png).info["dpi"]) == (350, 350)


def test_png_and_rgba_forces_png(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:50, :, 3] = 0
    enc = encode_image(rgba, fmt="jpeg")
    im = _open(enc)
    assert enc.format == "png" and enc.quality is None and im.format == "PNG" and im.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(im), rgba)
    assert im.info["icc_profile"] == srgb_icc_profile()
    _assert_clean(enc)
    rgb_png = encode_image(photo, fmt="png")
    np.testing.assert_array_equal(np.asarray(_open(rgb_png)), photo)


def test_max_kb_is_honoured_with_the_highest_fitting_quality(photo):
    full = encode_image(photo)
    cap_kb = 20
    assert len(full.data) > cap_kb * 1024
    enc = encode_image(photo, max_kb=cap_kb)
    assert len(enc.data) <= cap_kb * 1024
    assert 50 <= enc.quality < 95
    one_up = encode_image(photo, quality=enc.quality + 1)
    assert len(one_up.data) > cap_kb * 1024  # the search did not stop early
    assert _open(enc).info["dpi"] == (300, 300)
    _assert_clean(enc)
    if enc.quality < 90:
        assert JpegImagePlugin.get_sampling(_open(enc)) == 2  # 4:2:0 when size-constrained


def test_max_kb_already_met_keeps_quality(photo):
    enc = encode_image(photo, max_kb=1000)
    assert enc.quality == 95 and enc.data == encode_image(photo).data


def test_max_kb_unreachable_says_sizes(photo):
    with pytest.raises(PhotoError) as info:
        encode_image(photo, max_kb=2, min_quality=60)
    assert info.value.reason == Reason.MAX_KB_UNREACHABLE
    assert (
        "quality 60" in info.value.message
        and "KiB" in info.value.message
        and "max_kb 2" in info.value.message
    )


def test_png_max_kb_unreachable(photo):
    with pytest.raises(PhotoError) as info:
        encode_image(photo, fmt="png", max_kb=10)
    assert info.value.reason == Reason.MAX_KB_UNREACHABLE and "PNG" in info.value.message
    assert len(encode_image(photo, fmt="png", max_kb=2000).data) <= 2000 * 1024


def test_never_pads(photo):
    flat = np.full((413, 295, 3), 255, np.uint8)
    enc = encode_image(flat, max_kb=100)
    assert len(enc.data) < 10 * 1024 and enc.data.endswith(b"\xff\xd9")


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 3), np.float32)]
)
def test_bad_arrays_are_caller_errors(bad):
    with pytest.raises(ValueError):
        encode_image(bad)


def test_the_embedded_profile_carries_a_fixed_date_so_runs_encode_the_same_bytes():
    """LittleCMS stamps the profile with the time it builds it: without the fixed date, the same photo gave
    different bytes in every run (two date bytes of the header)."""
    icc = srgb_icc_profile()
    header_date = tuple(int.from_bytes(icc[i : i + 2], "big") for i in range(24, 36, 2))
    assert header_date == PROFILE_DATE
    assert icc[84:100] == bytes(16)  # profile ID unset: a changed header leaves no stale checksum
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
