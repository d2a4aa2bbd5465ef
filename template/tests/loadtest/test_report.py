"""The load test's figures and where its report goes."""

from pathlib import Path

from loadtest.report import README_END, README_START, error_code, percentile, replace_profile


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]

    assert [percentile(values, q) for q in (0.5, 0.95, 0.99, 1.0)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.95) == 0.0


def test_profile_replaces_only_the_block_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nBefore.\n\n{README_START}\nold\n{README_END}\n\nAfter.\n")

    first = replace_profile(readme, "first report\n")
    replace_profile(readme, "second report\n")

    assert first == f"{readme} performance profile updated"
    assert readme.read_text() == (
        f"# Title\n\nBefore.\n\n{README_START}\nsecond report\n{README_END}\n\nAfter.\n"
    )


def test_readme_without_markers_is_left_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")

    message = replace_profile(readme, "report\n")

    assert "has no" in message
    assert readme.read_text() == "# Title\n"


def test_error_code_is_read_from_the_error_envelope_only() -> None:
    envelope = '{"error": {"code": "batch_too_large", "message": "...", "request_id": "1"}}'

    assert error_code(envelope) == "batch_too_large"
    assert error_code("<html>Bad Gateway</html>") == ""
    assert error_code('{"detail": "Not Found"}') == ""
    assert error_code(None) == ""
