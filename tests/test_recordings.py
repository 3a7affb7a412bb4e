"""Real recordings in: formats, rates, channels, and every kind of bad input reported, not fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from wrenlib.frontend import PAPER_FRONT_END
from wrenlib.recordings import AudioError, load_recordings, read_audio, split_by_recording


def song_like(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (4_000 + 1_000 * np.sin(2 * np.pi * 3 * t)) * t)
    wave = wave + 0.01 * rng.standard_normal(len(t))
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.fixture()
def recordings_folder(tmp_path):
    root = tmp_path / "recordings"
    (root / "Eastern").mkdir(parents=True)
    (root / "Mexican").mkdir(parents=True)
    soundfile.write(root / "Eastern" / "a_16bit_44k.wav", song_like(9, 44_100), 44_100, subtype="PCM_16")
    soundfile.write(root / "Eastern" / "b_float_48k_stereo.wav", song_like(8, 48_000, 2), 48_000, subtype="FLOAT")
    soundfile.write(root / "Mexican" / "c_48k.flac", song_like(12, 48_000, seed=1), 48_000)
    soundfile.write(root / "Mexican" / "d_stereo_44k.flac", song_like(4, 44_100, 2, seed=2), 44_100)
    soundfile.write(root / "Mexican" / "too_short.wav", song_like(1, 22_050), 22_050)
    soundfile.write(root / "Mexican" / "silent.wav", np.zeros(5 * 22_050), 22_050)
    (root / "Eastern" / "random_bytes.wav").write_bytes(np.random.default_rng(0).bytes(5_000))
    (root / "Eastern" / "empty.wav").write_bytes(b"")
    (root / "Eastern" / "notes.txt").write_text("field notes")
    return root


def test_folder_loads_good_files_and_reports_every_bad_one(recordings_folder):
    recordings, report = load_recordings(recordings_folder, progress=False)
    assert recordings.label_names == ("Eastern", "Mexican")
    loaded = {p.split("/")[-1] for p in recordings.clips["file"]}
    assert loaded == {"a_16bit_44k.wav", "b_float_48k_stereo.wav", "c_48k.flac", "d_stereo_44k.flac"}
    reasons = {file.split("/")[-1]: reason for file, reason in report.skipped}
    assert "too short" in reasons["too_short.wav"]
    assert "silent" in reasons["silent.wav"]
    assert "corrupt" in reasons["random_bytes.wav"]
    assert "empty" in reasons["empty.wav"]
    assert "not an audio file" in reasons["notes.txt"]
    assert report.files_loaded == 4 and report.clips == len(recordings)
    assert len(report.table()) == 5 and "skipped" in str(report)
    # the printed report names the folder once and each skipped file inside it; the reasons do not repeat it
    text = str(report)
    assert f"of {recordings_folder.name} (in a temporary folder) -> " in text.splitlines()[0]
    skipped_file = next(file for file in report.table()["file"] if file.endswith("random_bytes.wav"))
    assert f"  skipped {Path(skipped_file).relative_to(recordings_folder)}: " in text
    assert str(recordings_folder) not in reasons["random_bytes.wav"]
    assert recordings.waveforms.shape[1] == PAPER_FRONT_END.clip_samples
    # 9 s -> 2 clips + a 1 s tail dropped; 8 s -> 2; 12 s -> 3; 4 s -> 1
    assert recordings.clips.groupby("file").size().sort_values().tolist() == [1, 2, 2, 3]


def test_resampling_and_mixing_to_mono(tmp_path):
    stereo = song_like(2, 48_000, 2)
    stereo[:, 1] = 0  # the mono mix is half the left channel
    soundfile.write(tmp_path / "s.wav", stereo, 48_000, subtype="FLOAT")
    audio = read_audio(tmp_path / "s.wav", 22_050)
    assert len(audio) == pytest.approx(2 * 22_050, abs=2)
    assert np.max(np.abs(audio)) == pytest.approx(0.5 * np.max(np.abs(stereo[:, 0])), rel=0.05)
    with pytest.raises(AudioError, match="missing"):
        read_audio(tmp_path / "nope.wav")


def test_manifest_with_missing_file_unknown_label_and_metadata(recordings_folder, tmp_path):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame([
        {"path": str(recordings_folder / "Eastern" / "a_16bit_44k.wav"), "label": "Eastern",
         "recording_id": "XC1", "latitude": 38.1, "longitude": -90.2, "licence": "CC-BY"},
        {"path": "nowhere.wav", "label": "Eastern", "recording_id": "XC2"},
        {"path": str(recordings_folder / "Eastern" / "b_float_48k_stereo.wav"), "label": "Pacific", "recording_id": "XC3"},
        {"path": str(recordings_folder / "Mexican" / "c_48k.flac"), "label": "Mexican", "recording_id": "XC4"},
    ]).to_csv(manifest, index=False)
    recordings, report = load_recordings(manifest, labels=("Eastern", "Mexican"), progress=False)
    assert set(recordings.clips["recording_id"]) == {"XC1", "XC4"}
    assert recordings.clips.loc[recordings.clips["recording_id"] == "XC1", "latitude"].iloc[0] == 38.1
    reasons = dict(report.skipped)
    assert any("missing file" in r for r in reasons.values())
    assert any("unknown label 'Pacific'" in r for r in reasons.values())


def test_a_manifest_without_required_columns_is_refused_by_name(tmp_path):
    manifest = tmp_path / "bad.csv"
    pd.DataFrame([{"file": "x.wav"}]).to_csv(manifest, index=False)
    with pytest.raises(ValueError, match="bad.csv.*path, label"):
        load_recordings(manifest, progress=False)


def test_clips_of_one_recording_never_land_in_two_splits():
    clips = pd.DataFrame({"recording_id": np.repeat([f"r{i}" for i in range(20)], 3),
                          "label": np.repeat(np.arange(20) % 2, 3)})
    clips["split"] = split_by_recording(clips, seed=4)
    assert clips.groupby("recording_id")["split"].nunique().max() == 1
    for label in (0, 1):
        assert set(clips.loc[clips["label"] == label, "split"]) == {"train", "validation", "test"}


def test_demo_recordings_round_trip_through_the_loader(small_dataset, tmp_path):
    from wrenlib.recordings import write_demo_recordings

    folder = write_demo_recordings(tmp_path / "demo", small_dataset.waveforms, small_dataset.clips,
                                   birds_per_dialect=2)
    recordings, report = load_recordings(folder, progress=False)
    assert report.files_loaded == 4 and len(report.skipped) == 3
    assert set(recordings.clips["dialect"]) == {"Eastern", "Mexican"}
    # each bird sang 3 clips of 4 s: a joined recording gives 3 clips back
    assert set(recordings.clips.groupby("recording_id").size()) == {3}


@pytest.mark.parametrize("suffix, rate", [(".ogg", 44_100), (".mp3", 48_000)])
def test_compressed_formats_are_read_and_resampled(tmp_path, suffix, rate):
    if suffix.strip(".").upper() not in soundfile.available_formats():
        pytest.skip(f"this libsndfile cannot write {suffix}")
    soundfile.write(tmp_path / f"song{suffix}", song_like(5, rate), rate)
    audio = read_audio(tmp_path / f"song{suffix}", 22_050)
    assert abs(len(audio) - 5 * 22_050) < 0.05 * 22_050  # MP3 adds a little padding
    assert 0.2 < np.max(np.abs(audio)) < 0.5


def test_recordings_dataset_splits_by_recording_and_keeps_the_report(small_dataset, tmp_path):
    from wrenlib.recordings import recordings_dataset, write_demo_recordings

    folder = write_demo_recordings(tmp_path / "demo", small_dataset.waveforms, small_dataset.clips,
                                   birds_per_dialect=5)
    front = PAPER_FRONT_END.with_image_size(32, 64)
    dataset, recordings, report = recordings_dataset(folder, front, seed=1, progress=False)
    assert recordings.label_names == ("Eastern", "Mexican") and len(report.skipped) == 3
    assert dataset.levels.shape == (len(recordings), 32, 64) and dataset.levels.dtype == np.uint8
    assert set(dataset.backgrounds) == {"black"}
    assert dataset.clips.groupby("recording_id")["split"].nunique().max() == 1
    assert set(dataset.clips["split"]) == {"train", "validation", "test"}
    np.testing.assert_array_equal(dataset.labels, (dataset.clips["dialect"] == "Mexican").astype(int))


def test_recordings_dataset_names_the_folder_when_nothing_is_usable(tmp_path):
    from wrenlib.recordings import recordings_dataset

    (tmp_path / "bad" / "Eastern").mkdir(parents=True)
    (tmp_path / "bad" / "Eastern" / "broken.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(ValueError, match=r"bad: no usable clips \(1 file\(s\) skipped\)\n  skipped .*broken.wav"):
        recordings_dataset(tmp_path / "bad", progress=False)


def test_describe_folder_reads_headers_and_names_unreadable_files(recordings_folder):
    from wrenlib.recordings import describe_folder

    table = describe_folder(recordings_folder).set_index("file")
    assert table.loc["Eastern/b_float_48k_stereo.wav", ["sample_rate_hz", "channels"]].tolist() == [48_000, 2]
    assert table.loc["Mexican/c_48k.flac", "seconds"] == pytest.approx(12.0)
    assert table.loc["Mexican/c_48k.flac", "format"].startswith("FLAC")
    assert table.loc["Eastern/a_16bit_44k.wav", "class"] == "Eastern"
    assert table.loc["Eastern/random_bytes.wav", "problem"] != ""
    assert table.loc["Eastern/empty.wav", "problem"] == "empty file (0 bytes)" and table.loc["Eastern/empty.wav", "bytes"] == 0
    assert table.loc["Eastern/a_16bit_44k.wav", "problem"] == ""
    with pytest.raises(ValueError, match="no such folder"):
        describe_folder(recordings_folder / "missing")


def test_report_names_a_folder_by_its_path_outside_the_temporary_folder(recordings_folder, tmp_path, monkeypatch):
    """A demo's folder in the system's temporary folder has a random parent that tells a reader nothing, so
    the report names it by its own name; any other folder is named by its path, once."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "elsewhere"))
    _, report = load_recordings(recordings_folder, progress=False)
    text = str(report)
    assert text.count(str(recordings_folder)) == 1 and f"of {recordings_folder} -> " in text.splitlines()[0]
    assert "temporary" not in text


def test_slow_audio_stray_files_blank_labels_and_unknown_splits_are_named_not_taken(recordings_folder, tmp_path):
    """An 8 kHz file lacks the band above 4 kHz where the trill and buzz lie: skipped with its
    rate, not upsampled into silence. A file beside the class subfolders is reported, not dropped
    unseen. A manifest's empty label is skipped (not a class "nan"), and a split it does not know
    is refused by name (those clips would fall out of every split)."""
    soundfile.write(recordings_folder / "Eastern" / "slow_8k.wav", song_like(6, 8_000), 8_000)
    soundfile.write(recordings_folder / "stray.wav", song_like(6, 22_050), 22_050)
    recordings, report = load_recordings(recordings_folder, progress=False)
    reasons = {file.split("/")[-1]: reason for file, reason in report.skipped}
    assert "8000 Hz, too slow" in reasons["slow_8k.wav"] and "slow_8k.wav" not in set(recordings.clips["file"])
    assert "outside every class subfolder" in reasons["stray.wav"]
    good = str(recordings_folder / "Eastern" / "a_16bit_44k.wav")
    manifest = tmp_path / "blank.csv"
    pd.DataFrame({"path": [good, good], "label": ["Eastern", None]}).to_csv(manifest, index=False)
    recordings, report = load_recordings(manifest, progress=False)
    assert recordings.label_names == ("Eastern",) and [r for _, r in report.skipped] == [
        "no label (the manifest's label cell is empty)"]
    pd.DataFrame({"path": [good, good], "label": ["Eastern"] * 2, "split": ["train", "Test"]}).to_csv(manifest, index=False)
    with pytest.raises(ValueError, match=r"unknown split\(s\) 'Test'.*use train, validation, test"):
        load_recordings(manifest, progress=False)


def test_a_synth_folders_clips_of_one_bird_are_one_recording(tmp_path):
    """`wrenlib synth` names each clip's bird in its labels.csv ("individual"): the loader takes it
    as the recording, so a bird's clips are split and counted together, not as independent files."""
    from wrenlib.cli import main

    main(["synth", "--n", "12", "--out", str(tmp_path / "synth"), "--seed", "1", "--jobs", "1", "--no-progress"])
    recordings, _ = load_recordings(tmp_path / "synth" / "labels.csv", progress=False)
    labels = pd.read_csv(tmp_path / "synth" / "labels.csv")
    by_file = {Path(file).name: str(bird) for file, bird in zip(labels["file"], labels["individual"])}
    ids = [by_file[Path(file).name] for file in recordings.clips["file"]]
    assert recordings.clips["recording_id"].tolist() == ids
    assert recordings.clips["recording_id"].nunique() < recordings.clips["file"].nunique()


def test_hidden_and_system_folders_are_neither_classes_nor_report_lines(recordings_folder):
    """Jupyter's .ipynb_checkpoints, a .Trash, macOS's __MACOSX with its ._ stubs and .DS_Store:
    a folder copied from a laptop holds them, and none is a class (they became classes, one of
    them with no clip at all)."""
    for hidden in (".ipynb_checkpoints", ".Trash", "__MACOSX"):
        (recordings_folder / hidden).mkdir()
        soundfile.write(recordings_folder / hidden / "a.wav", song_like(5, 22_050), 22_050)
    (recordings_folder / "__MACOSX" / "._a.wav").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    (recordings_folder / "Eastern" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (recordings_folder / "Eastern" / "._a_16bit_44k.wav").write_bytes(b"\x00\x05\x16\x07")
    recordings, report = load_recordings(recordings_folder, progress=False)
    assert recordings.label_names == ("Eastern", "Mexican")
    assert not [file for file, _ in report.skipped if "/." in file or "MACOSX" in file]
    assert len(report.skipped) == 5  # the fixture's five bad files, as before


def test_manifest_labels_are_trimmed_repeats_used_once_and_two_labels_refused(recordings_folder, tmp_path):
    a, b, c = (str(recordings_folder / name) for name in ("Eastern/a_16bit_44k.wav", "Eastern/b_float_48k_stereo.wav",
                                                        "Mexican/c_48k.flac"))
    manifest = tmp_path / "manifest.csv"
    # header in capitals, a label with a trailing space, a file listed twice, one listed under two labels
    # (a blank line does not shift the lines the report names; a path through a link is the same file)
    (tmp_path / "link").symlink_to(recordings_folder / "Eastern")
    manifest.write_text(f"Path,Label\n{a},Eastern \n\n{a},Eastern\n{b},Eastern\n{tmp_path / 'link' / Path(b).name},Mexican\n"
                        f"{c},Mexican\n")
    recordings, report = load_recordings(manifest, progress=False)
    assert recordings.label_names == ("Eastern", "Mexican")
    assert recordings.clips.groupby("file").size().to_dict() == {a: 2, c: 3}  # a once, b not at all
    assert report.notes == [(a, "listed on lines 2, 4 of the manifest: used once")]
    assert report.skipped == [(b, "listed on lines 5, 6 of the manifest under different labels (Eastern, Mexican): "
                                  "not used")]
    assert "  note " in str(report)
    manifest.write_text(f"path,label\n{a},Eastern\n{c},eastern\n")
    with pytest.raises(ValueError, match=r"manifest.csv: the labels 'Eastern' and 'eastern' differ only in case"):
        load_recordings(manifest, progress=False)


def test_a_class_whose_files_all_fail_is_no_class(recordings_folder):
    (recordings_folder / "Pacific").mkdir()
    (recordings_folder / "Pacific" / "broken.wav").write_bytes(b"RIFF nonsense")
    recordings, report = load_recordings(recordings_folder, progress=False)
    assert recordings.label_names == ("Eastern", "Mexican")
    assert set(recordings.clips["label"]) == {0, 1}  # numbered among the classes kept
    assert ("class 'Pacific'", "none of its files gave a clip: it is not one of the classes") in report.notes


def test_quiet_cancelling_and_cut_short_recordings_are_named_for_what_they_are(tmp_path):
    """Silence, a level below the clips' -60 dB, one the image's fixed scale draws black, a sound
    outside the band, stereo channels that cancel, and a WAV cut short of its header's length each
    get their own words (four of them read "all-silent in the band" before); the images of what
    loads show something."""
    from wrenlib.recordings import recording_clips

    front = PAPER_FRONT_END.with_image_size(32, 64)
    cases = {"loud.wav": song_like(5, 22_050), "below_clips.wav": 0.001 * song_like(5, 22_050),
             "below_image.wav": 0.05 * song_like(5, 22_050), "dc.wav": np.full(5 * 22_050, 0.3),
             "zero.wav": np.zeros(5 * 22_050)}
    for name, audio in cases.items():
        soundfile.write(tmp_path / name, audio.astype(np.float32), 22_050, subtype="FLOAT")
    antiphase = song_like(5, 22_050, 2)
    antiphase[:, 1] *= -1
    soundfile.write(tmp_path / "antiphase.wav", antiphase, 22_050, subtype="PCM_16")
    reasons = {}
    for name in [*cases, "antiphase.wav"]:
        try:
            pieces, levels = recording_clips(tmp_path / name, front)
            assert levels.shape == (len(pieces.clips), 32, 64) and levels.reshape(len(levels), -1).max(1).min() > 0
        except AudioError as error:
            reasons[name] = error.reason
    assert set(reasons) == set(cases) - {"loud.wav"} | {"antiphase.wav"}
    assert reasons["zero.wav"] == "all-silent file (every sample is zero)"
    assert reasons["below_clips.wav"].startswith("too quiet in the 1.5-9 kHz band: its loudest clip reaches -7")
    assert reasons["below_image.wav"].startswith("too quiet for the images: every pixel of its 1 clip(s) lies below "
                                                 "the image's -40 dB floor")
    assert reasons["dc.wav"].startswith("no sound in the 1.5-9 kHz band")
    assert "channels cancel out" in reasons["antiphase.wav"]
    # a WAV whose header promises 12 s, cut after 5 s (a recorder's battery, a copy stopped): used, and said
    soundfile.write(tmp_path / "long.wav", song_like(12, 22_050), 22_050, subtype="PCM_16")
    whole = (tmp_path / "long.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:44 + 2 * 22_050 * 5])
    notes = []
    audio = read_audio(tmp_path / "cut.wav", 22_050, notes)
    assert len(audio) == 5 * 22_050 and notes == ["cut short: its header declares 12.0 s, 5.0 s are in the file "
                                                  "(those are used)"]
    read_audio(tmp_path / "long.wav", 22_050, notes)
    assert len(notes) == 1  # a whole file has nothing to note
    with pytest.raises(AudioError, match="a folder, not an audio file"):
        read_audio(tmp_path)


def test_a_folder_that_cannot_train_a_classifier_is_refused_before_training(recordings_folder, small_dataset, tmp_path):
    from wrenlib.recordings import recordings_dataset, write_demo_recordings

    front = PAPER_FRONT_END.with_image_size(32, 64)
    (recordings_folder / "Mexican").rename(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match=r"recordings: one class only \(Eastern\): a classifier needs"):
        recordings_dataset(recordings_folder, front, progress=False, for_training=True)
    recordings_dataset(recordings_folder, front, progress=False)  # to evaluate a model on, one class is fine
    folder = write_demo_recordings(tmp_path / "demo", small_dataset.waveforms, small_dataset.clips,
                                   birds_per_dialect=3, include_bad_files=False)
    (folder / "Easten").mkdir()  # a misspelled class of one recording
    next((folder / "Eastern").iterdir()).rename(folder / "Easten" / "bird.wav")
    with pytest.raises(ValueError, match=r"demo: class 'Easten' has no clips in the validation split: it has 1 "
                                         r"recording\(s\) \(bird.wav\).*misspelled label"):
        recordings_dataset(folder, front, progress=False, for_training=True)


def test_a_manifests_own_splits_are_blamed_for_a_class_missing_from_training():
    from wrenlib.recordings import training_problem

    clips = pd.DataFrame({"dialect": ["Eastern"] * 3 + ["Mexican"] * 3, "recording_id": list("abcdef"),
                          "split": ["train", "validation", "test", "train", "test", "test"]})
    assert training_problem(clips, ("Eastern", "Mexican"), split_by_recording=False) == (
        "class 'Mexican' has no clips in the validation split: it has 3 recording(s) (d, e, f), and the manifest's "
        "split column puts none there")
    assert "misspelled label" in training_problem(clips, ("Eastern", "Mexican"))
    assert training_problem(clips.assign(split="train").iloc[[0, 1, 3, 4]].assign(
        split=["train", "validation"] * 2), ("Eastern", "Mexican")) is None


def test_nested_folders_and_upper_case_suffixes_load_hidden_folders_inside_a_class_do_not(tmp_path):
    """A recorder's session folders (Eastern/day1/) and its upper-case BIRD.WAV are recordings of
    the class; a notebook's checkpoint folder inside a class folder is not. A 16 kHz file lacks the
    top of the 1.5-9 kHz band, a file with a NaN sample or none at all is named for what it is."""
    root = tmp_path / "recordings"
    for folder in ("Eastern/day1", "Eastern/.ipynb_checkpoints", "Mexican"):
        (root / folder).mkdir(parents=True)
    soundfile.write(root / "Eastern" / "day1" / "BIRD.WAV", song_like(5, 22_050), 22_050)
    soundfile.write(root / "Eastern" / ".ipynb_checkpoints" / "copy.wav", song_like(5, 22_050), 22_050)
    soundfile.write(root / "Mexican" / "m.wav", song_like(5, 22_050, seed=1), 22_050)
    soundfile.write(root / "Mexican" / "at_16k.wav", song_like(5, 16_000), 16_000)
    with_nan = song_like(5, 22_050, seed=2)
    with_nan[1_000] = np.nan
    soundfile.write(root / "Mexican" / "with_nan.wav", with_nan, 22_050, subtype="FLOAT")
    soundfile.write(root / "Mexican" / "no_frames.wav", np.zeros(0), 22_050)
    recordings, report = load_recordings(root, progress=False)
    assert sorted(Path(f).name for f in set(recordings.clips["file"])) == ["BIRD.WAV", "m.wav"]
    reasons = {Path(file).name: reason for file, reason in report.skipped}
    assert set(reasons) == {"at_16k.wav", "with_nan.wav", "no_frames.wav"}  # the checkpoint copy: no line
    assert "16000 Hz, too slow" in reasons["at_16k.wav"]
    assert "NaN" in reasons["with_nan.wav"] and "zero-length" in reasons["no_frames.wav"]


def test_a_manifest_may_leave_some_splits_and_recording_ids_empty(tmp_path):
    """Empty split cells mean "split by recording" (the README): then every clip gets a split,
    the given ones included, never none. Empty recording ids name each file as its own recording,
    not one recording "nan"."""
    from wrenlib.recordings import SPLITS, recordings_dataset

    files = []
    for k in range(8):
        path = tmp_path / f"r{k}.wav"
        soundfile.write(path, song_like(5, 22_050, seed=k), 22_050)
        files.append(str(path))
    manifest = tmp_path / "labels.csv"
    pd.DataFrame({"path": files, "label": ["Eastern", "Mexican"] * 4,
                  "split": ["train", "test", None, None, "validation", None, None, None],
                  "recording_id": ["a", "b", None, None, "c", "d", "e", None]}).to_csv(manifest, index=False)
    recordings, report = load_recordings(manifest, progress=False)
    assert report.files_loaded == 8 and not report.skipped
    ids = dict(zip(recordings.clips["file"], recordings.clips["recording_id"]))
    assert ids[files[2]] != ids[files[3]] and "nan" not in set(ids.values())
    dataset, _, _ = recordings_dataset(manifest, PAPER_FRONT_END.with_image_size(32, 64), progress=False)
    assert set(dataset.clips["split"]) <= set(SPLITS) and dataset.clips["split"].notna().all()


def test_a_streamed_wavs_open_length_is_no_cut_short_note_and_a_file_column_beside_path_is_left_alone(tmp_path):
    """A recorder that streams its WAV writes 0xFFFFFFFF as the data size (length unknown): not a
    file cut short. A manifest with both a path and a file column reads its paths from path."""
    stream = tmp_path / "Eastern" / "streamed.wav"
    stream.parent.mkdir()
    soundfile.write(stream, song_like(5, 22_050), 22_050, subtype="PCM_16")
    raw = bytearray(stream.read_bytes())
    at = raw.index(b"data") + 4
    raw[at:at + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    stream.write_bytes(bytes(raw))
    manifest = tmp_path / "labels.csv"
    pd.DataFrame({"path": [str(stream)], "file": ["not/this/one.wav"], "label": ["Eastern"]}).to_csv(manifest, index=False)
    recordings, report = load_recordings(manifest, progress=False)
    assert report.files_loaded == 1 and not report.skipped and not report.notes
    assert list(recordings.clips["file"]) == [str(stream)]
