"""``manage.py export_schemas DIR``: one JSON Schema file per payload, clear errors for a bad DIR."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from common.schemas import PAYLOADS, JobCost, VideoStatus
from tests.schemas import payloads as p


def run(*args: str) -> str:
    out = StringIO()
    call_command("export_schemas", *args, stdout=out)
    return out.getvalue()


def test_writes_one_schema_per_payload(tmp_path):
    target = tmp_path / "schemas" / "nested"
    output = run(str(target))
    names = sorted(path.stem for path in target.glob("*.json"))
    assert names == sorted([model.__name__ for model in PAYLOADS] + ["VideoStatus"])
    assert f"Wrote {len(PAYLOADS) + 1} JSON Schema files (validation) to {target}" in output
    for model in PAYLOADS:
        document = json.loads((target / f"{model.__name__}.json").read_text())
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert document["title"] == model.__name__
        assert document["additionalProperties"] is False
        assert set(document["properties"]) == set(model.model_fields)
    status = json.loads((target / "VideoStatus.json").read_text())
    assert status["enum"] == [s.value for s in VideoStatus]


def test_money_is_a_decimal_string_in_the_schema(tmp_path):
    run(str(tmp_path))
    cost = json.loads((tmp_path / "JobCost.json").read_text())["properties"]["cost"]
    assert {"type": "string", "pattern": r"^\d+(\.\d{1,6})?$"} in cost["anyOf"]
    run(str(tmp_path / "out"), "--mode", "serialization", "-v", "2")
    emitted = json.loads((tmp_path / "out" / "JobCost.json").read_text())["properties"]["cost"]
    assert emitted["type"] == "string"


def test_a_valid_payload_matches_its_exported_schema(tmp_path):
    # Check required keys and property names by hand (no JSON Schema validator is a dependency).
    run(str(tmp_path))
    document = json.loads((tmp_path / "JobCost.json").read_text())
    sample = json.loads(JobCost.model_validate(p.job_cost()).model_dump_json())
    assert set(document["required"]) <= set(sample)
    assert set(sample) <= set(document["properties"])


def test_overwrites_existing_files(tmp_path):
    (tmp_path / "Job.json").write_text("stale")
    run(str(tmp_path))
    assert json.loads((tmp_path / "Job.json").read_text())["title"] == "Job"


def test_a_file_is_not_a_directory(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(CommandError, match=r"file.txt exists and is not a directory"):
        run(str(target))


def test_a_directory_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(CommandError, match=r"cannot create directory .*blocker/sub"):
        run(str(blocker / "sub"))


def test_a_file_that_cannot_be_written(tmp_path):
    (tmp_path / "Job.json").mkdir()  # a directory where the file should go
    with pytest.raises(CommandError, match=r"cannot write .*Job.json"):
        run(str(tmp_path))


def test_missing_argument():
    with pytest.raises(CommandError, match="the following arguments are required: DIR"):
        call_command("export_schemas")
