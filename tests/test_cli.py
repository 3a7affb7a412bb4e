"""The command line: clear one-line errors, no silent overwrite, a usable dataset on disk."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import soundfile


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrenlib", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1


def test_synth_refuses_zero_clips(tmp_path):
    assert_one_line_error(run_cli("synth", "--n", "0", "--out", str(tmp_path / "x")), "at least 1")
    assert not (tmp_path / "x").exists()


def test_synth_refuses_a_bad_option_value(tmp_path):
    assert_one_line_error(run_cli("synth", "--n", "3", "--seed", "abc", "--out", str(tmp_path / "x")),
                          "whole number")


def test_synth_refuses_a_non_empty_folder_and_keeps_its_content(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert_one_line_error(run_cli("synth", "--n", "2", "--out", str(out)), "not empty")
    assert (out / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


def test_synth_refuses_a_folder_it_cannot_create(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert_one_line_error(run_cli("synth", "--n", "2", "--out", str(blocker / "sub")), "cannot create")
    assert_one_line_error(run_cli("synth", "--n", "2", "--out", str(blocker)), "not a folder")


def test_synth_writes_wavs_labels_and_masks(tmp_path):
    out = tmp_path / "clips"
    result = run_cli("synth", "--n", "6", "--seed", "4", "--out", str(out), "--jobs", "1", "--no-progress")
    assert result.returncode == 0, result.stderr
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels.columns) == ["file", "dialect", "song_type", "individual", "split"]
    assert len(labels) == 6 and set(labels["dialect"]) == {"Eastern", "Mexican"}
    assert labels.groupby("individual")["split"].nunique().max() == 1
    from wrenlib.dataset import SurrogateDataset

    dataset = SurrogateDataset.load(out / "dataset")
    for index, row in labels.iterrows():
        audio, rate = soundfile.read(out / row["file"], dtype="float32")
        assert rate == 22_050
        np.testing.assert_array_equal(audio, dataset.waveforms[index])
    assert dataset.diagnostic_mask(0).any()


def test_spectrogram_writes_pngs_and_skips_a_bad_file(tmp_path):
    from PIL import Image

    rate = 22_050
    t = np.arange(9 * rate) / rate
    soundfile.write(tmp_path / "song.wav", 0.3 * np.sin(2 * np.pi * 4_000 * t), rate)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....nonsense")
    out = tmp_path / "images"
    result = run_cli("spectrogram", str(tmp_path / "song.wav"), str(tmp_path / "broken.wav"),
                     "--out", str(out), "--size", "60x120", "--background", "white")
    assert result.returncode == 1
    assert "broken.wav" in result.stderr and "Traceback" not in result.stderr
    pictures = sorted(out.glob("song_clip*.png"))
    assert len(pictures) == 2  # 9 s: two 4 s clips, the 1 s tail dropped
    image = np.asarray(Image.open(pictures[0]))
    assert image.shape == (60, 120) and image.max() == 255  # white background
    assert_one_line_error(run_cli("spectrogram", str(tmp_path / "song.wav"), "--out", str(out / "x"),
                                  "--size", "big"), "HEIGHTxWIDTH")


def test_train_and_evaluate_on_a_synth_folder(tmp_path):
    data = tmp_path / "clips"
    assert run_cli("synth", "--n", "36", "--seed", "2", "--out", str(data), "--no-progress").returncode == 0
    model = tmp_path / "model.pt"
    import os

    env_run = lambda *args: subprocess.run([sys.executable, "-m", "wrenlib", *args], capture_output=True,
                                           text=True, timeout=600, env={**os.environ, "TQDM_DISABLE": "1"})
    trained = env_run("train", str(data), "--profile", "quick", "--out", str(model))
    assert trained.returncode == 0, trained.stderr
    assert model.is_file() and "saved" in trained.stdout
    evaluated = env_run("evaluate", str(model), str(data))
    assert evaluated.returncode == 0, evaluated.stderr
    assert "accuracy" in evaluated.stdout and "Eastern:" in evaluated.stdout
    again = env_run("train", str(data), "--out", str(model))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    missing = env_run("evaluate", str(tmp_path / "nope.pt"), str(data))
    assert missing.returncode == 2 and "no such checkpoint" in missing.stderr
