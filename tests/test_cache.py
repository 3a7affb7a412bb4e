"""The artifact cache and the results file."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from wrenlib import cache
from wrenlib.cache import load_or_build, profile_dir, read_results, record_result
from wrenlib.dataset import SurrogateDataset, load_surrogate_dataset


def _counting_build(calls):
    def build():
        calls.append(1)
        return {"value": len(calls)}
    return build


def _save(artifact, folder):
    (folder / "artifact.json").write_text(json.dumps(artifact))


def _load(folder):
    return json.loads((folder / "artifact.json").read_text())


def test_load_or_build_reuses_a_matching_build_and_rebuilds_on_a_new_config(tmp_path):
    calls = []
    folder = tmp_path / "thing"
    made = len(cache.MADE)
    first = load_or_build(folder, {"a": 1}, _counting_build(calls), _save, _load)
    again = load_or_build(folder, {"a": 1}, _counting_build(calls), _save, _load)
    assert first == again and len(calls) == 1
    assert cache.MADE[made:] == ["thing"]  # the build is noted (the status page), the load is not
    load_or_build(folder, {"a": 2}, _counting_build(calls), _save, _load)
    assert len(calls) == 2


def test_load_or_build_rebuilds_after_a_corrupt_stamp(tmp_path):
    calls = []
    folder = tmp_path / "thing"
    load_or_build(folder, {"a": 1}, _counting_build(calls), _save, _load)
    (folder / "config.json").write_text("{ not json")
    load_or_build(folder, {"a": 1}, _counting_build(calls), _save, _load)
    assert len(calls) == 2


def _build_slowly_and_count(folder, counter):
    import time

    def build():
        with open(counter, "a") as stream:
            stream.write("built\n")
        time.sleep(1.0)  # long enough for the other process to ask meanwhile
        return {"value": 7}

    return load_or_build(folder, {"a": 1}, build, _save, _load)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="the lock is POSIX's")
def test_jobs_side_by_side_build_an_artifact_once_and_both_get_it(tmp_path):
    """Two processes ask for the same missing artifact at once: one builds, the other waits for
    it and loads it (before, both built it and one deleted the other's folder)."""
    import multiprocessing

    counter = tmp_path / "builds.txt"
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.starmap(_build_slowly_and_count, [(tmp_path / "thing", counter)] * 2)
    assert results == [{"value": 7}, {"value": 7}]
    assert counter.read_text().count("built") == 1


def test_a_failed_build_leaves_no_artifact(tmp_path):
    def broken_save(artifact, folder):
        (folder / "half.bin").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        load_or_build(tmp_path / "thing", {"a": 1}, lambda: 1, broken_save, _load)
    assert not (tmp_path / "thing").exists()
    assert [p.name for p in tmp_path.iterdir()] == [".thing.lock"]  # no half-written artifact, no staging


def test_result_key_makes_the_keys_the_scorecard_reads_from_the_names_the_chapters_show():
    from wrenlib.cache import result_key
    from wrenlib.scorecard import OPEN_QUESTIONS

    made = {result_key("score", name, "mask AUC") for name in
            ("adaptive (all four)", "average (GC+DL)", "max (GC+DL)", "reference: the image")}
    read = {key for question in OPEN_QUESTIONS if question[1] == "08_ensembles" for key in question[2]}
    assert made <= read  # a chapter 08 map's name and the key the scorecard reads it under agree
    assert result_key("Grad-CAM", "features.4.1") == "gradcam_features.4.1"  # the dot stays
    assert result_key("shap", "Mexican's", 0.5) == "shap_mexicans_0.5"
    with pytest.raises(ValueError, match="no letters or digits"):
        result_key("(", "-")


def test_record_result_round_trips_numpy_values(isolated_artifacts):
    record_result("quick", "accuracy", np.float32(0.25))
    record_result("quick", "accuracy", np.float32(0.5))  # a chapter run again: its new number, not the old
    record_result("quick", "counts", {"a": np.int64(3)})
    assert read_results("quick") == {"accuracy": 0.5, "counts": {"a": 3}}
    assert (isolated_artifacts / "quick" / "results.json").is_file()
    with pytest.raises(ValueError):
        record_result("quick", "two words", 1)


def test_chapters_recording_side_by_side_lose_no_result(isolated_artifacts):
    import subprocess
    import sys

    writer = ("import sys\nfrom wrenlib.cache import record_result\n"
              "for i in range(60): record_result('quick', f'{sys.argv[1]}_{i}', i, glue=False)")
    processes = [subprocess.Popen([sys.executable, "-c", writer, name]) for name in ("first", "second", "third")]
    assert [process.wait() for process in processes] == [0, 0, 0]
    results = read_results("quick")
    assert len(results) == 180 and results["second_59"] == 59


def test_profile_dataset_is_cached(isolated_artifacts, monkeypatch):
    from wrenlib import profiles

    tiny = profiles.Profile("tiny", individuals_per_dialect=2, clips_per_individual=2,
                            image_height_px=8, image_width_px=16)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    from wrenlib import runtime

    # no n_jobs: one process per usable core (one here, so that the test spawns nothing)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 1)
    first = load_surrogate_dataset("tiny")
    stamp = (profile_dir("tiny") / "surrogate" / "waveforms.npy").stat().st_mtime_ns
    second = load_surrogate_dataset("tiny", n_jobs=3)
    assert (profile_dir("tiny") / "surrogate" / "waveforms.npy").stat().st_mtime_ns == stamp
    assert len(first) == len(second) == 8
    np.testing.assert_array_equal(first.waveforms, second.waveforms)
    assert first.processes == second.processes == 1  # how it was made travels with the cache
    assert second.made == first.made  # and when (chapter 01)
    assert abs(time.mktime(time.strptime(first.made, "%Y-%m-%d %H:%M UTC")) - time.mktime(time.gmtime())) < 300


def test_mask_cells_survive_their_run_encoding_and_old_caches_still_load(small_dataset, tmp_path):
    from wrenlib.dataset import _cells_from, _concatenate, _run_arrays

    rng = np.random.default_rng(0)
    cells = [np.array([], np.int32), np.array([5, 6, 7, 10], np.int32), np.array([11, 12], np.int32),  # 12 follows 10's clip
             np.array([], np.int32), np.sort(rng.choice(1000, 50, replace=False)).astype(np.int32), np.array([], np.int32)]
    runs = _run_arrays("diagnostic", cells)
    assert runs["diagnostic_runs"].tolist()[:4] == [0, 2, 1, 0]  # a clip's runs never cross into the next clip
    back = _cells_from(runs, "diagnostic")  # expanded one clip at a time, when asked for
    assert len(back) == len(cells) and all(np.array_equal(a, b) for a, b in zip(cells, back))
    assert all(back[i].dtype == np.int32 for i in range(len(cells)))
    assert np.array_equal(back[-2], cells[-2]) and [len(c) for c in back[1:3]] == [4, 2]
    assert np.array_equal(np.concatenate(back), np.concatenate(cells))  # as chapter 01 reads them
    with pytest.raises(IndexError):
        back[len(cells)]
    # a cache written before the run encoding (flat cells and counts) loads the same masks
    small_dataset.save(tmp_path / "ds")
    with np.load(tmp_path / "ds" / "masks.npz") as stored:
        shape = stored["shape"]
    np.savez_compressed(tmp_path / "ds" / "masks.npz", shape=shape,
                        diagnostic=_concatenate(small_dataset.diagnostic_cells),
                        diagnostic_counts=np.array([len(c) for c in small_dataset.diagnostic_cells]),
                        song=_concatenate(small_dataset.song_cells),
                        song_counts=np.array([len(c) for c in small_dataset.song_cells]))
    old = SurrogateDataset.load(tmp_path / "ds")
    assert all(np.array_equal(a, b) for a, b in zip(old.song_cells, small_dataset.song_cells))


def test_dataset_save_and_load_round_trip(small_dataset, tmp_path):
    import json

    small_dataset.save(tmp_path / "ds")
    loaded = SurrogateDataset.load(tmp_path / "ds")
    assert loaded.config == small_dataset.config
    # a folder written before masks stopped at the image's floor says so: its masks have none
    described = tmp_path / "ds" / "dataset.json"
    meta = json.loads(described.read_text())
    del meta["config"]["mask_visible_db"]
    described.write_text(json.dumps(meta))
    assert SurrogateDataset.load(tmp_path / "ds").config.mask_visible_db == float("-inf")
    np.testing.assert_array_equal(loaded.waveforms, small_dataset.waveforms)
    for index in (0, len(small_dataset) - 1):
        np.testing.assert_array_equal(loaded.diagnostic_mask(index), small_dataset.diagnostic_mask(index))
        np.testing.assert_array_equal(loaded.song_mask(index), small_dataset.song_mask(index))
    assert loaded.clips.equals(small_dataset.clips)


def test_kept_maps_are_made_once_and_loaded_after_a_build_cut_short(tmp_path):
    import numpy as np

    from wrenlib.cache import kept_maps, parts_folder

    folder = parts_folder(tmp_path / "cascade-abc")
    assert folder.parent == tmp_path and folder.name == "cascade-abc.parts"
    made = []

    def make():
        made.append(1)
        return {"lime": np.arange(6.0).reshape(2, 3), "gradcam": np.ones((2, 3), np.float32)}

    first = kept_maps(folder, "net1", make)
    (folder / ".net2.123.tmp.npz").write_bytes(b"half written")  # a piece cut off while saving: not a piece
    again = kept_maps(folder, "net1", make)
    assert made == [1] and sorted(again) == ["gradcam", "lime"]
    np.testing.assert_array_equal(again["lime"], first["lime"])
    assert again["gradcam"].dtype == np.float32
    kept_maps(folder, "net2", make)
    assert made == [1, 1]


def test_only_a_folder_with_the_books_table_of_contents_and_wrenlib_is_the_project(tmp_path):
    """Another Jupyter Book (a _toc.yml of its own) is not a wrenbook checkout: its folder must not
    receive the artifacts; a checkout is found from any folder inside it."""
    from wrenlib.cache import project_root

    other = tmp_path / "their_book"
    other.mkdir()
    (other / "_toc.yml").write_text("root: intro\n")
    assert project_root(other) is None
    (other / "wrenlib").mkdir()
    (other / "notebooks").mkdir()
    assert project_root(other / "notebooks") == other.resolve()


def test_a_saved_dataset_loads_every_table_and_how_it_was_made(small_dataset, tmp_path):
    """The element and background tables (empty details included: a wind gust has none) and the
    record of the generation (seconds, processes, time) come back as they were saved: chapter 01
    shows them, and chapters score maps against the element table."""
    import pandas as pd

    small_dataset.save(tmp_path / "ds")
    loaded = SurrogateDataset.load(tmp_path / "ds")
    assert (small_dataset.background["detail"] == "").any()
    pd.testing.assert_frame_equal(loaded.elements, small_dataset.elements)
    pd.testing.assert_frame_equal(loaded.background, small_dataset.background)
    assert loaded.seconds_to_generate == small_dataset.seconds_to_generate
    assert (loaded.processes, loaded.made) == (small_dataset.processes, small_dataset.made)
    # a cache written before the generation was recorded says "not recorded", not one process
    described = tmp_path / "ds" / "dataset.json"
    meta = json.loads(described.read_text())
    for key in ("seconds_to_generate", "processes", "made"):
        del meta[key]
    described.write_text(json.dumps(meta))
    old = SurrogateDataset.load(tmp_path / "ds")
    assert old.processes == 0 and old.made == "" and np.isnan(old.seconds_to_generate)


def test_clip_cells_keep_clips_apart_where_one_ends_next_to_the_next_ones_start():
    """Two clips whose cells touch (the first ends at cell 4, the next starts at 5) stay two clips,
    and the last clip is reachable as ``cells[-1]`` like any sequence's."""
    from wrenlib.dataset import _cells_from, _run_arrays

    cells = [np.array([3, 4], np.int32), np.array([5, 6, 9], np.int32), np.array([10], np.int32)]
    back = _cells_from(_run_arrays("song", cells), "song")
    assert [b.tolist() for b in back] == [c.tolist() for c in cells]
    assert back[-1].tolist() == [10] and back[-3].tolist() == [3, 4]


def test_the_profiles_dataset_is_made_in_the_processes_asked_and_kept_per_seed(isolated_artifacts, monkeypatch):
    """``n_jobs`` reaches the generator (None: one per usable core), and another seed is another
    dataset, not the cached one of the first."""
    from wrenlib import dataset, profiles, runtime

    monkeypatch.setitem(profiles.PROFILES, "tiny", profiles.Profile(
        "tiny", individuals_per_dialect=1, clips_per_individual=2, image_height_px=8, image_width_px=16))
    asked = []
    real = dataset.generate_surrogate_dataset

    def generate(config, n_jobs=2, **kwargs):
        asked.append(n_jobs)
        return real(config, n_jobs=1, **kwargs)  # in this process, whatever was asked

    monkeypatch.setattr(dataset, "generate_surrogate_dataset", generate)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 5)
    first = load_surrogate_dataset("tiny", n_jobs=3)
    other = load_surrogate_dataset("tiny", seed=1)
    assert asked == [3, 5]
    assert first.config.seed == 0 and other.config.seed == 1
    assert not np.array_equal(np.asarray(first.waveforms), np.asarray(other.waveforms))
