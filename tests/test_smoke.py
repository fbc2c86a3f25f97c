import pytest

from common.models import Job


@pytest.mark.django_db
def test_job_defaults_to_twenty_dollar_budget():
    job = Job.objects.create(user_id="00000000-0000-0000-0000-000000000001", audio_url="a", user_prompt="p")
    job.refresh_from_db()
    assert str(job.budget_limit) == "20.000000"
