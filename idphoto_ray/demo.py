"""`idphoto-ray demo`: the whole job on a sample set made from bundled portraits, on a local Ray."""

from __future__ import annotations

from pathlib import Path

from idphoto_ray.config import JobConfig
from idphoto_ray.job.run import RunSummary, run_job
from idphoto_ray.samples import write_samples


def demo_config(folder: Path) -> JobConfig:
    """Same settings as configs/sample.yaml, embedded so an installed package needs no repo checkout."""
    return JobConfig(
        input=[str(folder / "samples")],
        output=str(folder / "results"),
        specs=["cn-1inch", "cn-2inch", "us-passport"],
        backgrounds=["blue", "white", "red"],
        model="mediapipe-selfie",
        device="auto",
        batch_size=8,
    )


def run_demo(folder: Path, progress: bool = True) -> RunSummary:
    folder.mkdir(parents=True, exist_ok=True)
    written = write_samples(folder / "samples")
    print(f"wrote {len(written)} sample photos to {folder / 'samples'}")
    return run_job(demo_config(folder), progress=progress)
