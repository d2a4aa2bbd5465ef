"""`make release-check`, item by item: a subset passes, a tampered copy fails its item.

The whole check is never run here: its `tests` item would run this suite again.
"""

import json
import shutil
from pathlib import Path

import pytest

from tools.release_check import ITEMS, audit_findings, main

CONTRACT = Path(__file__).resolve().parents[1] / "contract" / "openapi.json"


def table(output: str) -> dict[str, list[str]]:
    """The rows of the printed table by item: result, seconds, detail."""
    rows = {}
    for line in output.splitlines()[2:]:
        item, result, seconds, *detail = line.split(maxsplit=3)
        if item in ITEMS:
            rows[item] = [result, seconds, *detail]
    return rows


def test_a_subset_passes_and_prints_one_table(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--only", "format,contract,artifact,hadolint,bandit", "--model-dir", str(model_dir)]
    )

    output = capsys.readouterr().out
    assert code == 0, output
    assert output.splitlines()[0].split() == ["item", "result", "seconds", "detail"]
    rows = table(output)
    assert list(rows) == ["format", "contract", "artifact", "hadolint", "bandit"]
    assert {row[0] for row in rows.values()} == {"pass"}
    assert all(float(row[1]) >= 0 for row in rows.values())
    assert rows["artifact"][2].startswith("sha256 equals metadata.json for ")
    assert rows["bandit"][2] == "app/: no issue found"
    assert output.splitlines()[-1] == "release check passed: 5 items"


def test_a_tampered_artifact_fails_its_item_only(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = shutil.copytree(model_dir, tmp_path / "artifacts")
    (metadata,) = copy.glob("*/metadata.json")
    document = json.loads(metadata.read_text())
    document["model_sha256"] = "0" * 64
    metadata.write_text(json.dumps(document))
    originals = {path: path.read_bytes() for path in model_dir.rglob("*") if path.is_file()}

    code = main(["--only", "artifact,contract", "--model-dir", str(copy)])

    output = capsys.readouterr().out
    assert code == 1
    rows = table(output)
    assert rows["artifact"][0] == "FAIL"
    assert "but its metadata.json records 000000000000…: the file changed" in rows["artifact"][2]
    assert rows["contract"][0] == "pass"
    assert output.splitlines()[-1] == "release check failed: artifact"
    assert {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()} == originals


def test_a_changed_contract_fails_unless_the_api_version_was_bumped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = json.loads(CONTRACT.read_text())
    recorded["info"]["description"] = "An older description."
    changed = tmp_path / "openapi.json"
    changed.write_text(json.dumps(recorded))

    unbumped = main(["--only", "contract", "--contract", str(changed)])
    unbumped_row = table(capsys.readouterr().out)["contract"]
    recorded["info"]["version"] = "0"
    changed.write_text(json.dumps(recorded))
    bumped = main(["--only", "contract", "--contract", str(changed)])
    bumped_row = table(capsys.readouterr().out)["contract"]

    assert (unbumped, unbumped_row[0]) == (1, "FAIL")
    assert (
        "differs from openapi.json at info.description but its version is still"
        in (unbumped_row[2])
    )
    assert (bumped, bumped_row[0]) == (0, "pass")
    assert "its version went from 0 to" in bumped_row[2]


def test_an_unknown_item_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--only", "format,speed"])

    assert exit_.value.code == 2
    assert f"unknown item speed; choose among {', '.join(ITEMS)}" in capsys.readouterr().err


def test_audit_fails_on_a_package_it_could_not_check_or_a_known_vulnerability() -> None:
    clean = {"dependencies": [{"name": "numpy", "version": "2.0.0", "vulns": []}]}
    unchecked = {
        "dependencies": [
            {"name": "numpy", "version": "2.0.0", "vulns": []},
            {"name": "fastapi", "skip_reason": "Dependency not found on PyPI"},
        ]
    }
    vulnerable = {
        "dependencies": [
            {"name": "jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95"}]}
        ]
    }

    assert audit_findings(clean).passed
    assert not audit_findings(unchecked).passed
    assert "1 of 2 locked packages could not be audited (Dependency not found on PyPI)" in (
        audit_findings(unchecked).detail
    )
    assert not audit_findings(vulnerable).passed
    assert audit_findings(vulnerable).detail == (
        "1 known vulnerability: jinja2 3.1.2 (GHSA-h5c8-rqwp-cp95)"
    )
