"""The PEP 562 lazy exports of ``common`` and ``common.storage`` (one helper, common._lazy)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import common
import common.storage
from common import errors


@pytest.mark.parametrize("package", [common, common.storage], ids=["common", "common.storage"])
def test_unknown_name_raises_attribute_error_naming_the_package(package):
    with pytest.raises(AttributeError, match=rf"module '{package.__name__}' has no attribute 'nope'"):
        package.nope  # noqa: B018


@pytest.mark.parametrize("package", [common, common.storage], ids=["common", "common.storage"])
def test_dir_lists_every_lazy_name(package):
    assert set(package.__all__) <= set(dir(package))


def test_a_loaded_name_is_stored_in_the_package_namespace():
    assert common.PipelineError is errors.PipelineError
    assert vars(common)["PipelineError"] is errors.PipelineError


def test_importing_common_loads_nothing_it_exports():
    code = "import sys, common; print(sorted(m for m in sys.modules if m.startswith(('common.', 'django'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['common._lazy']"
