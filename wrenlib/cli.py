"""The ``wrenlib`` command line: ``wrenlib synth`` writes a surrogate dataset as WAV files,
``spectrogram``, ``train``, ``evaluate`` and ``explain`` work on recordings, ``bench`` times the
pieces, and ``wrenlib execute`` runs the book's chapters (what ``make execute`` calls).
``wrenlib fetch-xc`` (optional, never run by CI) downloads xeno-canto recordings into a manifest.

Bad arguments end with a one-line error and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

from .profiles import MIXED_PRECISION

METHOD_CHOICES = ("gradcam", "deeplift", "lime", "shap")  # wrenlib.explain's METHODS and BASELINES,
BASELINE_CHOICES = ("white", "black", "background", "blurred")  # without importing torch for --help


class CommandError(Exception):
    """A problem with the user's input, reported as one line."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _prepare_output_folder(folder: Path) -> None:
    """Refuse to write into a folder that has files in it or that we cannot write to."""
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"output path {folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise CommandError(f"output folder {folder} is not empty; choose a new or empty folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot create output folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise CommandError(f"output folder {folder} is not writable")


def synth(n_clips: int, seed: int, out: Path, separation: float, snr_db: tuple[float, float],
          n_jobs: int, progress: bool = True) -> Path:
    """Write ``n_clips`` surrogate clips as WAV files plus ``labels.csv`` and ``masks.npz`` in ``out``."""
    import soundfile

    from .dataset import generate_surrogate_dataset
    from .surrogate import SurrogateConfig

    try:  # the settings first: a refused one leaves no folder behind
        config = SurrogateConfig.for_clip_count(n_clips, seed=seed, separation=separation,
                                                snr_db_range=snr_db)
    except ValueError as error:
        raise CommandError(str(error)) from None
    _prepare_output_folder(out)
    dataset = generate_surrogate_dataset(config, n_jobs=n_jobs, progress=progress)
    audio = out / "audio"
    audio.mkdir()
    rows = []
    for index, row in dataset.clips.iterrows():
        name = f"audio/{row['dialect'].lower()}_{index:05d}.wav"
        soundfile.write(out / name, np.asarray(dataset.waveforms[index]), config.sample_rate_hz,
                        subtype="FLOAT")
        rows.append({"file": name, "dialect": row["dialect"], "song_type": row["song_type"],
                     "individual": row["individual"], "split": row["split"]})
    with open(out / "labels.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    dataset.elements.to_csv(out / "elements.csv", index=False)
    dataset.save(out / "dataset")
    return out


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 480x960, got {text!r}") from None
    if height < 8 or width < 8:
        raise argparse.ArgumentTypeError(f"images must be at least 8x8 pixels, got {text!r}")
    return height, width


def _save_grey_png(image: np.ndarray, path: Path) -> None:
    """An image in [0, 1] as an 8-bit grey PNG."""
    from PIL import Image

    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), mode="L").save(path)


def spectrogram(audio: list[Path], out: Path, background: str, size: tuple[int, int]) -> int:
    """Write a PNG per clip of each recording; report and skip unusable files. Returns the number
    of files skipped."""
    from .frontend import PAPER_FRONT_END, apply_background
    from .recordings import AudioError, recording_clips

    _prepare_output_folder(out)
    front_end = PAPER_FRONT_END.with_image_size(*size)
    skipped, used = 0, set()
    for path in audio:
        notes: list[str] = []
        try:
            pieces, levels = recording_clips(path, front_end, notes)
        except AudioError as error:
            print(f"wrenlib spectrogram: skipped {error.path}: {error.reason}", file=sys.stderr)
            skipped += 1
            continue
        _print_notes("spectrogram", path, notes, pieces)
        images = apply_background(levels.astype(np.float32) / 255, background)
        stem = _unused_stem(path, used)
        for number, (image, start) in enumerate(zip(images, pieces.starts_s)):
            _save_grey_png(image, out / f"{stem}_clip{number:03d}_{start:07.1f}s.png")
        print(f"{path}: {len(images)} image(s)" + (f" -> {out / stem}_clip*" if stem != Path(path).stem else ""))
    return skipped


def _unused_stem(path: Path, used: set[str]) -> str:
    """The name a recording's output files start with: its own (``song`` for song.wav), or, where
    another recording of this call had that name (song.flac beside song.wav, or two folders'
    ZOOM0001.WAV), ``song-2``, ``song-3``...: never overwrite the first one's files."""
    stem, number = Path(path).stem, 1
    while stem in used:
        number += 1
        stem = f"{Path(path).stem}-{number}"
    used.add(stem)
    return stem


def _print_notes(command: str, path: Path, notes: list[str], pieces) -> None:
    """What was odd but usable about a recording (:func:`wrenlib.recordings.recording_clips`), on stderr."""
    if pieces.dropped_invisible:
        notes = [*notes, f"{pieces.dropped_invisible} clip(s) too quiet for the image (every pixel below its floor) "
                         "left out"]
    for text in notes:
        print(f"wrenlib {command}: note {path}: {text}", file=sys.stderr)


def _model_and_front_end(model_path: Path):
    """A saved model with the front end and dialect names it was trained with; a checkpoint that
    is missing, unreadable, or whose model and front end disagree is a :class:`CommandError`."""
    from .frontend import front_end_from_dict
    from .training import load_checkpoint

    try:
        model, config, _ = load_checkpoint(model_path)
    except (FileNotFoundError, ValueError) as error:  # each names the file and what is wrong with it
        raise CommandError(str(error).strip().splitlines()[0]) from None
    settings = config.get("data", {}).get("front_end") if isinstance(config.get("data"), dict) else None
    if not settings:
        raise CommandError(f"{model_path}: the checkpoint stores no front end (data/front_end)")
    try:
        front_end = front_end_from_dict(settings)
    except (KeyError, TypeError, ValueError) as error:
        raise CommandError(f"{model_path}: cannot rebuild the checkpoint's front end ({error})") from None
    model_size = (model.config.image_height_px, model.config.image_width_px)
    if model_size != front_end.image_size:
        raise CommandError(f"{model_path}: model and front end disagree: the model takes "
                           f"{model_size[0]} x {model_size[1]} images, its front end makes "
                           f"{front_end.image_height_px} x {front_end.image_width_px}")
    labels = tuple(config["data"].get("label_names", ("Eastern", "Mexican")))
    if len(labels) != model.config.n_classes:
        raise CommandError(f"{model_path}: model and labels disagree: {model.config.n_classes} classes, "
                           f"{len(labels)} dialect names ({', '.join(labels)})")
    return model, front_end, labels, config


def _explainer_settings(method: str, baseline: str | None, samples: int | None):
    """The settings ``wrenlib explain`` uses: the library's defaults, the DeepLIFT baseline, LIME's
    samples, and SHAP's partition explainer with its model evaluations (see the help text)."""
    from .explain import make_settings

    if baseline is not None and method != "deeplift":
        raise CommandError(f"--baseline applies to deeplift only, not to {method}")
    if samples is not None and method not in ("lime", "shap"):
        raise CommandError(f"--samples applies to lime and shap only, not to {method}")
    if method == "deeplift":
        return make_settings(method, **({"baseline": baseline} if baseline else {}))
    if method == "lime":
        return make_settings(method, **({"n_samples": samples} if samples else {}))
    if method == "shap":
        return make_settings(method, explainer="partition", **({"max_evals": samples} if samples else {}))
    return make_settings(method)


def _save_overlay(image: np.ndarray, normalised: np.ndarray, front_end, title: str, path: Path) -> None:
    """The image with the normalised map on top, drawn as the book draws it (:func:`plot_attribution`)."""
    from matplotlib.figure import Figure

    from .plotting import attribution_colorbar, plot_attribution

    fig = Figure(figsize=(8, 4.2))  # no pyplot: nothing global, no window
    ax = fig.add_subplot()
    plot_attribution(image, normalised, ax=ax, front_end=front_end, title=title)
    attribution_colorbar(fig, ax, label="attribution for the predicted dialect")
    fig.savefig(path, dpi=100, bbox_inches="tight")


def explain_recordings(audio: list[Path], model_path: Path, method: str, out: Path,
                       baseline: str | None = None, samples: int | None = None,
                       background: str = "black") -> int:
    """Explain the first clip of each recording for the model's predicted dialect (chapters 04-07).

    Writes ``<stem>_image.png``, ``<stem>_map.npy`` (the raw map, float32, the image's shape) and
    ``<stem>_overlay.png`` per recording, and ``explanations.csv``; unusable recordings are
    reported and skipped. Returns the number of files skipped.
    """
    import csv
    import json
    import warnings

    import torch

    from .explain import METHOD_TITLES, explain, normalise_maps
    from .frontend import apply_background
    from .recordings import AudioError, recording_clips
    from .runtime import choose_device

    settings = _explainer_settings(method, baseline, samples)
    model, front_end, labels, config = _model_and_front_end(model_path)
    trained_on = config["data"].get("background")
    if trained_on in ("black", "white") and trained_on != background:
        print(f"wrenlib explain: note: the model was trained on {trained_on} backgrounds only; "
              f"these images are on {background}", file=sys.stderr)
    _prepare_output_folder(out)
    device = choose_device()
    model = model.to(device)
    rows, used, skipped = [], set(), 0
    for path in audio:
        notes: list[str] = []
        try:
            pieces, levels = recording_clips(path, front_end, notes)
        except AudioError as error:
            print(f"wrenlib explain: skipped {error.path}: {error.reason}", file=sys.stderr)
            skipped += 1
            continue
        _print_notes("explain", path, notes, pieces)
        # the first clip with song, on the uint8 grid the model was trained on (training.batches)
        image = apply_background(levels[:1].astype(np.float32) / 255, background)
        with torch.no_grad():
            probabilities = torch.softmax(model(torch.from_numpy(image)[:, None].to(device)), dim=1)[0].cpu().numpy()
        target = int(np.argmax(probabilities))
        with warnings.catch_warnings():  # captum's and shap's notes about hooks and versions
            warnings.simplefilter("ignore")
            result = explain(model, image, method, targets=[target], settings=settings, device=device)
        stem = _unused_stem(path, used)
        dialect, probability = labels[target], float(probabilities[target])
        _save_grey_png(image[0], out / f"{stem}_image.png")
        np.save(out / f"{stem}_map.npy", result.maps[0].astype(np.float32))
        title = (f"{Path(path).name} ({pieces.starts_s[0]:.1f} s): {dialect} {probability:.1%}; "
                 f"{METHOD_TITLES[method]}")
        _save_overlay(image[0], normalise_maps(result.maps)[0], front_end, title, out / f"{stem}_overlay.png")
        rows.append({"file": str(path), "output": stem, "clip_start_s": float(pieces.starts_s[0]),
                     "predicted_dialect": dialect, "probability": round(probability, 6), "method": method,
                     "all_zero_map": bool(result.all_zero[0]), "settings": json.dumps(result.settings)})
        print(f"{path}: {dialect} ({probability:.1%}) -> {out / stem}_*")
    with open(out / "explanations.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["file", "output", "clip_start_s", "predicted_dialect",
                                                    "probability", "method", "all_zero_map", "settings"])
        writer.writeheader()
        writer.writerows(rows)
    return skipped


def _recordings_dataset(data: Path, front_end, labels=None, seed: int = 0, for_training: bool = False):
    """:func:`~wrenlib.recordings.recordings_dataset` with what it loaded on stdout (the report's
    first line: files, clips, what was dropped) and the files it skipped or noted on stderr."""
    from .recordings import recordings_dataset

    try:
        dataset, recordings, report = recordings_dataset(data, front_end, labels=labels, seed=seed,
                                                         progress=False, for_training=for_training)
    except ValueError as error:  # the first line names the problem, one line per skipped file follows
        first, *skipped = str(error).splitlines()
        for line in skipped:
            print(line.strip(), file=sys.stderr)
        raise CommandError(first) from None
    print(str(report).splitlines()[0] + f"; classes: {', '.join(recordings.label_names)}")
    for file, reason in report.skipped:
        print(f"skipped {file}: {reason}", file=sys.stderr)
    for file, text in report.notes:
        print(f"note {file}: {text}", file=sys.stderr)
    return dataset, recordings.label_names


def train(data: Path, profile: str, out: Path, background: str, seed: int) -> None:
    """Train the paper's CNN on a folder of recordings (or a `wrenlib synth` folder) and save it."""
    from .frontend import front_end_for_profile
    from .model import ModelConfig
    from .training import accuracy_with_interval, predict, save_checkpoint, train_model, training_config_for_profile

    if out.exists():
        raise CommandError(f"{out} exists; choose a new file name (models are never overwritten)")
    try:
        front_end = front_end_for_profile(profile)
    except ValueError as error:
        raise CommandError(str(error)) from None
    dataset, label_names = _recordings_dataset(data, front_end, seed=seed, for_training=True)
    dataset = dataset.with_background(background, seed)
    model_config = ModelConfig(*front_end.image_size, n_classes=len(label_names))
    training_config = training_config_for_profile(profile, seed)
    try:
        model, history = train_model(dataset, training_config, len(label_names))
    except ValueError as error:
        raise CommandError(str(error)) from None
    config = {"model": model_config.to_dict(), "training": training_config.to_dict(),
              "data": {"source": str(data), "front_end": front_end.to_dict(), "background": background,
                       "seed": seed, "label_names": list(label_names)}}
    save_checkpoint(out, model.cpu(), config, history)
    test = dataset.split_indices("test")
    if len(test):
        correct = predict(model, dataset, test).argmax(1) == dataset.labels[test]
        recordings = dataset.clips["recording_id"].iloc[test].to_numpy()
        accuracy, low, high = accuracy_with_interval(correct, recordings, seed=seed)
        print(f"test accuracy {accuracy:.1%} (95 % interval over recordings {low:.1%}-{high:.1%}) on {len(test)} "
              f"clips of {len(set(recordings))} recordings")
    print(f"saved {out}")


def evaluate(model_path: Path, data: Path) -> None:
    """Accuracy of a saved model on the test split of a folder (all clips if it has no split)."""
    from .training import accuracy_with_interval, predict

    model, front_end, labels, config = _model_and_front_end(model_path)  # checked as `explain` checks it
    dataset, _ = _recordings_dataset(data, front_end, labels=labels, seed=config["data"].get("seed", 0))
    dataset = dataset.with_background(config["data"].get("background", "mixed"), config["data"].get("seed", 0))
    chosen = dataset.split_indices("test")
    has_test = len(chosen) > 0
    chosen = chosen if has_test else np.arange(len(dataset))
    predicted = predict(model, dataset, chosen).argmax(1)
    recordings = dataset.clips["recording_id"].iloc[chosen].to_numpy()
    accuracy, low, high = accuracy_with_interval(predicted == dataset.labels[chosen], recordings)
    print(f"accuracy {accuracy:.1%} (95 % interval over recordings {low:.1%}-{high:.1%}) on "
          + ("the test split's " if has_test else "all ")
          + f"{len(chosen)} clips of {len(set(recordings))} recordings")
    for index, name in enumerate(labels):
        mine = dataset.labels[chosen] == index
        print(f"  {name}: {np.mean(predicted[mine] == index):.1%} of {int(mine.sum())} clips correct")


def bench(out: Path, n_clips: int = 96) -> dict:
    """Surrogate generation speed on 1 and 2 processes, measured side by side in one run; the
    front end, training and the explainers (``explainers.csv``) timed beside it, and what the
    book's deterministic backend settings cost (``backend.json``, :func:`wrenlib.bench.benchmark_backend`)."""
    import json

    from .dataset import generate_surrogate_dataset
    from .surrogate import SurrogateConfig

    config = SurrogateConfig.for_clip_count(n_clips, seed=0)
    rows = []
    for n_jobs in (1, 2):
        # warm-up: imports, and the worker processes that joblib then keeps for the timed run
        generate_surrogate_dataset(SurrogateConfig.for_clip_count(8), n_jobs=n_jobs, progress=False)
        dataset = generate_surrogate_dataset(config, n_jobs=n_jobs, progress=False, batch_size=4)
        rows.append({"benchmark": "surrogate generation", "processes": n_jobs, "clips": n_clips,
                     "seconds": round(dataset.seconds_to_generate, 2),
                     "clips_per_second": round(n_clips / dataset.seconds_to_generate, 1)})
    rows[1]["speed-up"] = round(rows[1]["clips_per_second"] / rows[0]["clips_per_second"], 2)
    from .frontend import PAPER_FRONT_END, benchmark_front_end

    front = benchmark_front_end(np.asarray(dataset.waveforms[:48]), PAPER_FRONT_END)
    rows.append({"benchmark": "front end, audio -> 480 x 960 image", "processes": 1,
                 "clips": front["clips"], "clips_per_second": round(front["front_end_clips_per_second"], 1),
                 "baseline_clips_per_second": round(front["baseline_clips_per_second"], 1),
                 "speed-up": round(front["speed_up"], 2)})
    from .runtime import choose_device
    from .training import benchmark_training

    # a training's own batch of 32 at both sizes: at 480 x 960 one batch of 8 gave bfloat16 against
    # float32 ratios from 0.9 to 1.6 between runs on the machine that measured them
    for size, batch, batches_ in (((120, 240), 32, 2), ((480, 960), 32, 1)):
        speed = benchmark_training(size, batch_size=batch, n_batches=batches_, device=choose_device())
        rows.append({"benchmark": f"training at {size[0]} x {size[1]}", "processes": 1, "clips": batch * batches_,
                     "clips_per_second": round(speed["training_images_per_second"], 1),
                     "loader share of step time": round(speed["loader_share_of_step_time"], 4)})
        if "mixed_precision" in speed:  # the full profile's 16-bit steps, timed in turns with these
            rows.append({"benchmark": f"training at {size[0]} x {size[1]}, {speed['mixed_precision']}",
                         "processes": 1, "clips": batch * batches_,
                         "clips_per_second": round(speed["mixed_precision_images_per_second"], 1),
                         "speed-up": round(speed["mixed_precision_images_per_second"]
                                           / speed["training_images_per_second"], 2)})
    import pandas as pd

    from .explain import METHOD_TITLES, benchmark_explainers

    # batch = images explained, so Grad-CAM and DeepLIFT run the forward pass's batches; the
    # 480 x 960 budgets are kept small so that the whole bench stays a few minutes on 2 cores
    explainers = pd.concat([
        benchmark_explainers((120, 240), n_images=4, batch_size=4, lime_samples=64, shap_background=4,
                             device=choose_device()),
        benchmark_explainers((480, 960), n_images=1, batch_size=1, lime_samples=32, shap_background=2,
                             device=choose_device()),
    ], ignore_index=True)
    from .bench import explainer_memory, machine_description

    from datetime import datetime, timezone

    from .bench import write_backend_benchmark

    write_backend_benchmark(out)  # what deterministic computing costs here (wrenlib bench --backend)
    memory = explainer_memory()
    report = {**machine_description(), "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "results": rows, "memory": memory}
    out.mkdir(parents=True, exist_ok=True)
    (out / "synth.json").write_text(json.dumps(report, indent=2))
    explainers.to_csv(out / "explainers.csv", index=False)
    for row in rows:
        print(f"{row['benchmark']}: {row['processes']} process(es): {row['clips_per_second']} clips/s")
    for row in memory:
        print(f"{METHOD_TITLES[row['method']]} at {row['image']}: {row['GiB per unit']} GiB per {row['per']} "
              f"({row['bytes per pixel']} bytes per pixel; images_per_call assumes {row['constant (bytes per pixel)']})")
    for row in explainers.itertuples():
        outside = "" if np.isnan(row.overhead_share) else f"; {row.overhead_share:.0%} of it outside the network"
        print(f"{METHOD_TITLES[row.method]} at {row.image_height_px} x {row.image_width_px} ({row.budget}): "
              f"{row.seconds_per_image:.3f} s per image = {row.forward_pass_equivalents:.1f} forward passes "
              f"(batch {row.batch_size}){outside}")
    return {**report, "explainers": explainers}


def fetch_xc(query: str, out: Path, label: str | None, base_url: str, delay: float, max_mb: float,
             max_recordings: int | None, retries: int, progress: bool = True) -> int:
    """Download the xeno-canto recordings that match ``query`` into ``out`` with ``manifest.csv``
    (see :mod:`wrenlib.xenocanto`; optional, never used by CI). The API key comes from the
    environment. Returns the exit status: 1 when nothing could be fetched or an API page failed."""
    from .xenocanto import FetchError, api_key_from_environment, fetch_recordings

    def log(message: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(f"wrenlib fetch-xc: {message}", file=sys.stderr)

    try:
        report = fetch_recordings(query, out, api_key_from_environment(), label=label, base_url=base_url,
                                  delay_s=delay, max_mb=max_mb, max_recordings=max_recordings,
                                  retries=retries, progress=progress, log=log)
    except FetchError as error:
        raise CommandError(str(error)) from None
    print(report.summary())
    return report.exit_status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wrenlib", description="Tools of the wrenbook project.")
    commands = parser.add_subparsers(dest="command", required=True)

    synth_parser = commands.add_parser(
        "synth", help="write surrogate wren-dialect clips as WAV files with labels and masks")
    synth_parser.add_argument("--n", type=_positive_int, required=True, help="number of clips")
    synth_parser.add_argument("--seed", type=_non_negative_int, default=0, help="random seed")
    synth_parser.add_argument("--out", type=Path, required=True, help="new or empty output folder")
    synth_parser.add_argument("--separation", type=float, default=1.6,
                              help="distance of the dialects' diagnostic means in standard deviations")
    synth_parser.add_argument("--snr-db", type=float, nargs=2, default=(5.0, 30.0),
                              metavar=("LOW", "HIGH"), help="in-band signal-to-noise range in dB")
    synth_parser.add_argument("--jobs", type=_positive_int, default=2, help="worker processes")
    synth_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    image_parser = commands.add_parser(
        "spectrogram", help="write the spectrogram image (PNG) of every clip of each recording")
    image_parser.add_argument("audio", nargs="+", type=Path, help="audio files (WAV, FLAC, OGG, MP3)")
    image_parser.add_argument("--out", type=Path, required=True, help="new or empty output folder")
    image_parser.add_argument("--background", choices=("black", "white"), default="black",
                              help="the image's background (default black)")
    image_parser.add_argument("--size", type=_size, default=(480, 960), metavar="HEIGHTxWIDTH",
                              help="image size in pixels (default: the paper's 480x960)")

    train_parser = commands.add_parser("train", help="train the paper's CNN on a folder of recordings")
    train_parser.add_argument("data", type=Path, help="a class-per-subfolder folder, a manifest CSV, "
                              "or a `wrenlib synth` folder")
    train_parser.add_argument("--profile", default="quick", help="quick or full (image size, epochs; default quick)")
    train_parser.add_argument("--out", type=Path, required=True, help="new checkpoint file (.pt)")
    train_parser.add_argument("--background", choices=("black", "white", "mixed"), default="mixed",
                              help="the training images' backgrounds (default mixed, the paper's best)")
    train_parser.add_argument("--seed", type=_non_negative_int, default=0)

    evaluate_parser = commands.add_parser(
        "evaluate", help="test a saved model on the test split of a folder of recordings",
        description="Score a saved model on the folder's test split: the recordings that `wrenlib train` "
                    "holds out under the checkpoint's seed, split by individual (every clip where the folder "
                    "has no test split). Prints the accuracy with a 95 % interval over recordings.")
    evaluate_parser.add_argument("model", type=Path, help="checkpoint written by `wrenlib train`")
    evaluate_parser.add_argument("data", type=Path, help="folder, manifest, or `wrenlib synth` folder")

    explain_parser = commands.add_parser(
        "explain", help="explain a saved model's prediction for the first clip of each recording",
        description="Explain a saved model's predicted dialect for the first clip (with song) of each "
                    "recording, built with the front end the model was trained with. Writes per recording "
                    "<stem>_image.png, <stem>_map.npy (raw map, float32, the image's shape) and "
                    "<stem>_overlay.png, plus explanations.csv. Methods: gradcam (last conv block), deeplift "
                    "(--baseline, default white as in the paper), lime (an 8 x 16 time-frequency grid, "
                    "--samples perturbations, default 1000) and shap. With no training set at hand, shap "
                    "here is shap's model-agnostic partition explainer (switched-off pixels at the image's "
                    "background level; --samples model evaluations, default 500), not the DeepExplainer "
                    "over training images of chapter 07: its maps are coarser and not comparable one to "
                    "one with the book's SHAP maps.")
    explain_parser.add_argument("audio", nargs="+", type=Path, help="audio files (WAV, FLAC, OGG, MP3)")
    explain_parser.add_argument("--model", type=Path, required=True,
                                help="checkpoint written by `wrenlib train` or by the book")
    explain_parser.add_argument("--method", choices=METHOD_CHOICES, required=True)
    explain_parser.add_argument("--out", type=Path, required=True, help="new or empty output folder")
    explain_parser.add_argument("--baseline", choices=BASELINE_CHOICES, default=None,
                                help="deeplift only: the reference image (default: white, the paper's)")
    explain_parser.add_argument("--samples", type=_positive_int, default=None,
                                help="lime: perturbed samples (default 1000); shap: model evaluations of "
                                     "the partition explainer (default 500)")
    explain_parser.add_argument("--background", choices=("black", "white"), default="black",
                                help="background of the explained images (default: black)")

    from .xenocanto import DEFAULT_BASE_URL  # standard library only: cheap for --help

    fetch_parser = commands.add_parser(
        "fetch-xc", help="download xeno-canto recordings and their metadata into a manifest (optional)",
        description="Download the xeno-canto recordings that match QUERY (xeno-canto search terms, e.g. "
                    "'sp:\"thryomanes bewickii\" cnt:\"united states\"') into OUT/audio/<id>.<ext> and write "
                    "OUT/manifest.csv (path, label, recording_id, latitude, longitude, licence, recordist, "
                    "country, locality, date, quality, species, url, bytes) for `wrenlib train` and "
                    "load_recordings. The API key is read from the environment variable XENO_CANTO_API_KEY "
                    "and never stored. Rate-limited; resumable (run it again to fetch what is missing). "
                    "Optional: the book and CI never call it.")
    fetch_parser.add_argument("query", help="xeno-canto search terms (API v3 wants tags such as sp:, cnt:)")
    fetch_parser.add_argument("--out", type=Path, required=True,
                              help="output folder (a folder of an earlier fetch is resumed)")
    fetch_parser.add_argument("--label", default=None,
                              help="label of every recording in the manifest, e.g. Eastern (default: the query)")
    fetch_parser.add_argument("--base-url", default=DEFAULT_BASE_URL,
                              help="the API's recordings endpoint (default: xeno-canto's API v3)")
    fetch_parser.add_argument("--delay", type=float, default=1.0,
                              help="seconds between requests, at least 1 for xeno-canto (default 1.0)")
    fetch_parser.add_argument("--max-mb", type=float, default=50.0,
                              help="skip files larger than this many MB (default 50)")
    fetch_parser.add_argument("--max-recordings", type=_positive_int, default=None,
                              help="take at most this many of the query's recordings (default: all)")
    fetch_parser.add_argument("--retries", type=_non_negative_int, default=3,
                              help="tries again after HTTP 429/5xx or a dropped connection (default 3)")
    fetch_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    bench_parser = commands.add_parser("bench", help="run the benchmarks and write their results")
    bench_parser.add_argument("--out", type=Path, default=Path("artifacts/bench"),
                              help="folder the results go to (default artifacts/bench, which the Performance "
                                   "page shows; book/benchmarks/bench-cpu keeps a record a fresh clone shows)")
    bench_parser.add_argument("--clips", type=_positive_int, default=None,
                              help="surrogate clips the generation and front-end benchmarks time (default 96; "
                                   "not with --stages, --backend or --job-times)")
    # one kind of benchmark per call: a second one named beside the first was silently left out
    modes = bench_parser.add_mutually_exclusive_group()
    modes.add_argument("--stages", metavar="PROFILE", choices=("quick", "full"),
                              help="instead, time a whole profile's heavy stages from an empty cache "
                                   "(data, images, one CNN, every method's maps, t-SNE; see wrenlib.bench)")
    bench_parser.add_argument("--mixed-precision", choices=MIXED_PRECISION,
                              help="with --stages: train the CNN in this precision instead of the profile's "
                                   "(wrenlib.training.TrainingConfig.mixed_precision)")
    modes.add_argument("--backend", action="store_true",
                              help="only time a LIME batch and a training step under the book's backend "
                                   "settings and the others, in float32 and 16 bits, into OUT/backend.json "
                                   "(the full profile's image size on a GPU, the quick one's on a CPU)")
    modes.add_argument("--job-times", metavar="PROFILE", choices=("quick", "full"),
                              help="instead, keep the last `make execute` run's seconds per job in "
                                   "book/benchmarks/, by which a run without a log of its own (a fresh clone, "
                                   "CI) orders its jobs; that run must have executed every chapter to the end "
                                   "(else see --partial)")
    bench_parser.add_argument("--partial", action="store_true",
                              help="with --job-times: keep the jobs that finished even if the run did not "
                                   "run every chapter (the page marks it partial)")

    parser.bench_parser = bench_parser  # main reports bench's own option errors under bench's usage
    execute_parser = commands.add_parser("execute", help="execute the book's chapters with papermill")
    execute_parser.add_argument("--profile", default="auto",
                                help="quick, full, or auto (full when a CUDA GPU is present)")
    execute_parser.add_argument("--kernel", default="wrenbook", help="Jupyter kernel name")
    execute_parser.add_argument("--jobs", type=_positive_int, default=None,
                                help="chapters run side by side once their prerequisites have finished "
                                     "(default: 2 on a CPU with 2 or more cores; on a GPU one per 4 cores and "
                                     "10 GiB of its memory, at most 4, each with its share of the GPU's memory)")
    execute_parser.add_argument("--keep-going", action="store_true",
                                help="after a job fails, still run every job that needs nothing that failed "
                                     "(by default no new job starts)")
    execute_parser.add_argument("--resume", action="store_true",
                                help="go on with the log's last run: leave out the chapters and preparations "
                                     "it finished (a run cut short goes on where it stopped). Only the last "
                                     "run: any run started since, even of one chapter, is the one resumed")
    execute_parser.add_argument("chapters", nargs="*", help="chapter names (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench" and args.mixed_precision and not args.stages:
        parser.bench_parser.error("--mixed-precision applies to --stages only")
    if args.command == "bench" and args.partial and not args.job_times:
        parser.bench_parser.error("--partial applies to --job-times only")
    if args.command == "bench" and args.clips is not None and (args.stages or args.backend or args.job_times):
        parser.bench_parser.error("--clips applies to the default benchmarks only, not to --stages, --backend "
                                  "or --job-times")
    try:
        if args.command == "synth":
            out = synth(args.n, args.seed, args.out, args.separation, tuple(args.snr_db), args.jobs,
                        progress=not args.no_progress)
            print(f"wrote {args.n} clips to {out}")
        elif args.command == "spectrogram":
            skipped = spectrogram(args.audio, args.out, args.background, args.size)
            if skipped:
                print(f"wrenlib spectrogram: {skipped} of {len(args.audio)} file(s) skipped",
                      file=sys.stderr)
                return 1
        elif args.command == "train":
            train(args.data, args.profile, args.out, args.background, args.seed)
        elif args.command == "evaluate":
            evaluate(args.model, args.data)
        elif args.command == "explain":
            skipped = explain_recordings(args.audio, args.model, args.method, args.out, args.baseline,
                                         args.samples, args.background)
            if skipped:
                print(f"wrenlib explain: {skipped} of {len(args.audio)} file(s) skipped", file=sys.stderr)
                return 1
        elif args.command == "fetch-xc":
            return fetch_xc(args.query, args.out, args.label, args.base_url, args.delay, args.max_mb,
                            args.max_recordings, args.retries, progress=not args.no_progress)
        elif args.command == "bench" and args.job_times:
            from .book import project_root, save_job_times

            root = project_root(Path.cwd())
            if root is None:
                raise CommandError("run this from a wrenbook checkout")
            try:
                print(f"wrote {save_job_times(root, args.job_times, partial=args.partial)}")
            except ValueError as error:
                raise CommandError(str(error)) from None
        elif args.command == "bench" and args.backend:
            from .bench import write_backend_benchmark

            print(f"wrote {write_backend_benchmark(args.out)}")
        elif args.command == "bench" and args.stages:
            from .bench import time_stages

            try:
                time_stages(args.stages, args.out, mixed_precision=args.mixed_precision)
            except ValueError as error:
                raise CommandError(str(error)) from None
        elif args.command == "bench":
            bench(args.out, 96 if args.clips is None else args.clips)
        elif args.command == "execute":
            from .book import execute_chapters

            return execute_chapters(args.profile, args.kernel, args.chapters, jobs=args.jobs,
                                    keep_going=args.keep_going, resume=args.resume)
    except CommandError as error:
        print(f"wrenlib {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
