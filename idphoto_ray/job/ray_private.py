"""Every use of Ray Data internals (`ray.data._internal`), in one place.

The photo-count backpressure policy plugs into an internal interface, and the job's DataContext changes
must be given back afterwards (a notebook's other datasets share the process's context). A Ray that
moved the interface still runs the job, without the photo bound, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

try:
    from ray.data._internal.execution.backpressure_policy import (
        ENABLED_BACKPRESSURE_POLICIES,
        ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY,
        BackpressurePolicy,
    )
    from ray.data._internal.execution.operators.input_data_buffer import InputDataBuffer
except ImportError:  # pragma: no cover - depends on the installed Ray
    BackpressurePolicy = object  # type: ignore[assignment,misc]
    InputDataBuffer = None  # type: ignore[assignment,misc]

_IN_FLIGHT_KEY = "idphoto_ray.max_photos_in_flight"
#: Public DataContext attributes run_job sets; saved and restored with the policy list.
_JOB_SETTINGS = (
    "enable_progress_bars",
    "execution_no_progress_timeout_s",
    "wait_for_min_actors_s",
    "op_resource_reservation_enabled",
    "downstream_capacity_backpressure_ratio",
)


class PhotoQueueBackpressure(BackpressurePolicy):
    """Holds back the reading operator while too many photos are read but not yet finished.

    Ray Data bounds its queues in bytes, split into per-operator reservations that go to upstream
    operators first: on a 2-CPU node reading and preparing held both CPUs, finishing could not start until
    every file was read, and the object store grew with the dataset (130 MB at 200 photos, 874 MB at 2000).
    A budget small enough to stop that starved the fast operators instead (6 against 10 photos/s at 64 MB).
    Counting photos bounds the queue at full speed. Runs in the driver's executor loop.
    """

    def __init__(self, data_context: Any, topology: Any, resource_manager: Any) -> None:
        super().__init__(data_context, topology, resource_manager)
        self._cap, self._per_read = data_context.get_config(_IN_FLIGHT_KEY) or (0, 0)
        ops = list(topology)
        self._readers = [
            op for op in ops if any(isinstance(dep, InputDataBuffer) for dep in op.input_dependencies)
        ]
        self._sinks = [op for op in ops if not op.output_dependencies]

    @property
    def name(self) -> str:
        return "PhotoQueue"

    def in_flight(self) -> float:
        """Photos read or being read whose finishing task has not completed."""
        read = 0.0
        for op in self._readers:
            metrics = op.metrics
            # A running read counts in full until it finishes: its rows may already be generated.
            read += metrics.rows_outputs_of_finished_tasks + self._per_read * metrics.num_tasks_running
        finished = 0.0
        for op in self._sinks:
            metrics = op.metrics
            pending = getattr(metrics, "_pending_task_inputs", None)
            waiting = pending.num_rows() if pending is not None else 0
            finished += metrics.rows_inputs_of_submitted_tasks - waiting
        return read - finished

    def can_add_input(self, op: Any) -> bool:
        if not self._cap or op not in self._readers:
            return True
        return self.in_flight() < self._cap


class JobContext:
    """The process's DataContext while a job runs, plus the photo bound that needs Ray Data internals."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def bound_photos(self, cap: int, photos_per_read: int) -> None:
        """Adds the photo-count policy to Ray Data's own (they all must agree before a read starts)."""
        if InputDataBuffer is None:
            log.warning(
                "this Ray has no backpressure-policy interface where idphoto-ray expects it: memory "
                "is bounded by Ray Data's object-store budget only (set object_store_limit_mb)"
            )
            return
        key = ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY
        policies = list(self.ctx.get_config(key, ENABLED_BACKPRESSURE_POLICIES))
        if PhotoQueueBackpressure not in policies:
            policies.append(PhotoQueueBackpressure)
        self.ctx.set_config(key, policies)
        self.ctx.set_config(_IN_FLIGHT_KEY, (cap, photos_per_read))

    def bound_by_photos_only(self) -> None:
        """Ray Data's downstream-capacity rule off: with the per-operator reservations off it compares bytes
        queued after an operator with what its consumer holds, and after finishing that is the driver's
        prefetch of ~500-byte manifest rows. With IS-Net it held every finished photo's row, and the next
        finishing task, until the last photo was segmented (6 photos: all six finished after the last mask,
        the run ending 2–5 s after it instead of 0.4 s). The photo bound keeps memory flat without it."""
        self.ctx.downstream_capacity_backpressure_ratio = None


def start_data_helpers() -> None:
    """Start Ray Data's helper actors now instead of when the dataset starts executing.

    The executor creates its autoscaling coordinator, stats actor and actor-location tracker (three Python
    processes, ~3.5 s of CPU each to start) only once the segmentation actors are up, and its first task
    waited for the coordinator: 4–7 s after the IS-Net actor was ready, on 2 busy cores. Started here they
    load while the driver plans and the actors start. They are named, get-or-create actors, so Ray Data
    finds these. A Ray that moved them only loses the head start.
    """
    try:
        from ray.data._internal.cluster_autoscaler import get_or_create_autoscaling_coordinator
        from ray.data._internal.execution.node_trackers import get_or_create_actor_location_tracker
        from ray.data._internal.stats import get_or_create_stats_actor
    except ImportError:  # pragma: no cover - depends on the installed Ray
        return
    starts = (
        get_or_create_autoscaling_coordinator,
        get_or_create_stats_actor,
        get_or_create_actor_location_tracker,
    )
    for start in starts:
        try:
            start()
        except Exception:  # noqa: BLE001 - an optimisation only: Ray Data starts them itself
            log.debug("could not run %s early", start.__name__, exc_info=True)


@contextmanager
def job_data_context() -> Iterator[JobContext]:
    """The current DataContext for one job; whatever the job changes on it is given back on exit."""
    import ray

    ctx = ray.data.DataContext.get_current()
    saved = {name: getattr(ctx, name) for name in _JOB_SETTINGS}
    limits = ctx.execution_options.resource_limits
    has_policies = InputDataBuffer is not None
    policies = ctx.get_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY) if has_policies else None
    try:
        yield JobContext(ctx)
    finally:
        for name, value in saved.items():
            setattr(ctx, name, value)
        ctx.execution_options.resource_limits = limits
        ctx.remove_config(_IN_FLIGHT_KEY)
        if InputDataBuffer is not None:
            if policies is None:
                ctx.remove_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY)
            else:
                ctx.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, policies)
