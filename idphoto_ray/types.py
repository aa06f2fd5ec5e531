"""Small value types shared by the image core, the models and the pipeline.

Kept free of Ray and ONNX Runtime so every stage can be tested on plain numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import numpy as np

#: BlazeFace keypoint order. "right"/"left" are the *subject's*: the right eye appears on the image's left.
KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)


#: Where models run: auto = CUDA when the cluster has GPUs and the GPU build is installed, else CPU.
Device = Literal["auto", "cpu", "cuda"]


class Documented(str, Enum):
    """A vocabulary: stable strings that land in the manifest, each with a sentence for people (`doc`).

    Members are written `NAME = ("value", "sentence")`; they compare equal to their string, and the README's
    tables are checked against `doc` by tests/test_vocabularies.py.
    """

    doc: str

    def __new__(cls, value: str, doc: str = "") -> Documented:
        member = str.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        return member

    def __str__(self) -> str:
        return self.value


class Status(Documented):
    OK = ("ok", "Every output was written and every check passed.")
    NEEDS_REVIEW = ("needs_review", "Outputs were written, but a check raised a flag: a person should look.")
    FAILED = ("failed", "No output: the reason says why.")


class Reason(Documented):
    """Failure codes: exactly one per failed photo."""

    NOT_AN_IMAGE = ("not_an_image", "The bytes are not an image format we can open.")
    DECODE_ERROR = ("decode_error", "The file is an image but truncated or corrupt.")
    TOO_LARGE = ("too_large", "More pixels than `max_pixels` (default 80 MP).")
    UNSUPPORTED_MODE = ("unsupported_mode", "A pixel format we do not convert (e.g. CMYK with no profile).")
    NO_FACE = ("no_face", "The face detector found no face.")
    MULTIPLE_FACES = ("multiple_faces", "A second face at least half the area of the largest.")
    NO_PERSON = ("no_person", "The person mask is empty at the face or above the eyes.")
    SEGMENTATION_ERROR = ("segmentation_error", "The segmentation model raised on this photo.")
    ENCODE_ERROR = ("encode_error", "The output could not be encoded.")
    MAX_KB_UNREACHABLE = ("max_kb_unreachable", "Even the lowest allowed JPEG quality is over `max_kb`.")
    WRITE_ERROR = ("write_error", "An output file could not be written.")
    READ_ERROR = ("read_error", "The input could not be read (missing, unreadable or gone while listing).")
    INTERNAL_ERROR = ("internal_error", "A bug: the message holds the exception.")
    REJECTED_IN_REVIEW = (
        "rejected_in_review",
        "A person rejected the outputs on the review page; the message holds their note.",
    )


class Flag(Documented):
    """Review flags: each sends the photo to `needs_review`; outputs are still written."""

    HEAD_SIZE_OUT_OF_RANGE = ("head_size_out_of_range", "Chin–crown height outside the spec's range.")
    CROWN_MARGIN_OUT_OF_RANGE = (
        "crown_margin_out_of_range",
        "Space above the crown outside the spec's range.",
    )
    EYE_LINE_OUT_OF_RANGE = ("eye_line_out_of_range", "Eye height from the bottom outside the spec's range.")
    FACE_OFF_CENTER = ("face_off_center", "The face's midline is too far from the photo's centre.")
    FACE_WIDTH_OUT_OF_RANGE = (
        "face_width_out_of_range",
        "Face width outside the spec's range (cn-passport, cn-id-card).",
    )
    ROLL_EXCEEDS_LIMIT = ("roll_exceeds_limit", "Head roll over `max_roll_deg` before correction.")
    YAW_EXCEEDS_LIMIT = ("yaw_exceeds_limit", "Head turned sideways more than `max_yaw_deg`.")
    LOW_RESOLUTION = (
        "low_resolution",
        "Fewer than `min_inter_eye_px` (ICAO: 90) pixels between the eyes in the source, enlarged by more"
        " than 1.2× in the output: the face looks soft.",
    )
    UPSCALED = ("upscaled", "The output enlarges the source: it will look soft.")
    BLURRY = ("blurry", "Low Laplacian variance on the face.")
    UNDEREXPOSED = ("underexposed", "Too much of the face is near black.")
    OVEREXPOSED = ("overexposed", "Too much of the face is near white.")
    UNEVEN_LIGHTING = ("uneven_lighting", "One half of the face much brighter than the other.")
    CROWN_CUT = (
        "crown_cut",
        "The source photo cuts off the top of the head: the crown is a straight edge, "
        "and the head size could not be measured from the real crown.",
    )
    SIDE_CUT = (
        "side_cut",
        "The source photo ends beside the person inside the output: a shoulder or arm "
        "stops at a straight (or, after levelling, slanted) line.",
    )
    BODY_CUT = (
        "body_cut",
        "The source photo ends below the face inside the output and no head size or "
        "position within the spec's rules reaches past it: the body stops at a line.",
    )
    HEAD_TOUCHES_TOP = (
        "head_touches_top",
        "No head size and position within the spec's rules leaves space "
        "above the hair: the head touches the top edge.",
    )
    ROLL_UNCERTAIN = (
        "roll_uncertain",
        "The face mesh and the face detector disagree on the head's tilt, so "
        "the photo was not levelled: check that it is straight.",
    )
    EYES_CLOSED = ("eyes_closed", "An eye looks closed (specs with `neutral_expression`: passports, visas).")
    MOUTH_OPEN = (
        "mouth_open",
        "The lips are apart, e.g. a smile showing teeth (specs with `neutral_expression`).",
    )
    LANDMARKS_UNAVAILABLE = (
        "landmarks_unavailable",
        "No face mesh: eyes and chin come from the detector's keypoints, less precise.",
    )
    BACKGROUND_REMNANT = (
        "background_remnant",
        "Pieces of the old backdrop may remain beside or above the person (islands, see-through bands,"
        " hard-edged shapes on the crown, the wall's colour kept in a corner).",
    )
    HALO = ("halo", "The edge of the hair or shoulders keeps the old backdrop's colour (a visible fringe).")
    CROWN_UNCERTAIN = (
        "crown_uncertain",
        "The top of the head is uncertain (cut flat, or at odds with the "
        "face's size): the crop height may be wrong.",
    )


class OutputKind(Documented):
    """What an element of a row's `outputs` is."""

    PHOTO = ("photo", "An ID photo: one spec on one background.")
    LAYOUT = ("layout", "A print sheet: copies of this input's photos on paper, DPI in the file.")


class Step(Documented):
    """What the image core and the job time per photo; the manifest folds them into `TimingStage`s."""

    DECODE = (
        "decode",
        "Bytes to the model-size and working images (both decodes; with `segment_region: roi` also finding"
        " the subject, ~10 ms).",
    )
    SEGMENT = ("segment", "The segmentation model, per photo share of its batch.")
    DETECT = ("detect", "Face detection.")
    LANDMARKS = ("landmarks", "The face mesh.")
    MASK = (
        "mask",
        "The model's mask kept where the person model sees a person (`person_gate`) and brought to the"
        " working image.",
    )
    LEVEL = ("level", "Roll correction and finding the crown.")
    CROP = ("crop", "Cutting each spec's crop from the leveled frame.")
    MATTING = ("matting", "Refining the alpha on each crop (guided filter, closed form).")
    DECONTAMINATE = ("decontaminate", "Removing the old background's colour from the hair's edge.")
    COMPOSE = ("compose", "Putting the person on each background.")
    ENCODE = ("encode", "JPEG/PNG encoding, including the search under `max_kb`.")
    WRITE = ("write", "Writing the outputs.")


class TimingStage(Documented):
    """The fields of the manifest's `timings_ms`: milliseconds per stage for one photo."""

    DECODE = ("decode", "Decoding the input (both decodes).")
    SEGMENT = ("segment", "The segmentation model.")
    DETECT = ("detect", "Face detection and the face mesh.")
    REFINE = ("refine", "Mask, leveling, crop, matting and decontamination.")
    COMPOSE = ("compose", "Compositing on the backgrounds.")
    ENCODE = ("encode", "Encoding the outputs.")
    WRITE = ("write", "Writing the outputs.")
    TOTAL = ("total", "Sum of the above.")


class PhotoError(Exception):
    """A per-photo failure that becomes a manifest row (status=failed), never a crashed batch."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Face:
    """One detected face in source-image pixels.

    box is (x0, y0, x1, y1); keypoints is a (6, 2) float array in KEYPOINT_NAMES order.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray = field(repr=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)
