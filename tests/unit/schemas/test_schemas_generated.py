"""The JSON Schema files in schemas/json/ are what the models produce, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import generate

EXPECTED = {
    "click_event.schema.json",
    "rules_file.schema.json",
    "rule.schema.json",
    "invitation.schema.json",
    "decision.schema.json",
    "page_dwell.schema.json",
    "capacity.schema.json",
    "queue.schema.json",
}


def test_schema_files_match_the_models() -> None:
    stale = generate.drifted()
    assert not stale, f"{stale} drift from the models; run `python -m schemas.generate`"


def test_every_schema_file_is_generated() -> None:
    assert set(generate.render_all()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_files_declare_dialect_id_and_title(name: str) -> None:
    schema = json.loads((generate.JSON_DIR / name).read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == name
    assert schema["title"]


def test_check_reports_drift_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate.main(["--dir", str(tmp_path)]) == 0
    assert generate.main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "rule.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "decision.schema.json").unlink()
    capsys.readouterr()
    assert generate.main(["--check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "rule.schema.json" in out and "decision.schema.json" in out
    assert "click_event.schema.json" not in out
