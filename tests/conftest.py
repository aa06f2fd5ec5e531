"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mediapipe_models():
    """name → cached ONNX path for the three MediaPipe models (default model home, fetched once)."""
    from idphoto_ray.models.mediapipe_fetch import MEDIAPIPE_MODELS, ensure

    return {name: ensure(name) for name in MEDIAPIPE_MODELS}
