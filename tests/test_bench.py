"""The benchmark's short run: it renders, serves, loads and reports; the figures are not judged."""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TEMPLATE_ROOT, succeed

RESULTS = TEMPLATE_ROOT / "build" / "bench" / "results.json"
COSTS = TEMPLATE_ROOT / "build" / "bench" / "cost.json"

# Both runs render into, and serve from, build/bench: one after the other, in one process.
pytestmark = pytest.mark.xdist_group("bench")


def test_benchmark_smoke_run_serves_loads_and_prints_every_ratio(
    project_env: dict[str, str],
) -> None:
    output = succeed([sys.executable, "-m", "bench.run", "--smoke"], TEMPLATE_ROOT, project_env)

    results = json.loads(RESULTS.read_text())["results"]
    runs = {(r["server"], r["load"]) for r in results}
    assert runs == {
        ("textbook FastAPI", "max"),
        ("modelship", "max"),
        ("modelship, monitoring off", "max"),
        ("textbook FastAPI", "half"),
        ("modelship", "half"),
        ("modelship", "batch 1000"),
        ("modelship", "batch 1000, Arrow"),
        ("bare ASGI app, float64 rows", "batch 1000"),
    }
    # The half-load runs are offered one fixed rate, half the textbook app's maximum, and
    # the schedule never sends faster; the other runs go as fast as the server answers.
    [book] = [r for r in results if r["server"] == "textbook FastAPI" and r["load"] == "max"]
    for result in results:
        if result["load"] == "half":
            assert result["offered_per_s"] == book["requests_per_s"] / 2, result
            assert result["requests_per_s"] <= result["offered_per_s"] * 1.05, result
        else:
            assert result["offered_per_s"] == 0, result
    for result in results:
        assert result["errors"] == 0, result
        assert result["requests_per_s"] > 0, result
        assert result["memory_mib"] > 0, result
        assert result["start_to_ready_s"] > 0, result
    for ratio in (
        "one row: modelship / textbook FastAPI",
        "p99 at half the textbook's maximum",
        "monitoring on / off",
        "batch of 1000 as JSON: modelship rows/s / in-process rows/s",
        "batch of 1000 as Arrow: modelship rows/s / in-process rows/s",
        "batch of 1000: bare ASGI app on float64 rows / in-process rows/s",
        "batch of 1000: parsing its JSON alone / in-process predict_proba rows/s",
        "batch of 1000: writing its rows to the prediction log alone / in-process",
        "start to /ready, 2 workers (s)",
        "start to /ready: modelship / textbook FastAPI (s/s)",
    ):
        assert ratio in output
    assert len(json.loads(RESULTS.read_text())["rounds"]) == 1  # --smoke: one round
    in_process = json.loads(RESULTS.read_text())["in_process"]
    assert set(in_process) == {"one_row", "batch_1000", "parse_1000", "log_1000"}
    assert all(rate > 0 for rate in in_process.values()), in_process


# The batch run sends Arrow: the JSON batch differs from it in its body alone.
@pytest.mark.parametrize(("rows", "arrow"), [(1, False), (100, True)])
def test_cost_smoke_run_measures_each_part_of_monitoring(
    project_env: dict[str, str], rows: int, arrow: bool
) -> None:
    from bench.cost import VARIANTS

    command = [sys.executable, "-m", "bench.cost", "--smoke", f"--rows={rows}"]
    output = succeed(command + (["--arrow"] if arrow else []), TEMPLATE_ROOT, project_env)

    costs = json.loads(
        (COSTS if rows == 1 else COSTS.with_name(f"cost-{rows}-rows-arrow.json")).read_text()
    )
    assert [cost["variant"] for cost in costs] == list(VARIANTS)
    for cost in costs:
        assert cost["errors"] == 0, cost
        assert cost["requests_per_s"] > 0, cost
        assert len(cost["rounds_us"]) == 1, cost  # --smoke: one round
        # No worker answers 100,000 requests a second, nor spends 0.1 s of CPU on a row.
        assert 10 < cost["cpu_us_per_request"] < 100_000 * rows, cost
    assert "monitoring on / off, by CPU a request" in output
    assert f"{rows} row(s) a request{' as an Arrow stream' if arrow else ''}" in output
    # Each copy runs without what its name says, and with the rest.
    build = TEMPLATE_ROOT / "build" / "bench"
    for variant, settings in VARIANTS.items():
        [cost] = [cost for cost in costs if cost["variant"] == variant]
        assert cost["serves_metrics"] == ("APP_METRICS_ENABLED" not in settings), cost
        name = f"cost {variant}"
        logged = (build / "data" / f"{name}-1.0.0.db").is_file()
        assert logged == ("APP_PREDICTION_LOG_ENABLED" not in settings), variant
        lines = (build / "logs" / f"{name.replace(' ', '-')}.log").read_text()
        assert ('"event":"request"' in lines) == ("APP_LOG_LEVEL" not in settings), variant
        if "APP_LOG_LEVEL" not in settings:
            route = "/v1/predict" if rows == 1 else "/v1/predict/batch"
            assert f'"route":"{route}","status":200' in lines, variant
        assert cost["main_thread_us"] > 0, cost
        assert cost["other_threads_us"] > 0, cost  # at least the model's calls


def test_the_table_shows_each_runs_median_round_and_judges_median_ratios() -> None:
    from bench.run import Result, median_results, report

    def run(server: str, rate: float, start: float = 1.5) -> Result:
        return Result(server, "logreg", 2, "max", rate, rate, 1.0, 2.0, 3.0, 0, 100.0, start)

    rounds = [
        [run("textbook FastAPI", 1000), run("modelship", 1600)],
        [run("textbook FastAPI", 1100, 2.0), run("modelship", 1500, 2.2)],  # 1.36: a slow round
        [run("textbook FastAPI", 900, 3.0), run("modelship", 1800, 2.4)],
    ]
    baseline = {"one_row": 1.0, "batch_1000": 1.0, "parse_1000": 1.0, "log_1000": 1.0}
    args = argparse.Namespace(connections=32, duration=10, warmup=3, slices=5)

    assert [r.requests_per_s for r in median_results(rounds)] == [1000, 1600]
    table = report(rounds, baseline, args)
    assert (
        "| one row: modelship / textbook FastAPI | 1.60 | 1.60, 1.36, 2.00 | ≥ 1.5 | met |" in table
    )
    assert "| start to /ready, 2 workers (s) | 2.20 | 1.50, 2.20, 2.40 | ≤ 2 | MISSED |" in table
    # Shown beside it, not judged: whether a missed start is the machine's or the service's.
    shown = (
        "| start to /ready: modelship / textbook FastAPI (s/s) | 1.00 | 1.00, 1.10, 0.80 |  |  |"
    )
    assert shown in table


def test_servers_side_by_side_are_driven_in_turn_and_summed(monkeypatch: Any) -> None:
    import bench.run
    from bench.servers import Server

    driven: list[tuple[str, float]] = []

    def drive(
        server: Server, body: Path, seconds: float, connections: int, rate: float = 0.0
    ) -> dict[str, float]:
        url = server.predict_url
        driven.append((url, seconds))
        # Server a answers 100 requests a second and b 50; a's p99 rises slice by slice.
        rate = 100 if url == "a" else 50
        p99 = 1000 * len(driven)
        return {
            "requests": rate * seconds,
            "duration_us": seconds * 1e6,
            "p50_us": 500,
            "p95_us": 900,
            "p99_us": p99,
            "status_errors": 0,
            "socket_errors": 0,
        }

    monkeypatch.setattr(bench.run, "drive", drive)
    servers = [
        (Server(name, [], Path(), "", name, b""), Path(f"{name}.json")) for name in ("a", "b")
    ]
    args = argparse.Namespace(warmup=3, duration=10, connections=32)

    a, b = bench.run.alternate(servers, args, model="logreg", workers=2, slices=5)

    # Both warmed up, then five slices of 2 s each, the order reversed every slice.
    assert driven == [("a", 3), ("b", 3)] + [
        (url, 2) for pair in ["ab", "ba", "ab", "ba", "ab"] for url in pair
    ]
    assert (a.server, a.requests_per_s, b.server, b.requests_per_s) == ("a", 100, "b", 50)
    # Each latency percentile: the median over the slices (a's slices 3, 6, 7, 10, 11).
    assert (a.p50_ms, a.p99_ms) == (0.5, 7.0)


def test_a_server_whose_port_is_taken_is_not_started(tmp_path: Path, monkeypatch: Any) -> None:
    """What already listens on a server's port would answer its readiness checks and
    its load in its place: the benchmark stops, naming the port, and starts nothing."""
    import socket

    import bench.servers
    from bench.servers import Server

    monkeypatch.setattr(bench.servers, "PORT_FREE_TIMEOUT", 0.3)

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = Server(
            name="modelship",
            command=[sys.executable, "-c", "raise SystemExit('must not run')"],
            cwd=tmp_path,
            ready_url=f"http://127.0.0.1:{port}/ready",
            predict_url=f"http://127.0.0.1:{port}/v1/predict",
            body=b"{}",
        )
        with pytest.raises(RuntimeError, match=f"already listens on 127.0.0.1:{port}"):
            server.start(tmp_path / "server.log")
    assert server.process is None


def test_coalescing_smoke_run_serves_each_copy_with_its_settings(
    project_env: dict[str, str],
) -> None:
    from bench.coalescing import DEFAULT, VARIANTS

    output = succeed(
        [sys.executable, "-m", "bench.coalescing", "--smoke"], TEMPLATE_ROOT, project_env
    )

    rows = json.loads((TEMPLATE_ROOT / "build" / "bench" / "coalescing.json").read_text())
    assert [(row["variant"], row["load"]) for row in rows] == [
        (variant, load) for load in ("full", "light") for variant in VARIANTS
    ]
    for row in rows:
        assert row["errors"] == 0, row
        assert row["requests_per_s"] > 0, row
        assert row["rows_per_call"] >= 1, row
    # Read from each copy's own metrics: with at most one row a call, every call has one.
    assert [row["rows_per_call"] for row in rows if row["variant"] == "coalescing off"] == [1, 1]
    for variant in VARIANTS:
        if variant != DEFAULT:
            assert f"| {variant} / default | " in output


def test_rows_a_model_call_are_read_from_every_series_of_the_histogram() -> None:
    from bench.coalescing import counted_rows

    exposition = "\n".join(
        [
            "# HELP model_call_rows Rows of one model call.",
            "# TYPE model_call_rows histogram",
            'model_call_rows_bucket{le="1.0"} 3.0',
            'model_call_rows_bucket{le="+Inf"} 5.0',
            "model_call_rows_count 5.0",
            "model_call_rows_sum 12.0",
            'model_call_rows_count{model_version="hgb"} 2.0',
            'model_call_rows_sum{model_version="hgb"} 8.0',
            "model_inference_duration_seconds_sum 0.5",
        ]
    )

    assert counted_rows(exposition) == (20.0, 7.0)
    with pytest.raises(RuntimeError, match="no model_call_rows histogram"):
        counted_rows("model_inference_duration_seconds_sum 0.5\n")


def test_each_copy_is_compared_with_the_default_at_its_load() -> None:
    from bench.coalescing import DEFAULT, VARIANTS, Row, report

    def row(variant: str, load: str, rate: float, p50: float, p99: float) -> Row:
        return Row(variant, load, rate, p50, 2 * p50, p99, 1.0, 0)

    rows = [row(DEFAULT, "full", 2000, 10, 30), row(DEFAULT, "light", 200, 2, 8)]
    for variant in VARIANTS:
        if variant != DEFAULT:
            rows += [row(variant, "full", 1000, 20, 60), row(variant, "light", 200, 3, 4)]
    args = argparse.Namespace(connections=32, light_rate=200, duration=10, slices=10, warmup=2)

    table = report(rows, args)

    # Requests/s at full load, p50 and p99 at light load, each over the default's.
    assert "| coalescing off / default | 0.50 | 1.50 | 0.50 |" in table
