"""Fixtures of the pipeline tests: a private data catalog in tmp_path."""

from __future__ import annotations

import os

import pytest
from pipeline_helpers import FIXTURES, write_catalog


@pytest.fixture
def catalog_env(tmp_path, monkeypatch):
    """``TDT_CATALOG`` pointing at a fresh private catalog; the fixtures dir on the path."""
    directory = tmp_path / "catalog"
    write_catalog(directory)
    monkeypatch.setenv("TDT_CATALOG", str(directory))
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(FIXTURES), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return directory
