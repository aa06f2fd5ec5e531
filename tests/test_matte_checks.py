"""Matte checks on synthetic outputs: a clean head, a backdrop island, a backdrop band, a fringe, a flat
crown."""

from __future__ import annotations

import numpy as np

from idphoto_ray import matte_checks as mc

H, W = 400, 300
SKIN = np.array([200.0, 150.0, 120.0])
BACKDROP = np.array([30.0, 60.0, 220.0])


def _head() -> tuple[np.ndarray, np.ndarray]:
    """A round head on shoulders over a blue backdrop, its outline a 4-px ramp as a refined matte's is:
    (rgb, alpha), rgb the composite of skin over the backdrop."""
    yy, xx = np.mgrid[:H, :W]
    rho = np.sqrt(((yy - 175) / 130.0) ** 2 + ((xx - 150) / 85.0) ** 2)
    alpha = np.clip(0.5 + (1.0 - rho) * 85.0 / 4.0, 0.0, 1.0)
    alpha = np.maximum(alpha, (yy >= 300)).astype(np.float32)
    rgb = alpha[..., None] * SKIN + (1.0 - alpha[..., None]) * BACKDROP
    return rgb.astype(np.float32), alpha


def _decontaminated(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The foreground a perfect decontamination gives: skin wherever the matte is not empty."""
    return np.where(alpha[..., None] > 0.0, SKIN, rgb).astype(np.float32)


def _flags(rgb: np.ndarray, alpha: np.ndarray, fg: np.ndarray | None = None) -> tuple[dict, list[str]]:
    fg = _decontaminated(rgb, alpha) if fg is None else fg
    return mc.matte_flags(rgb, alpha, fg, (80.0, 220.0), 60.0, 160.0, 260.0)


def test_clean_output_raises_no_flag():
    rgb, alpha = _head()
    metrics, flags = _flags(rgb, alpha)
    assert flags == [], metrics
    assert metrics["remnant_share"] == 0.0 and metrics["halo"] < 1e-6
    assert metrics["crown_hard_edge"] == 0.0


def test_hard_edged_piece_on_the_crown_is_a_background_remnant():
    """Devset img55: an opaque, hair-dark block of the backdrop stuck on the crown, its edge cut hard where
    hair's is soft. Attached and dark, so neither the island nor the translucent-band test sees it."""
    rgb, alpha = _head()
    alpha[38:50, 130:150] = 1.0  # 12 × 20 px block standing on the crown (top of the head at y = 45)
    metrics, flags = _flags(rgb, alpha, _decontaminated(rgb, alpha) * 0.2)
    assert metrics["remnant_share"] <= mc.MAX_REMNANT_SHARE and metrics["soft_band"] == 0.0, metrics
    assert metrics["crown_hard_edge"] > mc.MAX_CROWN_HARD_EDGE, metrics
    assert mc.BACKGROUND_REMNANT in flags


def test_hard_edge_below_the_eyes_is_not_counted():
    """The shoulders' straight top and clothes meet the frame below the eyes; only the crown is asked."""
    _, alpha = _head()
    alpha[250:300, :] = 1.0
    assert mc.crown_hard_edge(alpha, 160.0, 140.0) == 0.0
    assert mc.crown_hard_edge(alpha, 300.0, 140.0) > mc.MAX_CROWN_HARD_EDGE


def test_detached_island_is_a_background_remnant():
    rgb, alpha = _head()
    alpha[20:50, 240:290] = 1.0  # 1500 px = 1.25 % of the frame
    metrics, flags = _flags(rgb, alpha)
    assert mc.BACKGROUND_REMNANT in flags
    assert metrics["remnant_share"] >= 1500 / alpha.size


def test_backdrop_band_attached_to_the_head_is_a_background_remnant():
    rgb, alpha = _head()
    band = np.zeros_like(alpha, dtype=bool)
    band[120:260, 225:245] = True  # a strip of backdrop beside the ear, called person
    alpha[band] = 1.0
    metrics, flags = _flags(rgb, alpha)
    assert mc.BACKGROUND_REMNANT in flags, metrics


def test_backdrop_coloured_edge_is_a_halo():
    rgb, alpha = _head()
    fg = _decontaminated(rgb, alpha)
    from idphoto_ray.matte_metrics import edge_band

    ring = edge_band(alpha, 2) & (alpha > 0.5)
    fg[ring] = BACKDROP  # the edge pixels keep the old blue
    metrics, flags = _flags(rgb, alpha, fg)
    assert mc.HALO in flags, metrics
    assert mc.BACKGROUND_REMNANT not in flags


def test_flat_crown_is_uncertain():
    rgb, alpha = _head()
    alpha[:100, :] = 0.0  # head cut straight across at row 100
    flat = mc.crown_flat_share(alpha, 80.0, 220.0)
    assert flat > mc.MAX_FLAT_CROWN_SHARE
    assert mc.crown_flat_share(_head()[1], 80.0, 220.0) < mc.MAX_FLAT_CROWN_SHARE
    _, flags = _flags(rgb, alpha)
    assert mc.CROWN_UNCERTAIN in flags


def test_crown_disagreeing_with_face_size_is_uncertain():
    rgb, alpha = _head()
    _, flags = mc.matte_flags(rgb, alpha, rgb, (80.0, 220.0), 150.0, 160.0, 260.0)  # crown at the eyebrows
    assert mc.CROWN_UNCERTAIN in flags


def test_object_beside_the_head_is_a_background_remnant():
    """A coffee cup the segmenter kept, attached to the cheek: not backdrop-coloured, but where hair rarely
    is."""
    rgb, alpha = _head()
    alpha[120:200, 230:300] = 1.0
    rgb[120:200, 230:300] = [230, 150, 60]
    metrics, flags = _flags(rgb, alpha)
    assert metrics["side_blob_share"] > mc.MAX_SIDE_BLOB_SHARE
    assert mc.BACKGROUND_REMNANT in flags


def _translucent_strip(
    rgb: np.ndarray, alpha: np.ndarray, colour: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A see-through strip (α 0.4) standing 5–16 px above the crown (y = 45), painted `colour` in fg."""
    fg = _decontaminated(rgb, alpha)
    alpha = alpha.copy()
    alpha[29:40, 120:180] = 0.4
    fg[29:40, 120:180] = colour
    return fg, alpha


def test_translucent_backdrop_band_above_the_hair_is_a_background_remnant():
    """Backdrop letters kept as a see-through band above the hair (devset img36): far from the opaque head
    and unlike its colour."""
    rgb, alpha = _head()
    fg, alpha = _translucent_strip(rgb, alpha, np.array([90.0, 90.0, 90.0]))
    metrics, flags = _flags(rgb, alpha, fg)
    assert metrics["soft_band"] > mc.MAX_SOFT_BAND, metrics
    assert mc.BACKGROUND_REMNANT in flags


def test_stray_hair_of_the_heads_colour_is_not_a_remnant():
    """The same band in the subject's own colour is stray hair: kept, not flagged."""
    rgb, alpha = _head()
    fg, alpha = _translucent_strip(rgb, alpha, SKIN)
    metrics, flags = _flags(rgb, alpha, fg)
    assert metrics["soft_band"] == 0.0, metrics
    assert flags == [], metrics


def test_backdrop_kept_in_a_corner_the_matte_fills_is_a_background_remnant():
    """Devset img42: the plain wall beside the neck called person up to the frame's corner, so no backdrop
    pixel lies near it to compare with; its colour is the backdrop's and not the subject's."""
    rgb, alpha = _head()
    alpha[330:, 230:] = 1.0
    rgb[330:, 230:] = BACKDROP
    metrics, flags = _flags(rgb, alpha)
    assert metrics["palette_remnant_share"] > mc.MAX_REMNANT_SHARE, metrics
    assert mc.BACKGROUND_REMNANT in flags


def test_clothes_in_the_backdrops_colour_under_the_face_are_not_a_remnant():
    """A shirt the colour of the wall is the subject's own colour where it sits under the face."""
    rgb, alpha = _head()
    rgb[300:] = BACKDROP
    metrics, flags = _flags(rgb, alpha, rgb.copy())
    assert metrics["palette_remnant_share"] == 0.0, metrics


def test_crown_hard_edge_is_read_on_the_matte_before_closed_form():
    """Closed-form matting re-draws the edge from colour and can soften a backdrop piece's hard edge; the
    check reads the guided matte (`edge_alpha`) where the segmenter's hard edge still shows."""
    rgb, alpha = _head()
    guided = alpha.copy()
    guided[38:50, 130:150] = 1.0
    metrics, flags = mc.matte_flags(
        rgb, alpha, _decontaminated(rgb, alpha), (80.0, 220.0), 60.0, 160.0, 260.0, edge_alpha=guided
    )
    assert metrics["crown_hard_edge"] > mc.MAX_CROWN_HARD_EDGE
    assert mc.BACKGROUND_REMNANT in flags
