"""Stage timings (wrenlib.bench): every stage timed and recorded, a warm cache refused."""

from __future__ import annotations

import json

import pytest

from wrenlib import profiles


@pytest.fixture()
def tiny_profile(monkeypatch):
    tiny = profiles.PROFILES["quick"].with_overrides(
        name="tiny", individuals_per_dialect=6, clips_per_individual=4, image_height_px=32, image_width_px=64,
        max_epochs=2, patience=2, explain_clips=2, lime_samples=16, shap_background=2)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    return tiny


def test_every_stage_is_timed_and_written_as_it_ends(tiny_profile, isolated_artifacts, tmp_path):
    from wrenlib.bench import STAGES, time_stages
    from wrenlib.explain import METHODS

    record = time_stages("tiny", tmp_path / "out", device=None, n_jobs=1)
    names = [row["stage"] for row in record["stages"]]
    assert names == [*STAGES[:3], *(f"{STAGES[3]}: {m}" for m in METHODS), STAGES[4]]
    written = json.loads((tmp_path / "out" / "stages-tiny.json").read_text())
    assert written == json.loads(json.dumps(record))
    assert written["profile"]["name"] == "tiny" and written["device"].startswith("cpu")
    rows = {row["stage"]: row for row in written["stages"]}
    assert rows["surrogate clips"]["clips"] == 48
    assert rows["spectrogram images"]["image_size"] == [32, 64]
    assert 1 <= rows["training one CNN"]["epochs"] <= 2
    assert all(row["seconds"] >= 0 and row["peak_rss_gib"] > 0 for row in written["stages"])
    assert written["total_seconds"] == pytest.approx(sum(row["seconds"] for row in written["stages"]), abs=0.2)
    # a second run would time cache loads, not work: refused, naming the folder
    with pytest.raises(ValueError, match="already holds this profile's data"):
        time_stages("tiny", tmp_path / "again")


def test_the_command_line_refuses_a_warm_cache_in_one_line(isolated_artifacts, tmp_path, capsys):
    from wrenlib.cache import profile_dir
    from wrenlib.cli import main

    (profile_dir("quick") / "surrogate").mkdir(parents=True)
    assert main(["bench", "--stages", "quick", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("wrenlib bench: error: ") and "WRENBOOK_ARTIFACTS" in error
    assert not (tmp_path / "out").exists()
