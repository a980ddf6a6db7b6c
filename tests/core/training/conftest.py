"""Fixtures of the training tests: a fresh registry and a generated folder data source."""

from __future__ import annotations

import pytest

from core import config as cfg
from core.runs.store import RunStore


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "ws")


@pytest.fixture
def data(class_folders) -> cfg.DataConfig:
    return cfg.DataConfig(source="folder", path=str(class_folders))
