"""Segmentation pool layout: one actor per GPU on cuda; CPU actors reserve no core and split the threads."""

from idphoto_ray.config import JobConfig
from idphoto_ray.job.pool import plan_pool


def test_cuda_gets_one_actor_per_gpu():
    plan = plan_pool(JobConfig(device="cuda"), cpus=32, gpus=4)
    assert (plan.actors, plan.gpus_per_actor, plan.cpus_per_actor) == (4, 1.0, 1.0)
    assert plan_pool(JobConfig(device="cuda", concurrency=8), cpus=32, gpus=4).actors == 8


def test_auto_follows_the_cluster():
    assert plan_pool(JobConfig(device="auto"), cpus=2, gpus=1).gpus_per_actor == 1.0
    assert plan_pool(JobConfig(device="auto"), cpus=2, gpus=0).gpus_per_actor == 0.0


def test_cpu_actors_leave_cores_to_decode_and_finish():
    plan = plan_pool(JobConfig(device="cpu"), cpus=2, gpus=1)
    assert (plan.actors, plan.threads, plan.cpus_per_actor, plan.gpus_per_actor) == (1, 2, 0.0, 0.0)
    plan = plan_pool(JobConfig(device="cpu", concurrency=4), cpus=64, gpus=0)
    assert (plan.actors, plan.threads) == (4, 16)
    assert plan_pool(JobConfig(device="cpu", intra_op_num_threads=3), cpus=64, gpus=0).threads == 3


def test_batch_size_defaults_by_device_and_config_wins():
    assert plan_pool(JobConfig(device="cuda"), cpus=8, gpus=1).batch_size == 32
    assert plan_pool(JobConfig(device="cpu"), cpus=8, gpus=0).batch_size == 1
    assert plan_pool(JobConfig(device="cpu", batch_size=16), cpus=8, gpus=0).batch_size == 16


def test_a_heavy_cpu_model_gets_photo_sized_blocks_and_few_cpu_stage_processes():
    cheap = plan_pool(JobConfig(device="cpu"), cpus=2, gpus=0, input_px=256)
    assert (cheap.finish_batch, cheap.photos_per_block, cheap.cpu_tasks) == (4, 16, None)
    heavy = plan_pool(JobConfig(device="cpu"), cpus=2, gpus=0, input_px=1024)
    assert (heavy.finish_batch, heavy.photos_per_block, heavy.cpu_tasks) == (1, 1, 1)
    assert (heavy.actors, heavy.threads, heavy.batch_size) == (cheap.actors, cheap.threads, cheap.batch_size)
    assert plan_pool(JobConfig(device="cpu"), cpus=16, gpus=0, input_px=1024).cpu_tasks == 2
    # on a GPU the CPU stages are the bottleneck whatever the model: every core, batches of four
    gpu = plan_pool(JobConfig(device="cuda"), cpus=16, gpus=1, input_px=1024)
    assert (gpu.finish_batch, gpu.photos_per_block, gpu.cpu_tasks) == (4, 16, None)
