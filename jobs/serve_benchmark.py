"""Service benchmark: concurrent clients against the local Serve app, beside a sequential loop and a job.

    python jobs/serve_benchmark.py                                   # 1, 8, 32, 128, 256 clients, 16 photos
    python jobs/serve_benchmark.py --runs 3                          # medians of three runs
    python jobs/serve_benchmark.py --model isnet --n 8 --clients 1,8,32   # IS-Net (10× slower per photo)
    python jobs/serve_benchmark.py --smoke                           # seconds-scale check (the tests run it)

Loopback only (127.0.0.1, a port of its own), bounded in count and time: each level stops sending after
`--requests-per-client` requests per client or `--level-seconds`, whichever comes first, then waits at most
`--drain-seconds` for what is in flight (requests still unanswered then are cancelled and counted as
`unfinished`). Figures, in one process, on the same photos and model, in this order:

- sequential  one process, no Ray, no HTTP: the photo path (prepare → the same ONNX session → finish)
              photo after photo — what a user's own loop does.
- batch job   `run_job` on the same photos (Ray Data, written outputs, manifest).
- service     `build_app` on Serve (the app `idphoto-ray serve` runs). Time to the first photo once /readyz
              answers; then per level of concurrent clients: throughput (200 answers per second), latency
              p50/p95/p99 of those, the share answered 429 (a refused client waits Retry-After, goes on),
              other errors, the segmenter's batch sizes in that level (from /v1/stats) and the share of
              photos segmented in a batch of 2 or more, peak RSS of the Serve replicas, and the CPU the
              load generator used (this process: the HTTP clients and an idle Ray driver), in cores.
Replica restarts: replica process ids before the first level and after the last. With `--runs 3` every
figure is the median of the runs (batch sizes: summed over them), printed as a table at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_CLIENTS = (1, 8, 32, 128, 256)
PORT = 18417
SPECS = ["cn-1inch"]
BACKGROUNDS = ["blue"]


# ------------------------------------------------------------------------------------------- measuring
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: with 20 samples p99 is the slowest, as it should be)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def replica_processes() -> list[Any]:
    """This machine's Serve replica processes (`ray::ServeReplica:<app>:<deployment>`) of our app."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, TypeError, IndexError):
            cmd = proc.info["cmdline"] or []
            if cmd and cmd[0].startswith("ray::ServeReplica:idphoto-bench"):
                found.append(proc)
    return found


class RssSampler:
    """Peak summed RSS of the replica processes, sampled every 0.25 s in a thread."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in replica_processes():
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += proc.memory_info().rss
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._stop.wait(0.25)

    def __enter__(self) -> RssSampler:  # noqa: PYI034 - a plain class, not meant for subclassing
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def replica_rss_mb() -> float:
    import psutil

    total = 0
    for proc in replica_processes():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total / 2**20


# ------------------------------------------------------------------------------------------- baselines
def sequential(photos: list[bytes], model: str) -> dict[str, Any]:
    """The photo path in one process, photo after photo: no Ray, no HTTP."""
    from idphoto_ray import manifest
    from idphoto_ray.config import ProcessingOptions
    from idphoto_ray.models.registry import build_segmenter, resolve_segmenter, segmenter_graph
    from idphoto_ray.photo_path import PhotoPath, quantize_masks
    from idphoto_ray.specs import all_specs

    catalogue = all_specs([])
    path = PhotoPath.load([catalogue[s] for s in SPECS], BACKGROUNDS, ProcessingOptions())
    info, weights = resolve_segmenter(model)
    segmenter = build_segmenter(info, segmenter_graph(info, weights)[0], device="cpu")
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    for data in photos:
        prepared = path.prepare(data, segmenter.input_size)
        mask = quantize_masks(segmenter([prepared.model_image]))[0]
        row = manifest.new_row("x", "x", len(data), "", "", "")
        path.finish_row(row, prepared, mask, 0.0)
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    wall = time.perf_counter() - started
    return {
        "photos": len(photos),
        "wall_s": round(wall, 2),
        "photos_per_s": round(len(photos) / wall, 3),
        "statuses": statuses,
    }


def batch_job(folder: Path, out: Path, model: str) -> dict[str, Any]:
    from idphoto_ray.config import JobConfig
    from idphoto_ray.job.run import run_job

    config = JobConfig(
        input=[str(folder)], output=str(out), specs=SPECS, backgrounds=BACKGROUNDS, model=model, device="cpu"
    )
    summary = run_job(config, progress=False)
    return {
        "photos": summary.processed,
        "wall_s": round(summary.wall_s, 2),
        "photos_per_s": round(summary.images_per_s, 3),
        "statuses": summary.counts,
    }


# --------------------------------------------------------------------------------------------- service
def start_service(model: str, workdir: Path, gate_wait_s: float | None = None) -> float:
    """Deploy the app on loopback; seconds until /readyz answers 200."""
    import httpx
    from ray import serve

    from idphoto_ray.service.app import build_app

    started = time.perf_counter()
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    settings = {
        "model": model,
        "device": "cpu",
        "workdir": str(workdir),
        "default_specs": SPECS,
        "default_backgrounds": BACKGROUNDS,
    }
    if gate_wait_s is not None:
        settings["gate_wait_s"] = gate_wait_s
    serve.run(build_app(settings), name="idphoto-bench", route_prefix="/")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{PORT}/readyz", timeout=30).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.5)
    raise RuntimeError("the service did not become ready within 600 s")


async def _post(client: Any, data: bytes) -> tuple[int, float, float]:
    """(HTTP status, seconds, Retry-After seconds) for one photo."""
    started = time.perf_counter()
    response = await client.post(
        "/v1/photos",
        files={"image": ("photo.jpg", data, "image/jpeg")},
        data={"specs": ",".join(SPECS), "backgrounds": ",".join(BACKGROUNDS)},
    )
    elapsed = time.perf_counter() - started
    return response.status_code, elapsed, float(response.headers.get("retry-after", 0) or 0)


async def _level(
    photos: list[bytes], clients: int, per_client: int, seconds: float, drain: float
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    codes: dict[int, int] = {}
    in_flight = [0]
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", timeout=900, limits=limits) as client:

        async def one_client(k: int) -> None:
            for i in range(per_client):
                if time.perf_counter() >= deadline:
                    return
                in_flight[0] += 1
                code, elapsed, retry_after = await _post(client, photos[(k * per_client + i) % len(photos)])
                in_flight[0] -= 1
                codes[code] = codes.get(code, 0) + 1
                if code == 200:
                    latencies.append(elapsed)
                elif code == 429:
                    await asyncio.sleep(retry_after or 1.0)

        cpu0, started = time.process_time(), time.perf_counter()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(one_client(k) for k in range(clients))), seconds + drain)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    answered = sum(codes.values())
    ok = codes.get(200, 0)
    return {
        "clients": clients,
        "requests": answered,
        "ok": ok,
        "wall_s": round(wall, 2),
        "photos_per_s": round(ok / wall, 3) if wall else 0.0,
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "share_429": round(codes.get(429, 0) / answered, 3) if answered else 0.0,
        "other_errors": answered - ok - codes.get(429, 0),
        "unfinished": in_flight[0],
        "codes": {str(k): v for k, v in sorted(codes.items())},
        "loadgen_cores": round(cpu / wall, 3) if wall else 0.0,
    }


def _stats() -> dict[str, int]:
    import httpx

    return httpx.get(f"http://127.0.0.1:{PORT}/v1/stats", timeout=60).json()["batch_sizes"]


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def batched_share(batches: dict[str, int]) -> float:
    """Share of photos the segmenter ran in a batch of two or more: 0 means no batching happened."""
    photos = sum(int(size) * n for size, n in batches.items())
    return (
        round(sum(int(size) * n for size, n in batches.items() if int(size) > 1) / photos, 3)
        if photos
        else 0.0
    )


def service_run(
    photos: list[bytes], clients: list[int], per_client: int, seconds: float, drain: float
) -> dict[str, Any]:
    """First photo on the warm service, then one level per client count."""
    import httpx

    started = time.perf_counter()
    first = httpx.post(
        f"http://127.0.0.1:{PORT}/v1/photos", files={"image": ("p.jpg", photos[0])}, timeout=300
    )
    first_s = time.perf_counter() - started
    assert first.status_code == 200, first.text
    pids = {p.pid for p in replica_processes()}
    rss_before = replica_rss_mb()
    levels = []
    for n in clients:
        before = _stats()
        with RssSampler() as rss:
            level = asyncio.run(_level(photos, n, per_client, seconds, drain))
        level["segmenter_batches"] = _diff(_stats(), before)
        level["batched_share"] = batched_share(level["segmenter_batches"])
        level["replica_peak_rss_mb"] = round(rss.peak_mb, 1)
        levels.append(level)
        print(_level_line(level), flush=True)
    after = {p.pid for p in replica_processes()}
    return {
        "first_photo_s": round(first_s, 3),
        "first_photo_status": first.json()["status"],
        "replica_rss_mb_before": round(rss_before, 1),
        "replica_rss_mb_after": round(replica_rss_mb(), 1),
        "replicas": len(pids),
        "replica_restarts": len(pids - after),
        "levels": levels,
    }


def _level_line(level: dict[str, Any]) -> str:
    seen = sorted(level["segmenter_batches"].items(), key=lambda kv: int(kv[0]))
    batches = ", ".join(f"{size}×{count}" for size, count in seen)
    return (
        f"  {level['clients']:>4} clients  {level['photos_per_s']:6.2f} photos/s  "
        f"p50 {level['p50_s']:6.2f} s  p95 {level['p95_s']:6.2f}  p99 {level['p99_s']:6.2f}  "
        f"429 {100 * level['share_429']:5.1f} %  errors {level['other_errors']}  "
        f"unfinished {level['unfinished']}  "
        f"rss {level['replica_peak_rss_mb']:7.0f} MB  loadgen {level['loadgen_cores']:.2f} cores  "
        f"batches [{batches}] ({100 * level['batched_share']:.0f} % of photos batched)"
    )


# ----------------------------------------------------------------------------------------------- main
def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over runs (one run: that run); counts (errors, batches) summed over runs."""

    def med(get: Any) -> float:
        return round(statistics.median(get(r) for r in runs), 3)

    out = {
        "runs": len(runs),
        "sequential_photos_per_s": med(lambda r: r["sequential"]["photos_per_s"]),
        "batch_job_photos_per_s": med(lambda r: r["batch_job"]["photos_per_s"]),
        "ready_s": med(lambda r: r["service"]["ready_s"]),
        "first_photo_s": med(lambda r: r["service"]["first_photo_s"]),
        "replica_restarts": sum(r["service"]["replica_restarts"] for r in runs),
        "replica_rss_mb_before": med(lambda r: r["service"]["replica_rss_mb_before"]),
        "replica_rss_mb_after": med(lambda r: r["service"]["replica_rss_mb_after"]),
        "levels": [],
    }
    for i, level in enumerate(runs[0]["service"]["levels"]):
        row: dict[str, Any] = {"clients": level["clients"]}
        for key in (
            "photos_per_s",
            "p50_s",
            "p95_s",
            "p99_s",
            "share_429",
            "batched_share",
            "loadgen_cores",
            "replica_peak_rss_mb",
        ):
            row[key] = med(lambda r, i=i, key=key: r["service"]["levels"][i][key])
        for key in ("requests", "other_errors", "unfinished"):
            row[key] = sum(r["service"]["levels"][i][key] for r in runs)
        batches: dict[str, int] = {}
        for r in runs:
            for size, n in r["service"]["levels"][i]["segmenter_batches"].items():
                batches[size] = batches.get(size, 0) + n
        row["segmenter_batches"] = dict(sorted(batches.items(), key=lambda kv: int(kv[0])))
        row["vs_batch_job"] = round(row["photos_per_s"] / out["batch_job_photos_per_s"], 3)
        row["vs_sequential"] = round(row["photos_per_s"] / out["sequential_photos_per_s"], 3)
        out["levels"].append(row)
    return out


def report(median: dict[str, Any], model: str) -> str:
    """The figures as the Markdown tables docs/service.md shows."""
    m = median
    lines = [
        f"model {model}, median of {m['runs']} run(s)",
        "",
        "| baseline | photos/s |",
        "|---|---:|",
        f"| sequential loop | {m['sequential_photos_per_s']:.2f} |",
        f"| batch job | {m['batch_job_photos_per_s']:.2f} |",
        "",
        f"ready after {m['ready_s']:.1f} s; first photo on the warm service {m['first_photo_s']:.2f} s; "
        + f"replica restarts {m['replica_restarts']}; "
        + f"replica RSS {m['replica_rss_mb_before']:.0f} → {m['replica_rss_mb_after']:.0f} MB",
        "",
        "| clients | answered | photos/s | × job | × loop | p50 s | p95 s | p99 s | 429 | other errors | "
        + "unfinished | segmenter batches (size×count) | photos batched | replica peak RSS | load gen. |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in m["levels"]:
        cells = [
            str(row["clients"]),
            str(row["requests"]),
            *(f"{row[key]:.2f}" for key in ("photos_per_s", "vs_batch_job", "vs_sequential")),
            *(f"{row[key]:.2f}" for key in ("p50_s", "p95_s", "p99_s")),
            f"{100 * row['share_429']:.1f} %",
            str(row["other_errors"]),
            str(row["unfinished"]),
            ", ".join(f"{size}×{n}" for size, n in row["segmenter_batches"].items()),
            f"{100 * row['batched_share']:.0f} %",
            f"{row['replica_peak_rss_mb']:.0f} MB",
            f"{row['loadgen_cores']:.2f} cores",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="mediapipe-selfie")
    parser.add_argument("--n", type=int, default=16, help="Photos in the set (benchmark set, 1–12 MP).")
    parser.add_argument("--clients", default=",".join(map(str, DEFAULT_CLIENTS)))
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument(
        "--level-seconds",
        type=float,
        default=30.0,
        help="Stop sending after this per level (what is in flight is still awaited).",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=180.0,
        help="Longest wait for in-flight requests after sending stops; the rest count as unfinished.",
    )
    parser.add_argument(
        "--gate-wait-s", type=float, help="The service's gate_wait_s (default: the settings'; 0: gate off)."
    )
    parser.add_argument("--runs", type=int, default=1, help="Repeat everything; figures are medians.")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "idphoto-bench-data"))
    parser.add_argument("--out", help="Write the figures as JSON here.")
    parser.add_argument("--smoke", action="store_true", help="2 photos, 1 and 4 clients, 1 request each.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.clients, args.requests_per_client, args.level_seconds = 2, "1,4", 1, 30.0

    from ray import serve

    from idphoto_ray.benchdata import ensure_dataset, replicate
    from idphoto_ray.job.run import init_ray
    from idphoto_ray.models.registry import resolve_segmenter

    resolve_segmenter(args.model)  # a model that is not cached stops here, before anything starts
    files = ensure_dataset(args.data_dir, args.n)
    photos = [f.read_bytes() for f in files]
    clients = [int(c) for c in args.clients.split(",")]
    runs = []
    bound = len(clients) * (args.level_seconds + args.drain_seconds)
    print(f"each run's client levels take at most {bound / 60:.0f} min (levels × (level + drain seconds))")
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        for run in range(args.runs):
            print(
                f"run {run + 1}/{args.runs}: {args.n} photos, model {args.model}, {os.cpu_count()} CPUs",
                flush=True,
            )
            seq = sequential(photos, args.model)
            print(f"  sequential loop      {seq['photos_per_s']:6.2f} photos/s", flush=True)
            init_ray()
            folder = Path(tmp) / "photos"  # just these photos: the data folder may hold a larger set
            replicate(files, len(files), folder)
            job = batch_job(folder, Path(tmp) / f"job{run}", args.model)
            print(f"  batch job            {job['photos_per_s']:6.2f} photos/s", flush=True)
            ready_s = start_service(args.model, Path(tmp) / f"service{run}", args.gate_wait_s)
            print(f"  service ready in {ready_s:.1f} s", flush=True)
            try:
                service = service_run(
                    photos, clients, args.requests_per_client, args.level_seconds, args.drain_seconds
                )
            finally:
                serve.shutdown()
            service["ready_s"] = round(ready_s, 1)
            print(
                f"  first photo on the warm service {service['first_photo_s']:.2f} s; replica restarts "
                f"{service['replica_restarts']}; replica RSS {service['replica_rss_mb_before']:.0f} → "
                f"{service['replica_rss_mb_after']:.0f} MB",
                flush=True,
            )
            runs.append({"sequential": seq, "batch_job": job, "service": service})
    result = {
        "model": args.model,
        "n": args.n,
        "cpus": os.cpu_count(),
        "runs": runs,
        "median": _median_run(runs),
    }
    print(report(result["median"], args.model))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
