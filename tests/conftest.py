"""Shared fixtures: a small surrogate dataset generated once per test session."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def small_dataset():
    from wrenlib.dataset import generate_surrogate_dataset
    from wrenlib.surrogate import SurrogateConfig

    config = SurrogateConfig(seed=3, individuals_per_dialect=6, clips_per_individual=3)
    return generate_surrogate_dataset(config, n_jobs=1, progress=False)


@pytest.fixture()
def isolated_artifacts(tmp_path, monkeypatch):
    """Point the artifact cache at a temporary folder."""
    monkeypatch.setenv("WRENBOOK_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"
