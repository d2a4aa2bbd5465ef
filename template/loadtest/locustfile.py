"""The simulated clients of `make loadtest`; run through ``python -m loadtest``.

Each user sends the mix of ``loadtest.traffic`` and waits a moment between
requests. A response counts as a failure unless it is the expected one: a 2xx
to a valid request, a 4xx to an invalid one. Every response is recorded, and
the summary is written to ``--results-file`` when the run stops.
"""

import argparse
import random
from pathlib import Path
from typing import Any, Final

import gevent
from locust import FastHttpUser, between, events, task
from locust.env import Environment

from loadtest.report import Recorder, error_code
from loadtest.traffic import THINK_SECONDS, next_request

JSON_HEADERS: Final = {"Content-Type": "application/json"}
# gevent caches its loop's clock, and the imports above (the service's schema, NumPy)
# take about a second while the loop is idle: Locust's --run-time timer, set right
# after this file is imported, would end the run that much early.
gevent.get_hub().loop.update_now()

recorder = Recorder()


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-file", default="", help="where to write the summary (JSON)")
    parser.add_argument(
        "--invalid-share", type=float, default=0.02, help="share of invalid requests"
    )
    parser.add_argument("--batch-share", type=float, default=0.1, help="share of batch requests")


def _on_start(environment: Environment, **_: Any) -> None:
    recorder.start()


def _on_stop(environment: Environment, **_: Any) -> None:
    recorder.stop()
    options = environment.parsed_options
    if options is not None and options.results_file:
        Path(options.results_file).write_text(recorder.summary().model_dump_json(indent=2))


events.init_command_line_parser.add_listener(_add_options)
events.test_start.add_listener(_on_start)
events.test_stop.add_listener(_on_stop)


class Client(FastHttpUser):
    wait_time = between(*THINK_SECONDS)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        assert options is not None, "run through the locust command, which parses the options"
        self.invalid_share: float = options.invalid_share
        self.batch_share: float = options.batch_share
        self.rng = random.Random()

    @task
    def send(self) -> None:
        request = next_request(self.rng, self.invalid_share, self.batch_share)
        with self.client.post(
            request.path,
            data=request.body,
            headers=JSON_HEADERS,
            name=request.name,
            catch_response=True,
        ) as response:
            status = response.status_code or 0
            milliseconds = response.request_meta["response_time"]
            if request.expects(status):
                recorder.record(request.name, status, milliseconds, expected=True)
                response.success()
                return
            code = error_code(response.text) if status else ""
            recorder.record(request.name, status, milliseconds, expected=False, code=code)
            kind = "valid" if request.valid else "invalid"
            response.failure(f"status {status} {code} to a {kind} request")
