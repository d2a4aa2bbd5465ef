"""The benchmark's short run: it renders, serves, loads and reports; the figures are not judged."""

import argparse
import json
import sys

from tests.helpers import TEMPLATE_ROOT, succeed

RESULTS = TEMPLATE_ROOT / "build" / "bench" / "results.json"


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
        "batch of 1000: modelship rows/s / in-process rows/s",
        "batch of 1000: parsing its JSON alone / in-process predict_proba rows/s",
        "start to /ready, 2 workers (s)",
    ):
        assert ratio in output
    assert len(json.loads(RESULTS.read_text())["rounds"]) == 1  # --smoke: one round
    in_process = json.loads(RESULTS.read_text())["in_process"]
    assert set(in_process) == {"one_row", "batch_1000", "parse_1000"}
    assert all(rate > 0 for rate in in_process.values()), in_process


def test_the_table_shows_each_runs_median_round_and_judges_median_ratios() -> None:
    from bench.run import Result, median_results, report

    def run(server: str, rate: float) -> Result:
        return Result(server, "logreg", 2, "max", rate, rate, 1.0, 2.0, 3.0, 0, 100.0, 1.5)

    rounds = [
        [run("textbook FastAPI", 1000), run("modelship", 1600)],
        [run("textbook FastAPI", 1100), run("modelship", 1500)],  # 1.36: a slow round
        [run("textbook FastAPI", 900), run("modelship", 1800)],
    ]
    baseline = {"one_row": 1.0, "batch_1000": 1.0, "parse_1000": 1.0}
    args = argparse.Namespace(connections=32, duration=10, warmup=3)

    assert [r.requests_per_s for r in median_results(rounds)] == [1000, 1600]
    table = report(rounds, baseline, args)
    assert (
        "| one row: modelship / textbook FastAPI | 1.60 | 1.60, 1.36, 2.00 | ≥ 1.5 | met |" in table
    )
