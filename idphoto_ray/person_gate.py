"""Keep the segmenter's matte where a person is: backdrop objects beside the jaw and shoulders are cut away.

IS-Net is a salient-object model (DIS): it keeps whatever stands out next to the subject, such as a gold
statue beside the head (validation img37) or wall letters at a shoulder (img42), and the checks can only
flag them. MediaPipe's selfie model is a person model: coarse (256²) and short of stray hair (up to 51 %
at the crown), but it does not take a statue for a person. Below the eye line the segmenter's mask is kept
within `MARGIN` of what the person model calls person, in the subject's main colours, and in the ear zone;
elsewhere it is cleared, and so is the rest of a cut object inside the margin (its colours).

Costs one 256² run of the selfie model on one thread and a colour histogram, ~40 ms a photo. With the
selfie model as the segmenter the gate changes nothing (its own mask is the person) and is skipped.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from idphoto_ray.matte_checks import colour_bins

#: Person-model probability taken as person.
PERSON_THRESHOLD = 0.5
#: How far (share of the mask's side) the matte may reach beyond the person model's person below the eyes:
#: 12 px of IS-Net's 1024² input; 0.025 left img37's statue as a strip beside the collar.
MARGIN = 0.012


def _seen(person: np.ndarray, size: int) -> np.ndarray:
    """The person model's S'×S' probabilities, upsampled to size×size (bilinear): where it sees a person."""
    upsampled = cv2.resize(np.asarray(person, np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return upsampled >= PERSON_THRESHOLD


def _grow(region: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(region.astype(np.uint8), kernel) > 0


def _support(seen: np.ndarray, margin: float) -> np.ndarray:
    """Where the person is seen, grown by `margin` of the map's side (at least 1 px)."""
    return _grow(seen, max(1, round(margin * seen.shape[0])))


def person_support(person: np.ndarray, size: int, margin: float = MARGIN) -> np.ndarray:
    """The person model's S'×S' probabilities → a size×size bool map: person, grown by `margin`·size px."""
    return _support(_seen(person, size), margin)


def applies(enabled: bool, segmenter: str | None) -> bool:
    """Whether a photo path gates: when asked (`processing.person_gate`), unless the segmenter is the gate's
    own person model, whose mask already is the person."""
    from idphoto_ray.models.registry import PERSON_MODEL

    return enabled and segmenter != PERSON_MODEL


#: The gate's cut is read as a backdrop object only when it took at least this share of the mask's side².
MIN_CUT_SHARE = 0.003
#: A colour cell belongs to a cut object at this share of its pixels, to the subject at this share of the
#: person model's person.
CUT_CELL_SHARE = 0.005
SUBJECT_CELL_SHARE = 0.002
MAIN_CELL_SHARE = 0.01
#: Beside the face, from the eye line to this many face widths below the face box, the gate cuts nothing by
#: position: earrings hang there (a colour a cut object took still goes).
EAR_ZONE = 0.25


def gate_mask(
    mask: np.ndarray,
    person: np.ndarray,
    image: np.ndarray | None = None,
    from_row: int = 0,
    ears: tuple[int, int, int, int] | None = None,
    margin: float = MARGIN,
) -> np.ndarray:
    """The segmenter's square mask ([0, 1]), cleared from row `from_row` down beyond `margin` of the person
    model's person.

    Rows above `from_row` (the eye line) are left alone: there the matte's edge is crown hair, which the
    person model misses and the gate would cut (measured on the composites: crown hair loss of 27 % on one).
    `ears` (c0, r0, c1, r1, mask px) is spared by position: earrings hang there, and the person model
    leaves them out (img50's purple earring lost half of itself).
    With `image` (what the mask covers, mask-sized RGB) the rest of a cut object inside the margin goes too:
    its pixels in colours the cut took and the person does not have.
    A person model that sees nobody (a photo of a statue, a failure) leaves the mask as it is: finishing
    then judges the photo on the segmenter alone, as without the gate.
    """
    if not (np.asarray(person) >= PERSON_THRESHOLD).any():
        return mask
    size = mask.shape[0]
    top = max(0, min(size, from_row))
    seen = _seen(person, size)
    keep = _support(seen, margin)
    keep[:top] = True
    if ears is not None:
        c0, r0, c1, r1 = (max(0, min(size, v)) for v in ears)
        keep[r0:r1, c0:c1] = True
    if image is None:
        return np.where(keep, mask, 0.0).astype(mask.dtype)
    fg = mask >= 0.5
    core = fg & seen
    bins = colour_bins(image)
    shares = np.bincount(bins[core], minlength=512) / max(core.sum(), 1)
    # The subject's main colours are spared out there too: hair the person model missed (a bun behind the
    # neck, img4) has them; a backdrop object mostly does not.
    keep |= (shares >= MAIN_CELL_SHARE)[bins]
    out = np.where(keep, mask, 0.0).astype(mask.dtype)
    cut = fg & ~keep
    if cut.sum() < MIN_CUT_SHARE * mask.size:
        return out
    cut_cells = np.bincount(bins[cut], minlength=512) >= CUT_CELL_SHARE * cut.sum()
    odd = (cut_cells & ~(shares >= SUBJECT_CELL_SHARE))[bins] & fg & ~core
    odd[:top] = False
    odd = cv2.morphologyEx(odd.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    odd = cv2.dilate(odd, np.ones((5, 5), np.uint8)) > 0
    out[odd & ~core] = 0.0
    return out


class PersonGate:
    """The selfie model (one thread, it runs in the finishing tasks) and the gate, for one photo at a time."""

    def __init__(self, model: bytes | Any) -> None:
        from idphoto_ray.models.registry import PERSON_MODEL, build_segmenter, get_info

        self.segmenter = build_segmenter(get_info(PERSON_MODEL), model, intra_op_num_threads=1)
        self.size = self.segmenter.input_size

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        box: tuple[float, float, float, float] | None,
        eye_y: float,
        face_box: tuple[float, float, float, float],
    ) -> np.ndarray:
        """`mask` ([0, 1], square) covers `box` (working px) of `image`, or all of it: the gated mask, with
        rows from the eye line (`eye_y`, working px) down gated, except beside the face (`face_box`)."""
        from idphoto_ray.models.segmenters import model_input

        h, w = image.shape[:2]
        x0, y0, x1, y1 = box if box is not None else (0.0, 0.0, float(w), float(h))
        c0, r0 = max(0, int(round(x0))), max(0, int(round(y0)))
        c1, r1 = min(w, max(c0 + 1, int(round(x1)))), min(h, max(r0 + 1, int(round(y1))))
        crop = np.ascontiguousarray(image[r0:r1, c0:c1])
        person = self.segmenter([model_input(crop, self.size)])[0]
        sx, sy = mask.shape[1] / max(x1 - x0, 1e-6), mask.shape[0] / max(y1 - y0, 1e-6)
        fx0, fy0, fx1, fy1 = face_box
        pad = EAR_ZONE * (fx1 - fx0)
        ears = (
            int(np.floor((fx0 - pad - x0) * sx)),
            int(np.floor((eye_y - y0) * sy)),
            int(np.ceil((fx1 + pad - x0) * sx)),
            int(np.ceil((fy1 + pad - y0) * sy)),
        )
        from_row = int(np.floor((eye_y - y0) * sy))
        return gate_mask(mask, person, model_input(crop, mask.shape[0]), from_row, ears)
