"""The person gate: backdrop objects the segmenter kept away from the person go, below the eye line only;
hair above it, the ear zone and the subject's own colours stay (pure numpy, then the real selfie model)."""

from __future__ import annotations

import cv2
import numpy as np

from idphoto_ray.config import ProcessingOptions
from idphoto_ray.person_gate import MARGIN, gate_mask, person_support

SIZE = 200


def _person() -> np.ndarray:
    """The person model's 50² probabilities: a head-and-shoulders block in the middle."""
    p = np.zeros((50, 50), np.float32)
    p[10:50, 18:32] = 1.0  # head and neck
    p[30:50, 8:42] = 1.0  # shoulders
    return p


def _mask_with_object(y0: int, x0: int, side: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The segmenter's mask: the person (at SIZE²) plus a square object at (y0, x0); and the object alone."""
    mask = (person_support(_person(), SIZE, 0.0)).astype(np.float32)
    obj = np.zeros_like(mask, dtype=bool)
    obj[y0 : y0 + side, x0 : x0 + side] = True
    mask[obj] = 1.0
    return mask, obj


def test_an_object_away_from_the_person_below_the_eye_line_is_cleared_and_the_person_kept():
    mask, obj = _mask_with_object(90, 0)  # beside the shoulders' top, far left
    person = (person_support(_person(), SIZE, 0.0)).astype(bool)
    out = gate_mask(mask, _person(), from_row=60)
    assert out[obj].max() == 0.0
    assert np.array_equal(out[person], mask[person])


def test_above_the_eye_line_nothing_is_cut():
    """Crown hair the person model misses is where it is strongest: the gate never works there."""
    mask, obj = _mask_with_object(5, 0)
    out = gate_mask(mask, _person(), from_row=60)
    assert np.array_equal(out, mask)


def test_an_object_within_the_margin_stays_without_colours():
    mask = person_support(_person(), SIZE, 0.0).astype(np.float32)
    obj = person_support(_person(), SIZE, MARGIN) & (mask == 0)
    obj[:110] = False
    assert obj.any()
    mask[obj] = 1.0
    out = gate_mask(mask, _person(), from_row=60)
    assert np.array_equal(out[obj], mask[obj])


def test_the_ear_zone_is_spared_by_position():
    mask, obj = _mask_with_object(90, 0)
    out = gate_mask(mask, _person(), from_row=60, ears=(0, 60, 40, 140))
    assert np.array_equal(out[obj], mask[obj])


def test_a_person_model_that_sees_nobody_leaves_the_mask_alone():
    mask, _ = _mask_with_object(90, 0)
    assert np.array_equal(gate_mask(mask, np.zeros((50, 50), np.float32), from_row=0), mask)


def _image(obj: np.ndarray, obj_colour: tuple[int, int, int]) -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), (40, 30, 20), np.uint8)  # the person: dark brown everywhere
    image[obj] = obj_colour
    return image


def test_the_subjects_main_colours_are_spared_away_from_the_person():
    """Hair the person model missed (a bun behind the neck) has the subject's colours: it stays."""
    mask, obj = _mask_with_object(90, 0)
    out = gate_mask(mask, _person(), _image(obj, (40, 30, 20)), from_row=60)
    assert np.array_equal(out[obj], mask[obj])
    out = gate_mask(mask, _person(), _image(obj, (230, 190, 40)), from_row=60)  # a gold object
    assert out[obj].max() == 0.0


def test_the_rest_of_a_cut_object_inside_the_margin_goes_too():
    """A gold object reaching from far away into the margin: the part the position cut names its colours, and
    its part beside the person goes with them; the person's own pixels stay."""
    mask = (person_support(_person(), SIZE, 0.0)).astype(np.float32)
    obj = np.zeros_like(mask, dtype=bool)
    obj[100:140, 0:31] = True  # touches the shoulders' left edge (x = 32)
    obj &= mask == 0
    mask[obj] = 1.0
    image = _image(obj, (230, 190, 40))
    out = gate_mask(mask, _person(), image, from_row=60)
    core = cv2.resize(_person(), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) >= 0.5
    assert out[obj].max() == 0.0
    assert out[core].min() == 1.0


def test_the_photo_path_builds_the_gate_unless_the_segmenter_is_its_person_model():
    from idphoto_ray.photo_path import PhotoPath
    from idphoto_ray.specs import get_spec

    specs = [get_spec("cn-1inch")]
    off = ProcessingOptions(person_gate=False)
    assert ProcessingOptions().person_gate
    assert (
        PhotoPath.load(specs, ["white"], ProcessingOptions(), segmenter="isnet-medium").person_gate
        is not None
    )
    assert (
        PhotoPath.load(specs, ["white"], ProcessingOptions(), segmenter="mediapipe-selfie").person_gate
        is None
    )
    assert PhotoPath.load(specs, ["white"], off, segmenter="isnet-medium").person_gate is None


def test_the_real_person_model_keeps_a_real_portrait_and_clears_a_pasted_object():
    """scikit-image's astronaut with a gold square pasted beside her shoulder, far from her: the real selfie
    model sees her, so her matte stays and the square goes."""
    from idphoto_ray.photo_path import PhotoPath
    from idphoto_ray.samples import astronaut
    from idphoto_ray.specs import get_spec

    image = np.ascontiguousarray(astronaut())
    h, w = image.shape[:2]
    gate = PhotoPath.load([get_spec("cn-1inch")], ["white"], ProcessingOptions(person_gate=True)).person_gate
    own = gate.segmenter([image])[0]  # the person model's own view at its 256²
    size = 512
    person = person_support(own, size, 0.0)
    assert 0.2 < person.mean() < 0.8
    mask = person.astype(np.float32)
    obj = np.zeros_like(person)
    obj[int(size * 0.5) : int(size * 0.7), int(size * 0.86) : int(size * 0.98)] = True
    obj &= ~person_support(own, size, 2 * MARGIN)
    assert obj.sum() > 100
    mask[obj] = 1.0
    painted = image.copy()
    painted[cv2.resize(obj.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0] = (230, 190, 40)
    face_box = (0.35 * w, 0.1 * h, 0.6 * w, 0.45 * h)
    out = gate(painted, mask, None, eye_y=0.25 * h, face_box=face_box)
    assert out[obj].mean() < 0.05
    assert out[person].mean() > 0.99
