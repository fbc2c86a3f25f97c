"""common.ids: one rule for job and user ids (a UUID or its canonical text), raising or answering None."""

from __future__ import annotations

import uuid

import pytest

from common.errors import ValidationError
from common.ids import argument_list, canonical_uuid, parse_job_id, parse_job_ids, parse_user_id

ID = uuid.UUID("8b5f1c2e-6a0e-4a43-9d1b-3f6f0f3c2a11")
CANONICAL = str(ID)
# Each of these names ID for uuid.UUID(), and none is its canonical text.
NON_CANONICAL = [
    ID.hex,
    "{" + CANONICAL + "}",
    "urn:uuid:" + CANONICAL,
    ID.hex + "----",
    CANONICAL[:7] + "-" + CANONICAL[7] + CANONICAL[9:],
    " " + CANONICAL,
    CANONICAL + "\n",
]
NOT_IDS = ["", "job-42", "nope", "\x00", "\ud800", "x" * 500, 42, 4.2, None, b"id", [CANONICAL], ID.int]


@pytest.mark.parametrize("parse", [parse_job_id, parse_user_id, canonical_uuid])
def test_a_uuid_and_its_canonical_text_in_any_case(parse):
    assert parse(ID) is ID
    assert parse(CANONICAL) == ID
    assert parse(CANONICAL.upper()) == ID


@pytest.mark.parametrize("text", NON_CANONICAL)
def test_other_spellings_of_the_same_uuid_are_refused(text):
    assert uuid.UUID(text.strip()) == ID  # uuid.UUID would read it: the rule here is stricter, on purpose
    assert canonical_uuid(text) is None
    with pytest.raises(ValidationError) as info:
        parse_job_id(text)
    assert info.value.code == "INVALID_JOB_ID"


@pytest.mark.parametrize("value", NOT_IDS)
def test_what_is_not_an_id(value):
    assert canonical_uuid(value) is None
    with pytest.raises(ValidationError) as job:
        parse_job_id(value)
    with pytest.raises(ValidationError) as user:
        parse_user_id(value)
    assert (job.value.code, user.value.code) == ("INVALID_JOB_ID", "INVALID_USER_ID")
    assert "is not a valid job id" in job.value.message
    assert "is not a valid user id" in user.value.message
    assert len(job.value.message) < 160  # a long value is shown cut short


def test_the_message_shows_the_value():
    with pytest.raises(ValidationError, match="'job-42' is not a valid job id"):
        parse_job_id("job-42")
    with pytest.raises(ValidationError, match="'bob' is not a valid user id"):
        parse_user_id("bob")


def test_argument_lists_take_any_iterable_once_and_refuse_one_string_by_name():
    assert argument_list((s for s in "ab"), field="states", what="states") == ["a", "b"]
    assert argument_list({"x"}, field="states", what="states") == ["x"]
    for bad in ("queued", b"queued", None, 3):
        with pytest.raises(ValidationError) as info:
            argument_list(bad, field="statuses", what="job statuses")
        assert info.value.message == f"statuses must be a list of job statuses, got {type(bad).__name__}"
        assert info.value.details == {"field": "statuses"}


def test_parse_job_ids_parses_each_and_never_splits_a_string():
    job = uuid.uuid4()
    assert parse_job_ids([job, str(job)]) == [job, job]
    with pytest.raises(ValidationError, match="job_ids must be a list of job ids, got str"):
        parse_job_ids(str(job))
    with pytest.raises(ValidationError) as info:
        parse_job_ids([str(job), "nope"])
    assert info.value.code == "INVALID_JOB_ID"
