"""Matte-quality benchmark: composites with a frozen truth, scored in output space. Prints a table.

    python jobs/matte_quality.py [--half validation] [--portraits 12] [--backgrounds 6]
        [--models mediapipe-selfie,isnet] [--regions whole,roi] [--variants improved]
        [--framing as-taken|loose] [--baseline-ref REF] [--sheets DIR] [--out results.json]

IS-Net rows need `idphoto-ray models fetch isnet` first (they are skipped with a note otherwise).

The method of the standard matting benchmarks: a truth is built once per development portrait from the
strongest segmenter's alpha (IS-Net), cleaned (the subject's component only, holes inside the body filled,
interior solid, soft values only in a thin edge band), with its foreground colour estimated (pymatting's
multilevel solver); it is cached. Each portrait (or, with `--framing loose`, the portrait at half size
standing on a canvas of its size) is composited onto new backgrounds (saturated walls, gradients,
scikit-image textures and photos, colours near hair and skin), saved as a JPEG like a real photo,
and run through the real per-photo path (`PhotoPath.prepare`, the segmenter, `PhotoPath.finish`) for cn-1inch
on a transparent background. The output matte is scored against the truth warped into output space with the
pipeline's own working → output affine. IS-Net rows are scored against IS-Net's own (cleaned) alpha: they
carry that bias.

Variants: each model × region (`whole`: the whole composite is segmented; `roi`: the region around the
subject that holds every frame, `processing.segment_region`) × refinement (`current`: refine.py as of
--baseline-ref, measured in the same run; `improved`: this tree's refine.py), either one optionally with
processing options changed after a `+` (`improved+decontamination=ml`, `current+matting=guided`; a bare
`matting=closed-form` means `improved+matting=closed-form`), so option settings are compared in one run.
Seconds per photo are prepare + finish (the model's own time is the same for both regions: one input of
the same size). Not a timed test; the default size runs in about 15 minutes on 2 cores with cached masks.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import inspect
import io
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from idphoto_ray import matte_checks, matte_metrics, photo, render
from idphoto_ray.config import ProcessingOptions
from idphoto_ray.geometry.face import select_subject
from idphoto_ray.models.home import model_home
from idphoto_ray.models.segmenters import model_input
from idphoto_ray.person_gate import applies
from idphoto_ray.photo_path import PhotoPath, quantize_masks
from idphoto_ray.refine import clean_mask
from idphoto_ray.specs import get_spec

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "devset"
#: Photos with several people: no single subject to build a truth for.
GROUP_PHOTOS = {"deepface_selfie-many-people.jpg", "hivision_demoImage.jpg"}
#: Portraits are resized so the long side is at most this: the composites stay at working size (no decode
#: resize) and pymatting's foreground solver stays at about a megapixel.
TRUTH_LONG_SIDE = 1000
#: Soft truth values are kept only this close to the 0.5 iso-line (px at TRUTH_LONG_SIDE); elsewhere 0 or 1.
TRUTH_BAND_PX = 3
#: Bumped when the truth recipe changes, so a stale cache is rebuilt.
TRUTH_VERSION = 1
SPEC = "cn-1inch"
#: Targets from issue 13 (composites, default settings).
MAX_BLEED = 0.005
MAX_HAIR_LOSS = 0.10
#: `--framing loose`: the portrait's scale on its canvas (a snapshot from twice as far away).
LOOSE_SCALE = 0.5
#: Crown region depth as a fraction of the output height: hair above the forehead on a 1寸 photo.
CROWN_DEPTH_FRACTION = 0.12


def devset_split(devset: Path = DEVSET) -> tuple[list[str], list[str]]:
    """(calibration, validation): the development portraits sorted by name, even positions vs odd
    positions."""
    names = sorted(p.name for p in devset.glob("*.jpg"))
    return names[0::2], names[1::2]


# --- backgrounds -------------------------------------------------------------------------------------


def _solid(rgb: tuple[int, int, int]) -> Callable[[int, int], np.ndarray]:
    return lambda h, w: np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def _gradient(top: tuple[int, int, int], bottom: tuple[int, int, int], horizontal: bool = False):
    def make(h: int, w: int) -> np.ndarray:
        n = w if horizontal else h
        t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
        line = (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)
        img = (
            np.broadcast_to(line[None], (h, w, 3))
            if horizontal
            else np.broadcast_to(line[:, None], (h, w, 3))
        )
        return np.rint(img).astype(np.uint8)

    return make


def _skimage(name: str) -> Callable[[int, int], np.ndarray]:
    def make(h: int, w: int) -> np.ndarray:
        from skimage import data

        img = np.asarray(getattr(data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3].astype(np.uint8)
        scale = max(h / img.shape[0], w / img.shape[1])
        size = (max(w, int(np.ceil(img.shape[1] * scale))), max(h, int(np.ceil(img.shape[0] * scale))))
        big = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
        y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
        return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])

    return make


BACKGROUNDS: dict[str, Callable[[int, int], np.ndarray]] = {
    "wall-red": _solid((220, 30, 30)),
    "brick": _skimage("brick"),
    "wall-green": _solid((30, 200, 60)),
    "coffee": _skimage("coffee"),
    "near-hair-brown": _solid((70, 50, 38)),
    "gradient-blue-white": _gradient((20, 60, 200), (245, 245, 245)),
    "wall-blue": _solid((30, 70, 220)),
    "grass": _skimage("grass"),
    "near-skin": _solid((205, 160, 135)),
    "wall-yellow": _solid((240, 210, 20)),
    "rocket": _skimage("rocket"),
    "gradient-red-green": _gradient((200, 40, 40), (40, 160, 60), horizontal=True),
    "gravel": _skimage("gravel"),
    "near-blond": _solid((200, 170, 115)),
}


# --- segmenters --------------------------------------------------------------------------------------


@dataclass
class Segmenter:
    """A named mask model: model-size RGB image → mask in [0, 1]; `weights` is its file's sha256."""

    name: str
    size: int
    weights: str
    run: Callable[[np.ndarray], np.ndarray]


def load_segmenter(name: str) -> Segmenter | None:
    """A registry segmenter (`isnet` once `idphoto-ray models fetch isnet` put it in the model home)."""
    from idphoto_ray.models.registry import build_segmenter, resolve_segmenter, segmenter_graph

    try:
        info, path = resolve_segmenter(name)
    except Exception as exc:  # noqa: BLE001 - not fetched / unknown: its rows are skipped with a note
        print(f"{name}: {str(exc).splitlines()[0][:200]}")
        return None
    graph, sha = segmenter_graph(info, path)
    seg = build_segmenter(info, graph)
    return Segmenter(name, seg.input_size, sha, lambda image: seg([image])[0])


# --- truth -------------------------------------------------------------------------------------------


@dataclass
class Truth:
    name: str
    fg: np.ndarray  # H×W×3 uint8, estimated foreground colour
    alpha: np.ndarray  # H×W float32
    source: str  # which model made it: the bias to state next to that model's rows


def clean_truth(
    alpha: np.ndarray, face_box: tuple[float, float, float, float], band_px: int = TRUTH_BAND_PX
) -> np.ndarray:
    """The subject's component with holes filled; soft values only within `band_px` of the 0.5 iso-line."""
    kept = clean_mask(alpha, face_box, margin_px=band_px)
    person = (kept >= 0.5).astype(np.uint8)
    if not person.any():
        return kept
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1,) * 2)
    band = (cv2.dilate(person, kernel) - cv2.erode(person, kernel)).astype(bool)
    return np.where(band, kept, person.astype(np.float32)).astype(np.float32)


def _shrink(rgb: np.ndarray, long_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= long_side:
        return rgb
    s = long_side / max(h, w)
    return cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def build_truth(
    name: str, rgb: np.ndarray, detector: Any, segmenter: Segmenter, cache: Path, model_id: str
) -> Truth | None:
    """Cached truth for one portrait; None when no single subject is found."""
    key = hashlib.sha256(f"{name}|{model_id}|{TRUTH_VERSION}|{TRUTH_LONG_SIDE}".encode()).hexdigest()[:16]
    path = cache / f"{Path(name).stem}-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return Truth(name, z["fg"], z["alpha"].astype(np.float32) / 255.0, segmenter.name)
    faces = detector([rgb])[0]
    try:
        face = select_subject(faces, rgb.shape, 0.5)
    except Exception:  # noqa: BLE001 - no face / several faces: not a benchmark portrait
        return None
    mask = segmenter.run(model_input(rgb, segmenter.size))
    alpha = cv2.resize(mask, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    alpha = clean_truth(np.clip(alpha, 0, 1), face.box)
    from pymatting import estimate_foreground_ml

    fg = estimate_foreground_ml(rgb.astype(np.float64) / 255.0, alpha.astype(np.float64))
    fg8 = np.clip(np.rint(fg * 255.0), 0, 255).astype(np.uint8)
    alpha8 = np.rint(alpha * 255.0).astype(np.uint8)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, fg=fg8, alpha=alpha8)
    return Truth(name, fg8, alpha8.astype(np.float32) / 255.0, segmenter.name)


def cached_mask(
    seg: Segmenter,
    model_image: np.ndarray,
    data: bytes,
    cache: Path,
    model_id: str,
    region: tuple[float, ...] | None = None,
) -> np.ndarray:
    """The model's mask for one composite, cached by the composite's bytes and the region it shows: masks
    don't change with refinement."""
    where = b"" if region is None else ("|" + ",".join(f"{v:.6f}" for v in region)).encode()
    key = hashlib.sha256(data + model_id.encode() + where).hexdigest()[:20]
    path = cache / "masks" / f"{key}.npy"
    if path.exists():
        return np.load(path).astype(np.float32) / 65535.0
    mask = seg.run(model_image)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.rint(np.clip(mask, 0, 1) * 65535.0).astype(np.uint16))
    return mask


def loosen(truth: Truth, scale: float) -> Truth:
    """The truth shrunk by `scale` and stood at the bottom centre of a canvas of its own size: the same
    portrait taken from further away (the framing where segmenting a region around the subject matters)."""
    h, w = truth.alpha.shape
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    alpha = np.zeros((h, w), np.float32)
    fg = np.zeros((h, w, 3), np.uint8)
    x0, y0 = (w - sw) // 2, h - sh
    alpha[y0:, x0 : x0 + sw] = cv2.resize(truth.alpha, (sw, sh), interpolation=cv2.INTER_AREA)
    fg[y0:, x0 : x0 + sw] = cv2.resize(truth.fg, (sw, sh), interpolation=cv2.INTER_AREA)
    return Truth(truth.name, fg, alpha, truth.source)


def composite_jpeg(truth: Truth, background: np.ndarray) -> tuple[bytes, np.ndarray]:
    """α·F + (1 − α)·B as a quality-95 JPEG (a real photo's form); returns the bytes and the float
    composite."""
    a = truth.alpha[..., None]
    comp = np.clip(np.rint(truth.fg.astype(np.float32) * a + background.astype(np.float32) * (1 - a)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(comp.astype(np.uint8)).save(buf, format="JPEG", quality=95)
    return buf.getvalue(), comp


# --- refinement variants -----------------------------------------------------------------------------

REFINE_NAMES = ("person_alpha", "refine_alpha_crop", "closed_form_alpha", "decontaminate")


def parse_variant(variant: str) -> tuple[str, dict[str, str]]:
    """`current+matting=guided` → ("current", {"matting": "guided"}); the refinement is `improved` unless
    named."""
    base, overrides = "improved", {}
    for part in variant.split("+"):
        key, sep, value = part.partition("=")
        if sep:
            overrides[key] = value
        elif part in ("current", "improved"):
            base = part
        else:
            raise SystemExit(
                f"unknown variant part {part!r} in {variant!r}: current, improved or option=value"
            )
    return base, overrides


def variant_options(options: ProcessingOptions, region: str, overrides: dict[str, str]) -> ProcessingOptions:
    """The benchmark's options for one region and variant, validated like a config file's."""
    return ProcessingOptions.model_validate({**options.model_dump(), "segment_region": region, **overrides})


def load_baseline_refine(ref: str) -> Any:
    """refine.py as it is at git `ref`, imported as its own module (the `current` variant)."""
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:idphoto_ray/refine.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tmp = Path(tempfile.mkdtemp(prefix="refine-baseline-")) / "refine_baseline.py"
    tmp.write_text(text)
    spec = importlib.util.spec_from_file_location("refine_baseline", tmp)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Patched:
    """Runs process_photo with another module's refinement functions in the namespaces that call them
    (photo.py: the person's alpha; render.py: matting and decontamination per spec)."""

    def __init__(self, module: Any | None) -> None:
        self.module = module
        self.saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> None:
        if self.module is None:
            return
        for caller in (photo, render):
            for name in REFINE_NAMES:
                if hasattr(caller, name) and hasattr(self.module, name):
                    self.saved.append((caller, name, getattr(caller, name)))
                    setattr(caller, name, _known_kwargs(getattr(self.module, name)))
        if hasattr(photo, "person_alpha") and hasattr(self.module, "person_alpha"):
            photo.person_alpha = _region_aware(self.module.person_alpha)

    def __exit__(self, *exc: object) -> None:
        for caller, name, value in reversed(self.saved):
            setattr(caller, name, value)
        self.saved.clear()


def _known_kwargs(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A baseline function called with only the keyword arguments it knows: this tree's callers may pass
    newer ones (`closed_form_alpha(..., valid=)`), which the baseline runs without, as it did."""
    known = inspect.signature(fn).parameters

    def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **{k: v for k, v in kwargs.items() if k in known})

    return call


def _region_aware(baseline: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A baseline `person_alpha` from before region-of-interest segmentation: it runs as it was for a
    whole-frame mask; a region's mask is placed by this tree's (the clean-up is the same code)."""
    from idphoto_ray import refine

    def person_alpha(mask: np.ndarray, shape: tuple[int, ...], box: Any, region: Any = None) -> np.ndarray:
        if region is None:
            return baseline(mask, shape, box)
        return refine.person_alpha(mask, shape, box, region)

    return person_alpha


# --- scoring -----------------------------------------------------------------------------------------


def warp_to_output(layer: np.ndarray, affine: list[float], size: tuple[int, int]) -> np.ndarray:
    """A working-space layer (H×W or H×W×C float) into output space: area pre-shrink, then the affine."""
    m = np.asarray(affine, dtype=np.float64).reshape(2, 3)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    src = layer.astype(np.float32)
    if scale < 0.5:
        small = cv2.resize(src, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        sx = small.shape[1] / src.shape[1]
        sy = small.shape[0] / src.shape[0]
        # small pixel i covers source pixels centred at (i + 0.5) / s − 0.5
        to_src = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
        m = (np.vstack([m, [0, 0, 1]]) @ to_src)[:2]
        src = small
    return cv2.warpAffine(src, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def score(
    out_rgba: np.ndarray, truth: Truth, background: np.ndarray, affine: list[float]
) -> dict[str, float]:
    """All measures of one output against the truth warped into output space."""
    size = (out_rgba.shape[1], out_rgba.shape[0])
    t_alpha = np.clip(warp_to_output(truth.alpha, affine, size), 0, 1)
    t_fg = warp_to_output(truth.fg.astype(np.float32), affine, size)
    old_bg = warp_to_output(background.astype(np.float32), affine, size)
    pred = out_rgba[..., 3].astype(np.float64) / 255.0
    fg = out_rgba[..., :3].astype(np.float64)
    region = matte_metrics.crown_region(t_alpha, CROWN_DEPTH_FRACTION * out_rgba.shape[0])
    return {
        "sad": matte_metrics.sad(pred, t_alpha) / 1000.0,
        "mse": matte_metrics.mse(pred, t_alpha),
        "grad": matte_metrics.gradient_error(pred, t_alpha) / 1000.0,
        "conn": matte_metrics.connectivity_error(pred, t_alpha) / 1000.0,
        "bleed": matte_metrics.bleed(pred, t_alpha),
        "hair_loss": matte_metrics.hair_loss(pred, t_alpha, region),
        "edge_spill": matte_metrics.edge_spill(fg, pred, t_fg, old_bg, t_alpha),
        "edge_colour": matte_metrics.edge_colour_error(fg, pred, t_fg, t_alpha),
    }


# --- the run -----------------------------------------------------------------------------------------


def _portrait_list(args: argparse.Namespace) -> list[tuple[str, np.ndarray]]:
    if args.source == "astronaut":
        from idphoto_ray.samples import astronaut

        return [("astronaut", astronaut())]
    cal, val = devset_split(Path(args.devset))
    names = {"calibration": cal, "validation": val, "all": cal + val}[args.half]
    names = [n for n in names if n not in GROUP_PHOTOS][: args.portraits]
    return [(n, np.asarray(Image.open(Path(args.devset) / n).convert("RGB"))) for n in names]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per variant: medians of the errors, target shares, flag coverage of bleeding outputs."""
    table = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == variant and "sad" in r]
        if not rs:
            continue
        bleeding = [r for r in rs if r["bleed"] > MAX_BLEED]
        table.append(
            {
                "variant": variant,
                "n": len(rs),
                "failed": sum(1 for r in rows if r["variant"] == variant and "sad" not in r),
                **{
                    k: float(np.median([r[k] for r in rs]))
                    for k in ("sad", "mse", "grad", "conn", "edge_spill", "edge_colour")
                },
                "edge_spill_mean": float(np.mean([r["edge_spill"] for r in rs])),
                "bleed_p95": _pct([r["bleed"] for r in rs], 95),
                "bleed_ok": float(np.mean([r["bleed"] <= MAX_BLEED for r in rs])),
                "hair_ok": float(np.mean([r["hair_loss"] <= MAX_HAIR_LOSS for r in rs])),
                "hair_loss_p90": _pct([r["hair_loss"] for r in rs], 90),
                "bleeding_flagged": (sum(1 for r in bleeding if r["matte_flags"]), len(bleeding)),
                "clean_flagged": (
                    sum(1 for r in rs if r["bleed"] <= MAX_BLEED and r["matte_flags"]),
                    sum(1 for r in rs if r["bleed"] <= MAX_BLEED),
                ),
                "s_per_photo": float(np.median([r["seconds"] for r in rs])),
                "region_share": float(np.median([r.get("region_share", 1.0) for r in rs])),
            }
        )
    return table


def _ratio(pair: tuple[int, int]) -> str:
    return f"{pair[0]}/{pair[1]}"


def print_table(table: list[dict[str, Any]], truth_source: str) -> None:
    head = (
        f"{'variant':<34}{'n':>4}{'SAD/1k':>8}{'MSE':>9}{'grad/1k':>9}{'conn/1k':>9}{'spill':>8}{'colour':>8}"
        f"{'bleed<=.5%':>11}{'bleed p95':>10}{'hair<=10%':>10}{'hair p90':>9}{'flag bleed':>11}"
        f"{'flag clean':>11}{'s/photo':>8}{'region':>7}"
    )
    print(head)
    for r in table:
        model = r["variant"].split(" / ")[0]
        note = ""
        if model == truth_source:
            note = "  (truth is this model's own alpha: biased)"
        elif model.startswith(truth_source):  # isnet-small against isnet: the same network, quantised
            note = "  (truth is the same network's alpha: biased)"
        print(
            f"{r['variant']:<34}{r['n']:>4}{r['sad']:>8.2f}{r['mse']:>9.5f}{r['grad']:>9.2f}{r['conn']:>9.2f}"
            f"{r['edge_spill']:>8.4f}{r['edge_colour']:>8.4f}{r['bleed_ok']:>11.0%}{r['bleed_p95']:>10.2%}{r['hair_ok']:>10.0%}"
            f"{r['hair_loss_p90']:>9.1%}{_ratio(r['bleeding_flagged']):>11}{_ratio(r['clean_flagged']):>11}"
            f"{r['s_per_photo']:>8.2f}{r['region_share']:>7.0%}{note}"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["devset", "astronaut"], default="devset")
    parser.add_argument("--devset", default=str(DEVSET))
    parser.add_argument("--half", choices=["calibration", "validation", "all"], default="validation")
    parser.add_argument("--portraits", type=int, default=12)
    parser.add_argument("--backgrounds", type=int, default=6, help="backgrounds per portrait (rotating list)")
    parser.add_argument("--models", default="mediapipe-selfie,isnet")
    parser.add_argument("--truth-model", default="isnet")
    parser.add_argument(
        "--baseline-ref", default="49e59e3", help="git ref whose refine.py is the `current` variant"
    )
    parser.add_argument(
        "--variants",
        default="improved",
        help="refinements: current (refine.py at --baseline-ref), improved, each +option=value (see above)",
    )
    parser.add_argument("--regions", default="whole,roi", help="what is segmented: whole, roi")
    parser.add_argument(
        "--framing",
        choices=["as-taken", "loose"],
        default="as-taken",
        help=f"loose: each portrait at {LOOSE_SCALE:g}× on a canvas of its size (taken from further away)",
    )
    parser.add_argument("--cache", default=str(model_home() / "bench" / "matte"))
    parser.add_argument("--sheets", default=None, help="folder for per-variant contact sheets (JPEG)")
    parser.add_argument("--out", default=None, help="write all rows and the table as JSON")
    args = parser.parse_args(argv)

    if not (args.source == "astronaut" or Path(args.devset).is_dir()):
        print(f"no development portraits at {args.devset}: use --source astronaut")
        return {"rows": [], "table": []}
    options = ProcessingOptions()
    spec = get_spec(SPEC)
    path = PhotoPath.load([spec], ["transparent"], options)
    regions = args.regions.split(",")
    variants = {v: parse_variant(v) for v in args.variants.split(",")}
    models = args.models.split(",")
    paths = {}
    for m, r, (v, (_, overrides)) in itertools.product(models, regions, variants.items()):
        opts = variant_options(options, r, overrides)
        gate = path.person_gate if applies(opts.person_gate, m) else None  # as the job decides
        paths[m, r, v] = PhotoPath(path.detector, path.landmarker, [spec], path.backgrounds, opts, gate=gate)
    truth_seg = load_segmenter(args.truth_model)
    if truth_seg is None:
        print(f"truth model {args.truth_model!r} is not available (idphoto-ray models fetch isnet)")
        return {"rows": [], "table": []}
    truth_id = f"{truth_seg.name}:{truth_seg.weights[:12]}"
    segmenters = {}
    for name in models:
        seg = truth_seg if name == truth_seg.name else load_segmenter(name)
        if seg is not None:
            segmenters[name] = seg
    seg_ids = {name: truth_id if seg is truth_seg else name for name, seg in segmenters.items()}
    needs_baseline = any(base == "current" for base, _ in variants.values())
    baseline = load_baseline_refine(args.baseline_ref) if needs_baseline else None
    bg_names = list(BACKGROUNDS)

    if TRUTH_LONG_SIDE > options.working_long_side:
        raise SystemExit("composites must stay at working size: the output affine maps the working image")
    rows: list[dict[str, Any]] = []
    sheets: dict[str, list[np.ndarray]] = {}
    started = time.perf_counter()
    for p_index, (name, rgb) in enumerate(_portrait_list(args)):
        truth = build_truth(
            name, _shrink(rgb, TRUTH_LONG_SIDE), path.detector, truth_seg, Path(args.cache), truth_id
        )
        if truth is None:
            print(f"  {name}: no single subject, skipped")
            continue
        if args.framing == "loose":
            truth = loosen(truth, LOOSE_SCALE)
        h, w = truth.alpha.shape
        for k in range(args.backgrounds):
            bg_name = bg_names[(p_index * args.backgrounds + k) % len(bg_names)]
            background = BACKGROUNDS[bg_name](h, w)
            data, _ = composite_jpeg(truth, background)
            for (model, seg), region in itertools.product(segmenters.items(), regions):
                t0 = time.perf_counter()
                prepared = paths[model, region, next(iter(variants))].prepare(data, seg.size)
                prepare_s = time.perf_counter() - t0
                mask = cached_mask(
                    seg, prepared.model_image, data, Path(args.cache), seg_ids[model], prepared.region
                )
                box = prepared.region or (0.0, 0.0, 1.0, 1.0)
                for variant, (base, _) in variants.items():
                    label = f"{model} / {region} / {variant}"
                    t0 = time.perf_counter()
                    with _Patched(baseline if base == "current" else None):
                        result = paths[model, region, variant].finish(prepared, quantize_masks(mask[None])[0])
                    seconds = time.perf_counter() - t0 + prepare_s
                    row: dict[str, Any] = {
                        "variant": label,
                        "portrait": name,
                        "background": bg_name,
                        "status": result.status.value,
                        "seconds": seconds,
                        "region_share": (box[2] - box[0]) * (box[3] - box[1]),
                    }
                    if result.outputs:
                        out = np.asarray(Image.open(io.BytesIO(result.outputs[0].data)).convert("RGBA"))
                        affine = list(result.outputs[0].affine)  # working px → output px
                        row.update(score(out, truth, background, affine))
                        row["matte_flags"] = [f for f in result.flags if f in matte_checks.MATTE_FLAGS]
                        row["checks"] = result.metrics["specs"][SPEC].get("matte", {})
                        if args.sheets:
                            sheets.setdefault(label, []).append(_tile(out, f"{Path(name).stem} {bg_name}"))
                    else:
                        row["reason"] = result.reason.value if result.reason else ""
                    rows.append(row)
        print(f"  {name}: done ({time.perf_counter() - started:.0f} s)", flush=True)

    table = summarise(rows)
    print(
        f"\nmatte quality, {SPEC}, framing {args.framing}, truth: {truth_seg.name} (cleaned); "
        f"{len(rows)} outputs; {time.perf_counter() - started:.0f} s"
    )
    print_table(table, truth_seg.name)
    if args.sheets:
        _write_sheets(sheets, Path(args.sheets))
    result = {
        "rows": rows,
        "table": table,
        "truth": truth_seg.name,
        "baseline_ref": args.baseline_ref,
        "framing": args.framing,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return result


def _tile(rgba: np.ndarray, label: str) -> np.ndarray:
    """The output over white, captioned: white shows halos and grey smears best."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = np.rint(rgba[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)
    tile = cv2.copyMakeBorder(rgb, 18, 2, 2, 2, cv2.BORDER_CONSTANT, value=(60, 60, 60))
    cv2.putText(tile, label[:40], (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1)
    return tile


def _write_sheets(sheets: dict[str, list[np.ndarray]], folder: Path, per_row: int = 6) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for label, tiles in sheets.items():
        rows = []
        for i in range(0, len(tiles), per_row):
            row = tiles[i : i + per_row]
            row += [np.zeros_like(tiles[0])] * (per_row - len(row))
            rows.append(np.hstack(row))
        name = label.replace(" / ", "-").replace(" ", "_")
        Image.fromarray(np.vstack(rows)).save(folder / f"{name}.jpg", quality=85)


if __name__ == "__main__":
    main()
    sys.exit(0)
