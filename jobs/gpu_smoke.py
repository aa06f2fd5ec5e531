"""GPU smoke check: every model runs on the CUDA provider and matches its CPU output within 1e-3.

Run on a machine with a GPU and the `gpu` extra installed (`pip install -e ".[gpu]"`):
    python jobs/gpu_smoke.py [--models mediapipe-selfie blazeface face-mesh u2net-arch]
Exits non-zero when CUDA is not active or an output differs.
"""

from __future__ import annotations

# The ONNX Runtime check runs before any import that needs it.
from idphoto_ray.install_check import require_onnxruntime

require_onnxruntime()

import argparse
import sys
import time

import numpy as np

from idphoto_ray.models.registry import fetch_models
from idphoto_ray.models.session import create_session

TOLERANCE = 1e-3


def _feeds(session, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in inp.shape]
        feeds[inp.name] = rng.random(shape, dtype=np.float32)
    return feeds


def check(name: str, path, batch: int) -> tuple[bool, str]:
    cpu = create_session(path, device="cpu")
    cuda = create_session(path, device="cuda")
    active = cuda.get_providers()[0]
    if active != "CUDAExecutionProvider":
        return False, f"{name}: active provider is {active}"
    feeds = _feeds(cpu, batch)
    expected = cpu.run(None, feeds)
    cuda.run(None, feeds)  # warm-up: cuDNN algorithm search
    started = time.perf_counter()
    got = cuda.run(None, feeds)
    ms = (time.perf_counter() - started) * 1000
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, got, strict=False))
    ok = worst <= TOLERANCE
    return (
        ok,
        f"{name}: CUDA active, batch {batch} in {ms:.1f} ms,"
        f" max |cuda - cpu| = {worst:.2e} ({'ok' if ok else 'TOO LARGE'})",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=["mediapipe-selfie", "blazeface", "face-mesh", "u2net-arch"]
    )
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    paths = fetch_models(args.models)
    results = []
    for name in args.models:
        try:
            results.append(check(name, paths[name], args.batch))
        except RuntimeError as exc:
            results.append((False, f"{name}: {exc}"))
    for _, line in results:
        print(line)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
