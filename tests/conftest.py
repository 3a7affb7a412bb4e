"""Shared fixtures: a small surrogate dataset generated once per test session."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def default_torch_threads(monkeypatch):
    """Every test starts from the default thread count, a whole GPU and cuBLAS's default
    workspace, whatever the developer's shell exports, and leaves them so (set_seed sets
    CUBLAS_WORKSPACE_CONFIG for good: setting each first makes monkeypatch restore its absence)."""
    for name in ("WRENBOOK_TORCH_THREADS", "WRENBOOK_GPU_MEMORY_SHARE", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _files_under(folder):
    """Every file under ``folder``: its size and modification time, by relative path."""
    stats = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            stats[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return stats


@pytest.fixture(scope="session", autouse=True)
def checkout_cache_untouched():
    """No test writes into the artifact cache the book itself uses: a test that caches work must
    take ``isolated_artifacts``. At the session's end an error names any file added, changed or
    removed there (so do not run the tests beside a book execution in the same checkout)."""
    from wrenlib.cache import artifacts_root

    root = artifacts_root()
    before = _files_under(root) if root.exists() else {}
    yield
    after = _files_under(root) if root.exists() else {}
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, (f"tests changed {len(changed)} file(s) in the book's own cache {root}: "
                         f"{', '.join(changed[:5])}; use the isolated_artifacts fixture")


@pytest.fixture()
def other_masks():
    """``other_masks(patch)``: through ``patch`` (a monkeypatch, or one of its contexts), the
    profiles' clips draw their masks by another rule (their MASK_ONLY_FIELDS changed, mask_floor_db
    20 dB), which changes no pixel."""
    from dataclasses import replace

    from wrenlib import dataset

    real = dataset.surrogate_config_for_profile

    def apply(patch):
        patch.setattr(dataset, "surrogate_config_for_profile", lambda *args, **kwargs: replace(
            real(*args, **kwargs), mask_floor_db=20.0, mask_visible_db=-30.0))

    return apply


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


@pytest.fixture()
def small_cnn():
    """A small, untrained dialect CNN (32 x 64 images) with a fixed standardisation."""
    import torch

    from wrenlib.model import DialectCNN, ModelConfig

    torch.manual_seed(0)
    model = DialectCNN(ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,), dropout=0.0)).eval()
    model.set_standardisation(0.0, 0.2)
    return model
