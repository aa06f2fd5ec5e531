"""Kept for notebooks and scripts written against earlier versions: the job lives in `idphoto_ray.job`."""

from idphoto_ray.job.run import RunSummary, init_ray, run_job

__all__ = ["RunSummary", "init_ray", "run_job"]
