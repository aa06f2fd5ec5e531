"""`ray_for_this_command`: a one-shot command stops the Ray it started, and only that one."""

from __future__ import annotations

import pytest

from idphoto_ray.job import ray_start


class FakeRay:
    """Stands in for the `ray` module: up or not, and how often it was shut down."""

    def __init__(self, up: bool) -> None:
        self.up = up
        self.shutdowns = 0

    def is_initialized(self) -> bool:
        return self.up

    def shutdown(self) -> None:
        self.shutdowns += 1
        self.up = False


def test_stops_the_ray_the_block_started(monkeypatch):
    fake = FakeRay(up=False)
    monkeypatch.setattr(ray_start, "ray", fake)
    with ray_start.ray_for_this_command():
        fake.up = True  # run_job's init_ray
    assert fake.shutdowns == 1 and not fake.up


def test_leaves_a_ray_that_was_already_up(monkeypatch):
    fake = FakeRay(up=True)
    monkeypatch.setattr(ray_start, "ray", fake)
    with ray_start.ray_for_this_command():
        pass
    assert fake.shutdowns == 0 and fake.up


def test_stops_it_when_the_job_fails_too(monkeypatch):
    fake = FakeRay(up=False)
    monkeypatch.setattr(ray_start, "ray", fake)
    with pytest.raises(ValueError), ray_start.ray_for_this_command():
        fake.up = True
        raise ValueError("a bad config")
    assert fake.shutdowns == 1


def test_nothing_to_stop_when_ray_never_started(monkeypatch):
    fake = FakeRay(up=False)
    monkeypatch.setattr(ray_start, "ray", fake)
    with ray_start.ray_for_this_command():
        pass  # refused before Ray starts (preflight, no inputs)
    assert fake.shutdowns == 0
