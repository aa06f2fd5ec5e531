"""How the segmentation actor pool is laid out, and how many photos may be in flight."""

from __future__ import annotations

from dataclasses import dataclass, replace

from idphoto_ray.config import JobConfig

#: On a CPU, a segmenter input this large or larger makes the model the job's bottleneck by far: IS-Net
#: (1024²) costs 6.2 core-s per photo against 0.31 for prepare and finish together (30 development
#: portraits, 2026-12-02), where mediapipe-selfie (256²) costs 0.01 against 0.06.
HEAVY_INPUT_PX = 512
#: Photos per finishing task and per read block when the model is cheap: fewer, larger tasks (Ray's per-task
#: cost stays small beside 60 ms of finishing per photo; one read task per file was slower, run.py).
FINISH_BATCH = 4
PHOTOS_PER_BLOCK = 16
#: Cores per CPU-stage process when the model is heavy: 0.31 of 6.5 core-s per photo is 5 % of the work, so
#: one process per 8 cores keeps 2.5 × headroom and on 2 cores saves starting (and holding) a second one.
CORES_PER_TASK_WHEN_HEAVY = 8


@dataclass(frozen=True)
class PoolPlan:
    """How the segmentation stage is laid out on the cluster, and how the CPU stages around it run."""

    actors: int
    threads: int
    gpus_per_actor: float
    cpus_per_actor: float
    batch_size: int
    #: Photos per finishing task.
    finish_batch: int = FINISH_BATCH
    #: Photos per block read; a block stays together through prepare and segmentation, whose output for it
    #: comes out only when its last photo is segmented.
    photos_per_block: int = PHOTOS_PER_BLOCK
    #: How many prepare (and, as many, finishing) tasks may run at once; None: one per logical CPU.
    cpu_tasks: int | None = None


def plan_pool(config: JobConfig, cpus: int, gpus: int, input_px: int = 0) -> PoolPlan:
    """Size the segmentation actor pool from the config, the cluster's resources and the model's input side.

    GPU: one actor per GPU. CPU: the actors reserve no logical CPU, so decode and finishing tasks keep
    every core; the ORT threads (cores split between actors, spin-waiting off) share the cores with
    them. Benchmarks showed a CPU actor pinning a whole core idles it when the model is cheap
    (mediapipe-selfie: 10 ms/photo against 126 ms of finishing).
    """
    use_gpu = config.device == "cuda" or (config.device == "auto" and gpus > 0)
    if use_gpu:
        actors = config.concurrency or max(1, gpus)
        return PoolPlan(actors, config.intra_op_num_threads or 1, 1.0, 1.0, config.batch_size or 32)
    actors = config.concurrency or max(1, cpus // 8)
    threads = config.intra_op_num_threads or max(1, cpus // actors)
    # On CPU, batch 1 ran u2net-arch 28 % faster than batch 4 (1.65 vs 1.29 /s, model only) in half the
    # memory.
    plan = PoolPlan(actors, threads, 0.0, 0.0, config.batch_size or 1)
    if input_px < HEAVY_INPUT_PX:
        return plan
    # The model is the bottleneck: each photo travels alone and is finished as soon as its mask exists, in as
    # few processes as keep up with it. In blocks of 8 the masks came out together when the block's last one
    # was done (IS-Net: ~25 s later), and the run ended with up to 8 photos finished after the last mask.
    cpu_tasks = max(1, cpus // CORES_PER_TASK_WHEN_HEAVY)
    return replace(plan, finish_batch=1, photos_per_block=1, cpu_tasks=cpu_tasks)


def photos_in_flight(config: JobConfig, cpus: int, pool: PoolPlan) -> int:
    """The photo-count bound on the queue between reading and finishing.

    Never below four segmentation batches per actor: the actors wait for full batches, and a bound smaller
    than what they hold would stop the reader before a batch could fill.
    """
    wanted = config.max_photos_in_flight or max(64, 32 * cpus)
    return max(wanted, 4 * pool.batch_size * pool.actors)
