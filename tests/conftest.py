"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_copy


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A temporary git copy of the repo with tests/fixtures/params.tiny.yaml as params.yaml."""
    return make_copy(tmp_path / "repo")


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the datasets cache of throwaway files out of ~/.cache."""
    import datasets as hf_datasets

    monkeypatch.setattr(hf_datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
