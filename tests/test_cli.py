"""The command line: clear one-line errors, no silent overwrite, a usable dataset on disk."""

from __future__ import annotations

import contextlib
import io
import os
import random
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``wrenlib ARGS`` run in this process (a fresh interpreter would import torch again, ~5 s a call):
    exit status, stdout and stderr as :func:`subprocess.run` returns them. Warnings go to the captured
    stderr, as in a terminal. What a command changes globally (environment, the seeds and torch's
    thread count that ``set_seed`` and the synthesis workers set, warning filters) is put back after."""
    import torch

    from wrenlib.cli import main

    environment = dict(os.environ)
    random_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    threads = torch.get_num_threads()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    stdout, stderr = io.StringIO(), io.StringIO()

    def show_warning(message, category, filename, lineno, file=None, line=None):
        stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            warnings.showwarning = show_warning
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse: --help, and bad options (status 2)
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(environment)
        random.setstate(random_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    return subprocess.CompletedProcess(["wrenlib", *args], code, stdout.getvalue(), stderr.getvalue())


def test_python_m_wrenlib_is_the_command():
    """The module entry point itself, in a real interpreter (the other tests call :func:`main`):
    ``--help`` lists the commands, and a bad option is a one-line error with status 2."""
    command = [sys.executable, "-m", "wrenlib"]
    helped = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0, helped.stderr
    assert all(name in helped.stdout for name in ("synth", "spectrogram", "train", "evaluate", "explain"))
    assert_one_line_error(subprocess.run([*command, "synth", "--n", "0", "--out", "unused"],
                                         capture_output=True, text=True, timeout=300), "at least 1")


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1


def test_synth_refuses_zero_clips(tmp_path):
    assert_one_line_error(run_cli("synth", "--n", "0", "--out", str(tmp_path / "x")), "at least 1")
    assert not (tmp_path / "x").exists()


def test_synth_refuses_bad_settings_before_it_makes_the_folder(tmp_path):
    result = run_cli("synth", "--n", "8", "--snr-db", "30", "5", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "snr" in result.stderr.lower()
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
    assert [p.name for p in pictures] == ["song_clip000_00000.0s.png", "song_clip001_00004.0s.png"]  # number, start
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in pictures]  # none under the broken file's name
    image = np.asarray(Image.open(pictures[0]))
    assert image.shape == (60, 120) and image.max() == 255  # white background
    assert_one_line_error(run_cli("spectrogram", str(tmp_path / "song.wav"), "--out", str(out / "x"),
                                  "--size", "big"), "HEIGHTxWIDTH")
    assert_one_line_error(run_cli("spectrogram", str(tmp_path / "song.wav"), "--out", str(out / "x"),
                                  "--size", "4x960"), "8x8")
    # two recorders' files of one name (ZOOM0001.WAV in two folders): the second's images never overwrite
    # the first's; and a folder given as a file is named as a folder
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        soundfile.write(tmp_path / folder / "song.wav", 0.3 * np.sin(2 * np.pi * 4_000 * t), rate)
    both = run_cli("spectrogram", *(str(tmp_path / folder / "song.wav") for folder in "abc"), str(tmp_path / "a"),
                   "--out", str(tmp_path / "twice"), "--size", "60x120")
    assert len(list((tmp_path / "twice").glob("song_clip*.png"))) == 2
    assert len(list((tmp_path / "twice").glob("song-2_clip*.png"))) == 2
    assert len(list((tmp_path / "twice").glob("song-3_clip*.png"))) == 2
    assert "a folder, not an audio file" in both.stderr and both.returncode == 1


def test_train_and_evaluate_on_a_synth_folder(tmp_path, monkeypatch):
    data = tmp_path / "clips"
    assert run_cli("synth", "--n", "36", "--seed", "2", "--out", str(data), "--no-progress").returncode == 0
    model = tmp_path / "model.pt"
    monkeypatch.setenv("TQDM_DISABLE", "1")
    trained = run_cli("train", str(data), "--profile", "quick", "--out", str(model))
    assert trained.returncode == 0, trained.stderr
    assert model.is_file() and "saved" in trained.stdout
    evaluated = run_cli("evaluate", str(model), str(data))
    assert evaluated.returncode == 0, evaluated.stderr
    assert "accuracy" in evaluated.stdout and "Eastern:" in evaluated.stdout
    assert "on the test split's" in evaluated.stdout  # only the clips training held out are scored
    again = run_cli("train", str(data), "--out", str(model))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    missing = run_cli("evaluate", str(tmp_path / "nope.pt"), str(data))
    assert missing.returncode == 2 and "no such checkpoint" in missing.stderr
    # evaluate draws the images on the background the model was trained on (its checkpoint says which)
    from wrenlib.images import SpectrogramDataset
    from wrenlib.training import load_checkpoint, save_checkpoint

    network, config, _ = load_checkpoint(model)
    save_checkpoint(tmp_path / "white.pt", network, {**config, "data": {**config["data"], "background": "white"}})
    drawn, real = [], SpectrogramDataset.with_background
    monkeypatch.setattr(SpectrogramDataset, "with_background",
                        lambda self, background, seed=0: drawn.append(background) or real(self, background, seed))
    assert run_cli("evaluate", str(tmp_path / "white.pt"), str(data)).returncode == 0
    assert drawn == ["white"]


# ---------------------------------------------------------------- wrenlib explain


@pytest.fixture()
def explain_inputs(tmp_path):
    """A tiny untrained CNN saved as `load_or_train_model` saves one, two short songs, one corrupt file."""
    import torch

    from wrenlib.frontend import PAPER_FRONT_END
    from wrenlib.model import DialectCNN, ModelConfig
    from wrenlib.training import TrainingConfig, save_checkpoint

    torch.manual_seed(0)
    model_config = ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,))
    config = {"model": model_config.to_dict(), "training": TrainingConfig().to_dict(),
              "data": {"surrogate": None, "front_end": PAPER_FRONT_END.with_image_size(32, 64).to_dict(),
                       "background": "mixed", "seed": 0}}
    save_checkpoint(tmp_path / "model.pt", DialectCNN(model_config), config)
    rate = 22_050
    t = np.arange(5 * rate) / rate  # 5 s: one 4 s clip, the 1 s tail dropped
    soundfile.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 4_000 * t), rate)
    soundfile.write(tmp_path / "chirp.wav", 0.3 * np.sin(2 * np.pi * (2_000 + 600 * t) * t), rate)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....nonsense")
    return tmp_path


def explain_cli(capsys, inputs, *files: str, method: str = "gradcam", out: str = "maps", extra=()):
    from wrenlib.cli import main

    code = main(["explain", *(str(inputs / name) for name in files), "--model", str(inputs / "model.pt"),
                 "--method", method, "--out", str(inputs / out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error_text(code: int, err: str, fragment: str) -> None:
    assert code == 2
    assert "Traceback" not in err and fragment in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_explain_writes_image_map_and_overlay_per_file_and_skips_a_corrupt_one(explain_inputs, capsys):
    from PIL import Image

    from wrenlib.explain import explain
    from wrenlib.training import load_checkpoint

    inputs = explain_inputs
    (inputs / "again").mkdir()
    (inputs / "again" / "tone.wav").write_bytes((inputs / "tone.wav").read_bytes())
    code, out, err = explain_cli(capsys, inputs, "tone.wav", "broken.wav", "chirp.wav", "again/tone.wav")
    assert code == 1  # one file skipped, the rest explained
    assert "broken.wav" in err and "Traceback" not in err
    folder = inputs / "maps"
    table = pd.read_csv(folder / "explanations.csv")
    assert list(table["output"]) == ["tone", "chirp", "tone-2"]  # a second tone.wav never overwrites the first
    assert set(table.columns) >= {"file", "predicted_dialect", "probability", "method", "settings"}
    assert set(table["predicted_dialect"]) <= {"Eastern", "Mexican"} and (table["method"] == "gradcam").all()
    assert table["probability"].between(0.5, 1).all()
    model, _, _ = load_checkpoint(inputs / "model.pt")
    for row in table.itertuples():
        image = np.asarray(Image.open(folder / f"{row.output}_image.png"))
        raw = np.load(folder / f"{row.output}_map.npy")
        assert image.shape == raw.shape == (32, 64) and raw.dtype == np.float32
        assert np.median(image) == 0  # black background by default
        assert Image.open(folder / f"{row.output}_overlay.png").size[0] > 64
        target = ["Eastern", "Mexican"].index(row.predicted_dialect)
        again = explain(model, image[None] / 255.0, "gradcam", targets=[target]).maps[0]
        np.testing.assert_allclose(raw, again, rtol=1e-4, atol=1e-6)  # the map is the PNG's map
    assert not (folder / "broken_image.png").exists()


@pytest.mark.parametrize("method, extra, setting, value", [
    ("deeplift", ("--baseline", "background"), "baseline", "background"),
    ("lime", ("--samples", "16"), "n_samples", 16),
])
def test_explain_passes_the_method_settings(explain_inputs, capsys, method, extra, setting, value):
    import json

    code, _, err = explain_cli(capsys, explain_inputs, "chirp.wav", method=method,
                               extra=(*extra, "--background", "white"))
    assert code == 0, err
    table = pd.read_csv(explain_inputs / "maps" / "explanations.csv")
    assert json.loads(table["settings"][0])[setting] == value and table["method"][0] == method
    assert np.load(explain_inputs / "maps" / "chirp_map.npy").shape == (32, 64)
    from PIL import Image

    assert np.median(np.asarray(Image.open(explain_inputs / "maps" / "chirp_image.png"))) == 255  # white


def test_explain_shap_is_the_partition_explainer(explain_inputs, capsys, monkeypatch):
    """Without training images at hand, SHAP is the partition explainer (its numba start-up costs
    ~20 s, so the call itself is replaced here; tests/test_explain.py covers the explainers)."""
    from dataclasses import asdict

    import wrenlib.explain

    calls = []

    def fake_explain(model, images, method, targets=None, settings=None, **_):
        calls.append((method, settings))
        return wrenlib.explain.Explanation(method, np.zeros((1, 32, 64), np.float32), np.asarray(targets),
                                           asdict(settings))

    monkeypatch.setattr(wrenlib.explain, "explain", fake_explain)
    code, _, err = explain_cli(capsys, explain_inputs, "tone.wav", method="shap", extra=("--samples", "40"))
    assert code == 0, err
    (method, settings), = calls
    assert method == "shap" and settings.explainer == "partition" and settings.max_evals == 40
    table = pd.read_csv(explain_inputs / "maps" / "explanations.csv")
    assert bool(table["all_zero_map"][0])  # an all-zero map is written and flagged, not dropped
    assert (explain_inputs / "maps" / "tone_overlay.png").is_file()


def test_explain_refuses_a_non_empty_folder_and_keeps_its_content(explain_inputs, capsys):
    out = explain_inputs / "maps"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, _, err = explain_cli(capsys, explain_inputs, "tone.wav")
    assert_one_line_error_text(code, err, "not empty")
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


def test_explain_reports_bad_models_and_options_in_one_line(explain_inputs, capsys):
    from wrenlib.frontend import PAPER_FRONT_END
    from wrenlib.model import DialectCNN, ModelConfig
    from wrenlib.training import save_checkpoint

    inputs = explain_inputs

    def error(out: str, method: str = "gradcam", extra=()) -> tuple[int, str]:
        code, _, err = explain_cli(capsys, inputs, "tone.wav", method=method, out=out, extra=extra)
        return code, err

    (inputs / "model.pt").rename(inputs / "kept.pt")
    assert_one_line_error_text(*error("a"), "no such checkpoint")
    model_config = ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,))
    save_checkpoint(inputs / "model.pt", DialectCNN(model_config),
                    {"model": model_config.to_dict(),
                     "data": {"front_end": PAPER_FRONT_END.with_image_size(64, 128).to_dict()}})
    assert_one_line_error_text(*error("b"), "model and front end disagree")
    save_checkpoint(inputs / "model.pt", DialectCNN(model_config),  # three dialect names for two classes
                    {"model": model_config.to_dict(),
                     "data": {"front_end": PAPER_FRONT_END.with_image_size(32, 64).to_dict(),
                              "label_names": ["Eastern", "Mexican", "Western"]}})
    assert_one_line_error_text(*error("b2"), "model and labels disagree")
    (inputs / "model.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error_text(*error("c"), "not a wrenlib checkpoint")
    save_checkpoint(inputs / "model.pt", DialectCNN(ModelConfig(32, 64, conv_channels=(2, 4), hidden_units=(16,))),
                    {"model": model_config.to_dict()})  # weights of another network under this one's settings
    assert_one_line_error_text(*error("c2"), "model settings and weights disagree")
    (inputs / "kept.pt").replace(inputs / "model.pt")
    assert_one_line_error_text(*error("d", "lime", ("--baseline", "black")), "deeplift only")
    assert_one_line_error_text(*error("e", extra=("--samples", "9")), "lime and shap only")
    assert not any((inputs / name).exists() for name in ("a", "b", "b2", "c", "c2", "d", "e"))  # nothing created


def test_explain_options_match_the_library(capsys):
    from wrenlib import cli
    from wrenlib.explain import BASELINES, METHODS, LimeSettings, ShapSettings

    assert cli.METHOD_CHOICES == METHODS and cli.BASELINE_CHOICES == BASELINES
    with pytest.raises(SystemExit):
        cli.main(["explain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"default {LimeSettings().n_samples}" in text and f"default {ShapSettings().max_evals}" in text


@pytest.fixture
def refusals_only(monkeypatch):
    """A refusal test's command must stop before any real work: should a refusal break, the test
    fails at once instead of running the benchmark or the whole book."""
    from wrenlib import bench, book, cli

    def reached(*args, **kwargs):
        raise AssertionError("the command was not refused and started real work")

    for module, name in [(cli, "bench"), (bench, "time_stages"), (bench, "write_backend_benchmark"),
                         (book, "save_job_times"), (book, "execute_chapters")]:
        monkeypatch.setattr(module, name, reached)


def test_bench_options_that_apply_to_another_mode_are_refused(tmp_path, refusals_only):
    assert_one_line_error(run_cli("bench", "--mixed-precision", "native", "--out", str(tmp_path)),
                          "--mixed-precision applies to --stages only")
    assert_one_line_error(run_cli("bench", "--partial", "--out", str(tmp_path)), "--partial applies to --job-times only")
    # under bench's own usage line, not the top-level one
    assert "usage: wrenlib bench" in run_cli("bench", "--partial", "--out", str(tmp_path)).stderr
    # one kind of benchmark per call: a second was silently dropped, --clips silently ignored
    refused = run_cli("bench", "--backend", "--stages", "full", "--out", str(tmp_path))
    assert refused.returncode == 2 and "not allowed with argument" in refused.stderr
    assert_one_line_error(run_cli("bench", "--backend", "--clips", "8", "--out", str(tmp_path)),
                          "--clips applies to the default benchmarks only")
    assert not any(tmp_path.iterdir())  # nothing ran


def test_execute_refuses_zero_jobs(capsys, refusals_only):
    from wrenlib.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["execute", "--jobs", "0"])
    assert stopped.value.code == 2 and "--jobs" in capsys.readouterr().err


def test_execute_names_a_bad_thread_count_in_one_line(monkeypatch):
    monkeypatch.setenv("WRENBOOK_TORCH_THREADS", "many")
    assert_one_line_error(run_cli("execute", "--profile", "quick", "99_scorecard"),
                          "WRENBOOK_TORCH_THREADS must be a whole number of threads")


def test_bench_job_times_needs_a_complete_run(tmp_path, monkeypatch, isolated_artifacts):
    (tmp_path / "_toc.yml").write_text("root: book/intro\n")
    (tmp_path / "wrenlib").mkdir()
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(run_cli("bench", "--job-times", "quick"), "no complete run of the profile 'quick'")
    assert not (tmp_path / "book" / "benchmarks").exists()
    monkeypatch.chdir(tmp_path.parent)  # outside a checkout
    assert_one_line_error(run_cli("bench", "--job-times", "quick"), "wrenbook checkout")


def test_evaluate_reports_bad_checkpoints_in_one_line_as_explain_does(tmp_path, capsys):
    """Before any recording is rendered: a checkpoint without a front end, and one whose front end
    makes another image size than its model takes, end in one line and status 2, no traceback."""
    from wrenlib.cli import main
    from wrenlib.frontend import PAPER_FRONT_END
    from wrenlib.model import DialectCNN, ModelConfig
    from wrenlib.training import save_checkpoint

    model_config = ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,))
    for data, fragment in (({}, "stores no front end"),
                           ({"front_end": PAPER_FRONT_END.with_image_size(64, 128).to_dict()},
                            "model and front end disagree")):
        save_checkpoint(tmp_path / "model.pt", DialectCNN(model_config), {"model": model_config.to_dict(), "data": data})
        code = main(["evaluate", str(tmp_path / "model.pt"), str(tmp_path)])
        assert_one_line_error_text(code, capsys.readouterr().err, fragment)


def test_explain_explains_a_recordings_first_clip_and_notes_a_background_the_model_never_saw(explain_inputs, capsys):
    """The image explained is the recording's first clip (the one its start and the table name),
    as `wrenlib spectrogram` draws it; a model trained on white only is noted when asked for black."""
    from PIL import Image

    from wrenlib.cli import main
    from wrenlib.training import load_checkpoint, save_checkpoint

    inputs, rate = explain_inputs, 22_050
    t = np.arange(9 * rate) / rate
    soundfile.write(inputs / "two.wav", 0.3 * np.sin(2 * np.pi * np.where(t < 4, 3_000, 7_000) * t), rate)
    code, _, err = explain_cli(capsys, inputs, "two.wav")
    assert code == 0 and "trained on" not in err  # a mixed-background model: nothing to note
    assert main(["spectrogram", str(inputs / "two.wav"), "--out", str(inputs / "images"), "--size", "32x64"]) == 0
    explained = np.asarray(Image.open(inputs / "maps" / "two_image.png"))
    first, second = (np.asarray(Image.open(inputs / "images" / name))
                     for name in ("two_clip000_00000.0s.png", "two_clip001_00004.0s.png"))
    assert np.array_equal(explained, first) and not np.array_equal(explained, second)
    model, config, _ = load_checkpoint(inputs / "model.pt")
    save_checkpoint(inputs / "model.pt", model, {**config, "data": {**config["data"], "background": "white"}})
    code, _, err = explain_cli(capsys, inputs, "two.wav", out="white", extra=("--background", "black"))
    assert code == 0 and "trained on white backgrounds only" in err


def test_a_seed_of_zero_is_a_seed_and_a_negative_one_is_refused():
    from wrenlib.cli import build_parser

    assert build_parser().parse_args(["synth", "--n", "4", "--out", "x", "--seed", "0"]).seed == 0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["synth", "--n", "4", "--out", "x", "--seed", "-1"])
