"""Command line of the service.

python -m app check      verify the settings and the model artifact, as start-up does
python -m app openapi    write the OpenAPI document (the API contract) as JSON
"""

import argparse
import json
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import structlog

from app.errors import ServiceError
from app.model import Predictor, load_service_model, load_shadow_model
from app.observability.logging import configure_logging
from app.schemas import FEATURE_EXAMPLE
from app.settings import load_server_settings, load_settings

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


def _write_openapi(output: Path | None) -> None:
    from app.main import create_app

    document = json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(document)
    else:
        output.write_text(document, encoding="utf-8")
        logger.info("contract written", path=str(output))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="verify the settings and the model artifact")
    openapi = commands.add_parser("openapi", help="write the OpenAPI document as JSON")
    openapi.add_argument("--output", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return 0 if preflight() else 1
    _write_openapi(args.output)
    return 0
