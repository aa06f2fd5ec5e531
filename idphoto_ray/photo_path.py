"""The photo path shared by the batch job, the benchmark and an online service: bytes in, bytes out, no Ray.

    path = PhotoPath.load(specs, backgrounds, options)          # face models loaded once
    prepared = path.prepare(data, model_size=segmenter.input_size)
    mask = quantize_masks(segmenter([prepared.model_image]))[0]
    result = path.finish(prepared, mask)                        # PhotoResult: encoded outputs as bytes
    sheets = path.sheets(result)                                # print sheets, when the path has plans
    written = write_outputs(fs, root, name, [*result.outputs, *sheets])  # a service returns bytes instead

The job's finish stage and the service call `finish_row` instead of `finish`: the same steps, and the
photo's manifest row filled on the way (manifest.py builds it), so both report a photo the same way.

`prepare` and `finish` raise nothing for a bad photo: `prepare` raises `PhotoError` (the caller records
the reason), `finish` returns a failed `PhotoResult`. With `processing.segment_region: roi`, `prepare`
finds the subject on its small decode and cuts the model input around it (region.py); `Prepared.region`
says where, and `finish` puts the mask back there, background outside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from idphoto_ray.backgrounds import Background, parse_background
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.decode import DecodedImage, decode_image
from idphoto_ray.person_gate import PersonGate, applies
from idphoto_ray.photo import PhotoResult, process_photo
from idphoto_ray.region import Box, RegionFinder, pixel_box
from idphoto_ray.render import RenderedOutput
from idphoto_ray.specs import PhotoSpec
from idphoto_ray.timing import timed
from idphoto_ray.types import PhotoError, Reason, Status, Step
from idphoto_ray.write import join, write_bytes

if TYPE_CHECKING:
    from idphoto_ray.layout import RenderedSheet, SheetPlan

#: (layout config, background, plan) per print sheet, as `layout.plan_layouts` returns them.
SheetPlans = Sequence[tuple[Any, str, "SheetPlan"]]


@dataclass
class Prepared:
    """What `prepare` hands to the segmenter (`model_image`) and on to `finish` (the rest).

    For JPEGs only the model-size image and the file's bytes travel on, and `finish` decodes the working
    image itself: shipping 1600-px working images (5.8 MB each) between the job's stages made the object
    store grow 10× faster while the slower finishing stage caught up. Formats that cannot decode at a
    reduced scale (PNG, HEIC, TIFF) are decoded once, in `prepare`, and that image travels instead.
    """

    model_image: np.ndarray
    original_size: tuple[int, int]
    #: The file's bytes when `finish` must decode the working image again, else b"".
    data: bytes
    #: The working image when `prepare` already decoded it at working size, else None.
    working: np.ndarray | None
    #: Working px per input px of `working` (1.0 until the working image is decoded).
    scale: float
    timings_ms: dict[str, float]
    #: What `model_image` shows, as fractions (x0, y0, x1, y1) of the upright image; None: all of it.
    region: Box | None = None


def prepare(
    data: bytes, options: ProcessingOptions, model_size: int, finder: RegionFinder | None = None
) -> Prepared:
    """bytes → the segmenter's square input (size²×3 uint8); raises PhotoError for a bad file.

    With a `finder` the input is the region around the subject (the face found on the small decode, ~10 ms
    counted as decoding); a JPEG is decoded again, larger, when the region would have fewer pixels than
    the model's input (never beyond the working size).
    """
    from idphoto_ray.models.segmenters import model_input

    timings: dict[str, float] = {}
    with timed(timings, Step.DECODE):
        decoded = decode_image(
            data, long_side=options.working_long_side, max_pixels=options.max_pixels, cover=model_size
        )
        region = finder(decoded.rgb) if finder is not None else None
        rgb = decoded.rgb
        if region is None:
            model_image = model_input(rgb, model_size)
        else:
            if decoded.reduced:
                rgb = _decode_for_region(data, options, decoded, region, model_size)
            c0, r0, c1, r1 = pixel_box(region, rgb.shape)
            h, w = rgb.shape[:2]
            region = (c0 / w, r0 / h, c1 / w, r1 / h)
            model_image = model_input(np.ascontiguousarray(rgb[r0:r1, c0:c1]), model_size)
    if decoded.reduced:
        return Prepared(model_image, decoded.original_size, data, None, 1.0, timings, region)
    return Prepared(model_image, decoded.original_size, b"", decoded.rgb, decoded.scale, timings, region)


def _decode_for_region(
    data: bytes, options: ProcessingOptions, decoded: DecodedImage, region: Box, model_size: int
) -> np.ndarray:
    """The small decode, or a larger one when the region in it is smaller than the model's input (and a
    larger one exists: never beyond the working size or the file's own)."""
    rgb = decoded.rgb
    h, w = rgb.shape[:2]
    short = min(h, w)
    # cover = the short side at which the region's narrower extent reaches model_size px.
    need = max(
        model_size * short / ((region[2] - region[0]) * w), model_size * short / ((region[3] - region[1]) * h)
    )
    largest = min(options.working_long_side, max(decoded.original_size))
    if need <= short + 0.5 or max(h, w) >= largest:
        return rgb
    return decode_image(
        data, long_side=options.working_long_side, max_pixels=options.max_pixels, cover=int(np.ceil(need))
    ).rgb


def working_image(prepared: Prepared, options: ProcessingOptions) -> tuple[np.ndarray, float]:
    """The working-resolution image and its scale; decodes the file again when `prepare` kept only bytes.

    Adds the second decode's time to `prepared.timings_ms`; raises PhotoError for a bad file.
    """
    if prepared.working is not None and prepared.working.size:
        return prepared.working, prepared.scale
    with timed(prepared.timings_ms, Step.DECODE):
        decoded = decode_image(
            prepared.data, long_side=options.working_long_side, max_pixels=options.max_pixels
        )
    return decoded.rgb, decoded.scale


def quantize_masks(masks: np.ndarray) -> np.ndarray:
    """The segmenter's [0, 1] float masks as uint8: a quarter of the bytes between stages, 1/255 steps."""
    return np.clip(np.asarray(masks) * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Finished:
    """What `finish_row` leaves besides the row: the working image (the job's review thumbnail) and files."""

    #: None when the working image did not decode.
    image: np.ndarray | None
    #: Encoded photos, then print sheets; empty for a failed photo.
    files: list[RenderedOutput | RenderedSheet]
    #: Working px per input px: `manifest.entry_for` maps each photo's affine to input pixels with it.
    scale: float = 1.0


class PhotoPath:
    """A job's face models, specs, backgrounds, sheet plans and options, loaded once; `finish` per photo."""

    def __init__(
        self,
        detector: Any,
        landmarker: Any,
        specs: list[PhotoSpec],
        backgrounds: list[Background],
        options: ProcessingOptions,
        plans: SheetPlans = (),
        gate: PersonGate | None = None,
    ) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.person_gate = gate
        self.specs = specs
        self.backgrounds = backgrounds
        self.options = options
        self.plans = list(plans)
        roi = options.segment_region == "roi" and bool(specs)
        self.finder = RegionFinder(detector, specs, options.multiple_face_ratio) if roi else None

    def with_outputs(
        self, specs: list[PhotoSpec], backgrounds: list[str], plans: SheetPlans = ()
    ) -> PhotoPath:
        """The same face models making other outputs: a service request chooses its own specs and sheets."""
        return PhotoPath(
            self.detector,
            self.landmarker,
            specs,
            [parse_background(b) for b in backgrounds],
            self.options,
            plans,
            self.person_gate,
        )

    @classmethod
    def load(
        cls,
        specs: list[PhotoSpec],
        backgrounds: list[str],
        options: ProcessingOptions,
        blazeface: bytes | None = None,
        face_mesh: bytes | None = None,
        plans: SheetPlans = (),
        person: bytes | None = None,
        segmenter: str | None = None,
    ) -> PhotoPath:
        """Build the face models from their bytes (the job ships them), else from the model home.

        The person gate (`options.person_gate`) is built unless `segmenter` names its own person model.
        """
        from idphoto_ray.models.face_detect import PIPELINE_DETECTOR
        from idphoto_ray.models.registry import (
            PERSON_MODEL,
            build_face_detector,
            build_face_landmarker,
            face_model_paths,
            get_info,
        )

        if blazeface is None or face_mesh is None:
            paths = face_model_paths()
            blazeface = blazeface if blazeface is not None else paths[PIPELINE_DETECTOR].read_bytes()
            face_mesh = face_mesh if face_mesh is not None else paths["face-mesh"].read_bytes()
        gate = None
        if applies(options.person_gate, segmenter):
            gate = PersonGate(person if person is not None else get_info(PERSON_MODEL).source.ensure())
        return cls(
            build_face_detector(blazeface),
            build_face_landmarker(face_mesh),
            specs,
            [parse_background(b) for b in backgrounds],
            options,
            plans,
            gate,
        )

    def prepare(self, data: bytes, model_size: int) -> Prepared:
        """The segmenter's input for one photo: the region around the subject when `segment_region: roi`."""
        return prepare(data, self.options, model_size, self.finder)

    def finish_image(
        self, image: np.ndarray, scale: float, mask: np.ndarray, region: Box | None = None
    ) -> PhotoResult:
        """Every spec × background from the working image and the uint8 model-size mask; never raises.

        `region`: what the mask covers, as fractions of the image (`Prepared.region`); None: all of it.
        """
        alpha = mask.astype(np.float32) / 255.0
        h, w = image.shape[:2]
        box = None if region is None else (region[0] * w, region[1] * h, region[2] * w, region[3] * h)
        return process_photo(
            image,
            alpha,
            self.detector,
            self.landmarker,
            self.specs,
            self.backgrounds,
            self.options,
            source_scale=scale,
            mask_region=box,
            person_gate=self.person_gate,
        )

    def finish(self, prepared: Prepared, mask: np.ndarray) -> PhotoResult:
        """`prepare`'s result and the segmenter's uint8 mask → encoded outputs; never raises."""
        try:
            image, scale = working_image(prepared, self.options)
        except PhotoError as exc:
            return PhotoResult(Status.FAILED, exc.reason, exc.message, timings_ms=dict(prepared.timings_ms))
        result = self.finish_image(image, scale, mask, prepared.region)
        result.timings_ms = {**prepared.timings_ms, **result.timings_ms}
        return result

    def finish_row(
        self,
        row: dict[str, Any],
        prepared: Prepared,
        mask: np.ndarray | None,
        segment_ms: float,
        segment_error: str = "",
    ) -> Finished:
        """The finish stage for one photo, filling its manifest row; the job and the service both call this.

        Fills size, timings, status, reason, flags and metrics; leaves `outputs` to the caller, who knows
        where (or whether) each file went. Never raises for a bad photo.
        """
        from idphoto_ray import manifest

        manifest.add_input_size(row, prepared.original_size)
        try:
            image, scale = working_image(prepared, self.options)
        except PhotoError as exc:
            manifest.fail(row, exc.reason, exc.message)
            return Finished(None, [])
        finally:
            manifest.add_time(row, Step.DECODE, prepared.timings_ms[Step.DECODE.value])
            manifest.add_time(row, Step.SEGMENT, segment_ms)
        if segment_error or mask is None:
            manifest.fail(row, Reason.SEGMENTATION_ERROR, segment_error)
            return Finished(image, [], scale)
        result = self.finish_image(image, scale, mask, prepared.region)
        sheets = self.sheets(result)
        manifest.add_result(row, result, scale)
        if row["status"] == Status.FAILED:
            return Finished(image, [], scale)
        return Finished(image, [*result.outputs, *sheets], scale)

    def sheets(self, result: PhotoResult) -> list[RenderedSheet]:
        """This person's print sheets from the encoded photos (none for a failed photo or without plans).

        Timed as `compose` + `encode` would be: a 6-inch sheet at 300 DPI is 1200×1800 px, ~60 ms to encode.
        """
        from idphoto_ray.layout import make_sheets

        if not self.plans or result.status == Status.FAILED:
            return []
        photos = {(out.spec, out.background): out.data for out in result.outputs}
        with timed(result.timings_ms, Step.ENCODE):
            return make_sheets(self.plans, photos, self.options.jpeg_quality)


def output_path(root: str, name: str, output: RenderedOutput | RenderedSheet) -> str:
    """Where a job writes a file: <root>/<spec>/<background>/<name>.<ext>; a sheet: <root>/layout/<paper>/."""
    if isinstance(output, RenderedOutput):
        return join(root, output.spec, output.background, f"{name}.{output.ext}")
    return output.output_path(root, name)


def write_outputs(
    fs: Any, root: str, name: str, files: Sequence[RenderedOutput | RenderedSheet]
) -> list[tuple[str, RenderedOutput | RenderedSheet]]:
    """Write every photo and print sheet (atomic on local disk) → (path, photo or sheet) pairs.

    All or nothing: on an OSError removes what it wrote and raises an OSError naming the failed path.
    """
    written: list[tuple[str, RenderedOutput | RenderedSheet]] = []
    path = root
    try:
        for item in files:
            path = output_path(root, name, item)
            write_bytes(fs, path, item.data if isinstance(item, RenderedOutput) else item.encoded.data)
            written.append((path, item))
    except OSError as exc:
        for done, _ in written:
            fs.rm(done)
        raise OSError(f"writing {path}: {exc}") from exc
    return written
