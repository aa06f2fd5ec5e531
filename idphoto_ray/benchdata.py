"""Benchmark photo set: N phone-sized JPEGs made from scikit-image's astronaut, cached and deterministic.

Sizes are a mix of 12 MP (4000×3000), 3 MP (2000×1500) and 1 MP (1152×864), portrait or landscape,
with the subject at varied scale, position and roll on varied background colours and JPEG qualities.
Every photo is a function of (seed, index) only, so a cache folder made once is reused by every run
and a larger N extends a smaller one. Files are named `p{index:05d}_{w}x{h}.jpg`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from idphoto_ray.atomic import atomic_write_bytes
from idphoto_ray.samples import astronaut, jpeg_bytes

#: (width, height, share of the set) — landscape; a third of each size class is rotated to portrait.
SIZES: tuple[tuple[int, int, float], ...] = ((4000, 3000, 0.4), (2000, 1500, 0.3), (1152, 864, 0.3))
GENERATOR_VERSION = 2


def _size_for(rng: np.random.Generator) -> tuple[int, int]:
    shares = np.array([s[2] for s in SIZES])
    w, h, _ = SIZES[int(rng.choice(len(SIZES), p=shares / shares.sum()))]
    if rng.random() < 1 / 3:
        w, h = h, w
    return w, h


def make_photo(index: int, seed: int = 0) -> tuple[str, bytes, dict]:
    """(file name, JPEG bytes, parameters) for photo `index` of the set with `seed`."""
    rng = np.random.default_rng([seed, index])
    width, height = _size_for(rng)
    base = Image.fromarray(astronaut())
    # The astronaut's head+shoulders fill most of the 512² frame. Scale so the face is 13–17 % of the
    # long side (a phone portrait taken at different distances; BlazeFace short-range, which the
    # pipeline uses, needs roughly that), never taller than the frame.
    long_side = max(width, height)
    subject_h = int(min(long_side * rng.uniform(0.66, 0.85), height * 0.98))
    subject = base.resize((subject_h, subject_h), Image.Resampling.BILINEAR)
    roll = float(rng.uniform(-8.0, 8.0))
    bg = tuple(int(v) for v in rng.integers(30, 235, size=3))
    if abs(roll) > 0.5:
        subject = subject.rotate(roll, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=bg)
    canvas = Image.new("RGB", (width, height), bg)
    # A soft vertical gradient so the background is not one flat colour.
    ramp = np.linspace(0.85, 1.1, height, dtype=np.float32)[:, None, None]
    canvas = Image.fromarray(np.clip(np.asarray(canvas, np.float32) * ramp, 0, 255).astype(np.uint8))
    max_dx = max(0, (width - subject.width) // 2)
    x = (width - subject.width) // 2 + int(rng.uniform(-0.6, 0.6) * max_dx)
    y = height - subject.height + int(rng.uniform(0.0, 0.08) * subject.height)
    canvas.paste(subject, (x, y))
    quality = int(rng.integers(70, 96))
    params = {
        "width": width,
        "height": height,
        "subject_h": subject_h,
        "roll": round(roll, 2),
        "background": bg,
        "quality": quality,
    }
    return f"p{index:05d}_{width}x{height}.jpg", jpeg_bytes(canvas, quality), params


def ensure_dataset(folder: str | Path, n: int, seed: int = 0, workers: int = 1) -> list[Path]:
    """The first `n` photos of the set in `folder/seed{seed}-v{version}/`, generating only missing ones."""
    root = Path(folder) / f"seed{seed}-v{GENERATOR_VERSION}"
    root.mkdir(parents=True, exist_ok=True)
    index_file = root / "index.json"
    index: dict[str, str] = json.loads(index_file.read_text()) if index_file.exists() else {}
    missing = [i for i in range(n) if str(i) not in index or not (root / index[str(i)]).exists()]
    if missing:
        if workers > 1 and len(missing) > 8:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers) as pool:
                made = list(pool.map(_write_one, [(root, i, seed) for i in missing], chunksize=4))
        else:
            made = [_write_one((root, i, seed)) for i in missing]
        for i, name in made:
            index[str(i)] = name
        atomic_write_bytes(index_file, json.dumps(index, sort_keys=True).encode())
    return [root / index[str(i)] for i in range(n)]


def _write_one(args: tuple[Path, int, int]) -> tuple[int, str]:
    root, i, seed = args
    name, data, _ = make_photo(i, seed)
    atomic_write_bytes(root / name, data)
    return i, name


def replicate(files: list[Path], n: int, folder: str | Path) -> list[Path]:
    """`n` input paths made by hard-linking (or copying) `files` round-robin into `folder` — a large set
    for memory checks without generating and storing `n` distinct 12 MP files."""
    import os
    import shutil

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        src = files[k % len(files)]
        dst = out / f"r{k:06d}_{src.name}"
        if not dst.exists():
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        paths.append(dst)
    return paths
