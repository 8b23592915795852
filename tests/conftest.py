"""Shared fixtures: the official reference data in ../shared (tests skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def reference_file(name: str) -> Path:
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"../shared/reference/{name} is absent")
    return path


@pytest.fixture
def load_reference():
    def _load(name: str):
        return torch.load(reference_file(name), weights_only=True)

    return _load


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    """One cache dir per test session (renders and converted weights are made once, never in the user's cache)."""
    return tmp_path_factory.mktemp("zoo_home")


@pytest.fixture(autouse=True)
def _isolated_home(session_home, monkeypatch):
    """Keep the caches of tests inside the session temp dir unless a test sets ZOO_HOME itself."""
    monkeypatch.setenv("ZOO_HOME", str(session_home))
