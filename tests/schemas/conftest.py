from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError


def assert_invalid(model: type[BaseModel], payload: dict[str, Any], *fragments: str) -> PydanticValidationError:
    """Validation of ``payload`` fails and the error text mentions every fragment (what was wrong)."""
    with pytest.raises(PydanticValidationError) as info:
        model.model_validate(payload)
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in error:\n{text}"
    return info.value
