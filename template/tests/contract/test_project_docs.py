"""docs/MODEL_CARD.md and docs/SERVICE_CONTRACT.md say what the code and the model are.

They are generated from the OpenAPI document, the settings and the artifact's
metadata; a change to any of them fails here until `make docs-update` records it.
"""

import pytest

from tools.project_docs.__main__ import main


def test_the_docs_on_disk_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--check"])

    assert code == 0, capsys.readouterr().err
