"""Command line of the service.

python -m app check          verify the settings and the model artifact, as start-up does
python -m app openapi        write the OpenAPI document (the API contract) as JSON
python -m app drift-report   compare a window of the prediction log with the training data
python -m app quality        score each model version on the predictions that got feedback
python -m app canary         check a running service against the golden predictions
python -m app env-example    write .env.example: every setting with its default and meaning
"""

import argparse
import json
import multiprocessing
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import structlog
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.canary import GOLDEN_FILE, TOLERANCE, canary
from app.errors import ServiceError
from app.model import (
    ArtifactMetadata,
    Predictor,
    load_service_model,
    load_shadow_model,
    read_metadata,
    resolve_artifact_dir,
)
from app.monitoring.drift_report import format_report, report_from_log, write_plots
from app.monitoring.prediction_log import (
    LogReader,
    ReportT,
    describe_log_error,
    reading_engine,
)
from app.monitoring.quality import format_quality, quality_from_log
from app.observability.logging import configure_logging
from app.schemas import FEATURE_EXAMPLE
from app.settings import Settings, env_example, load_server_settings, load_settings

logger = structlog.stdlib.get_logger("app.cli")


def abort_start(message: str) -> NoReturn:
    """Stop the process with one log line that says what to fix."""
    configure_logging()
    logger.error("cannot start", error=message)
    sys.exit(1)


def preflight() -> bool:
    """Check everything start-up needs; on failure log one line saying what to fix.

    The server runs this once in its master process before starting workers, so a
    bad setting or artifact stops it with that line instead of a traceback per
    worker. The master unpickles the model, so workers inherit the libraries it
    imports, but never predicts with it: native thread pools such as OpenMP's do
    not survive fork(), and a worker forked after one started would hang. The
    warm-up prediction runs in a short-lived child process instead.
    """
    configure_logging()
    try:
        load_server_settings()
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        predictor, notes = load_service_model(settings, warm_up=False)
        shadow, shadow_notes = load_shadow_model(settings, warm_up=False)
    except ServiceError as exc:
        logger.error("cannot start", error=exc.message)
        return False
    if not _warm_up_in_child(predictor, shadow):
        return False
    for note in notes:
        logger.warning("model loaded with a difference", note=note)
    for note in shadow_notes:
        logger.warning("shadow model loaded with a difference", note=note)
    logger.info(
        "model verified",
        model_version=predictor.version,
        metrics=predictor.metadata.metrics,
    )
    if shadow is not None:
        logger.info(
            "shadow model verified",
            shadow_model_version=shadow.version,
            metrics=shadow.metadata.metrics,
        )
    return True


def _warm_up_and_exit(predictor: Predictor, shadow: Predictor | None) -> None:
    try:
        predictor.warm_up(FEATURE_EXAMPLE)
    except ServiceError as exc:
        logger.error("cannot start", error=exc.message)
        sys.exit(1)
    if shadow is None:
        return
    try:
        shadow.warm_up(FEATURE_EXAMPLE)
    except ServiceError as exc:
        logger.error(
            "cannot start", error=f"shadow model (APP_SHADOW_MODEL_VERSION): {exc.message}"
        )
        sys.exit(1)


def _warm_up_in_child(predictor: Predictor, shadow: Predictor | None = None) -> bool:
    child = multiprocessing.get_context("fork").Process(
        target=_warm_up_and_exit, args=(predictor, shadow)
    )
    child.start()
    child.join()
    return child.exitcode == 0


def _openapi() -> str:
    from app.main import create_app

    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"


def _write_text(text: str, output: Path | None, what: str) -> None:
    """Write ``text`` to ``output``, or to stdout when there is none."""
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        logger.info(f"{what} written", path=str(output))


def _moment(text: str) -> datetime:
    """An ISO 8601 date or time; without a time zone, UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _add_window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hours", type=float, default=24.0, help="window length, ending now (default: 24)"
    )
    parser.add_argument("--since", type=_moment, help="window start, ISO 8601 (UTC by default)")
    parser.add_argument("--until", type=_moment, help="window end (default: now)")
    parser.add_argument(
        "--model-version", help="model version to judge (default: the one the service serves)"
    )


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    until = args.until or datetime.now(UTC)
    return args.since or until - timedelta(hours=args.hours), until


def _report_inputs(args: argparse.Namespace) -> tuple[Settings, ArtifactMetadata, Engine]:
    """The settings, the judged model's metadata (never unpickled) and the log to read."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, sys.stderr)
    version = args.model_version or settings.model_version
    metadata = read_metadata(resolve_artifact_dir(settings.model_dir, version))
    return settings, metadata, reading_engine(settings)


def _write(report: BaseModel, table: str, output_format: str) -> None:
    sys.stdout.write(report.model_dump_json(indent=2) + "\n" if output_format == "json" else table)


def _from_log(args: argparse.Namespace, read: LogReader[ReportT]) -> ReportT:
    """``read`` the prediction log over the window of ``args``, for the judged model."""
    settings, metadata, engine = _report_inputs(args)
    try:
        return read(engine, metadata, settings, *_window(args))
    except SQLAlchemyError as exc:
        raise ServiceError(describe_log_error(exc)) from None
    finally:
        engine.dispose()


def _drift_report(args: argparse.Namespace) -> int:
    report = _from_log(args, report_from_log)
    _write(report, format_report(report), args.format)
    if args.plot_dir is not None:
        for path in write_plots(report, args.plot_dir):
            logger.info("plot written", path=str(path))
    failing = {"never": (), "warning": ("warning", "page"), "page": ("page",)}[args.fail_on]
    return 3 if report.status in failing else 0


def _quality(args: argparse.Namespace) -> int:
    report = _from_log(args, quality_from_log)
    _write(report, format_quality(report), args.format)
    return 0


def tolerance(text: str) -> float:
    """A ``--tolerance``: a number from 0 up."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; give 0 or more, e.g. 1e-6")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="verify the settings and the model artifact")
    openapi = commands.add_parser("openapi", help="write the OpenAPI document as JSON")
    openapi.add_argument("--output", type=Path, help="file to write (default: stdout)")
    drift = commands.add_parser(
        "drift-report", help="compare a window of the prediction log with the training data"
    )
    _add_window_arguments(drift)
    drift.add_argument("--format", choices=("table", "json"), default="table")
    drift.add_argument("--plot-dir", type=Path, help="write a PNG per drifted signal here")
    drift.add_argument(
        "--fail-on",
        choices=("never", "warning", "page"),
        default="never",
        help="exit with status 3 when a signal drifted this much (for scheduled checks)",
    )
    quality = commands.add_parser(
        "quality", help="score each model version on the predictions that got feedback"
    )
    _add_window_arguments(quality)
    quality.add_argument("--format", choices=("table", "json"), default="table")
    checker = commands.add_parser(
        "canary", help="check a running service against the golden predictions"
    )
    checker.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    checker.add_argument(
        "--golden", type=Path, default=GOLDEN_FILE, help=f"golden file (default: {GOLDEN_FILE})"
    )
    checker.add_argument(
        "--tolerance",
        type=tolerance,
        default=TOLERANCE,
        help=f"largest difference allowed in a probability or value (default: {TOLERANCE})",
    )
    checker.add_argument("--model-version", help="the model version the service must report")
    checker.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each answer"
    )
    env = commands.add_parser(
        "env-example", help="write .env.example: every setting with its default and meaning"
    )
    env.add_argument("--output", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    if args.command == "env-example":
        _write_text(env_example(), args.output, "settings reference")
        return 0
    if args.command == "check":
        return 0 if preflight() else 1
    if args.command == "openapi":
        _write_text(_openapi(), args.output, "contract")
        return 0
    if args.command == "canary":
        return canary(
            args.url,
            args.golden,
            tolerance=args.tolerance,
            model_version=args.model_version,
            timeout=args.timeout,
        )
    try:
        return _drift_report(args) if args.command == "drift-report" else _quality(args)
    except ServiceError as exc:
        configure_logging(stream=sys.stderr)
        logger.error("cannot report", error=exc.message)
        return 1
