"""The ``wrenlib`` command line: ``wrenlib synth`` writes a surrogate dataset as WAV files, and
``wrenlib execute`` runs the book's chapters (what ``make execute`` calls).

Bad arguments end with a one-line error and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np


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

    _prepare_output_folder(out)
    try:
        config = SurrogateConfig.for_clip_count(n_clips, seed=seed, separation=separation,
                                                snr_db_range=snr_db)
    except ValueError as error:
        raise CommandError(str(error)) from None
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


def spectrogram(audio: list[Path], out: Path, background: str, size: tuple[int, int]) -> int:
    """Write a PNG per clip of each recording; report and skip unusable files. Returns the number
    of files skipped."""
    from PIL import Image

    from .frontend import PAPER_FRONT_END, apply_background, render_levels, segment
    from .recordings import AudioError, read_audio

    _prepare_output_folder(out)
    front_end = PAPER_FRONT_END.with_image_size(*size)
    skipped = 0
    for path in audio:
        try:
            waveform = read_audio(path, front_end.sample_rate_hz)
            pieces = segment(waveform, front_end)
            if len(pieces.clips) == 0:
                raise AudioError(path, "no clip with song energy in the band (too short or silent)")
        except AudioError as error:
            print(f"wrenlib spectrogram: skipped {error.path}: {error.reason}", file=sys.stderr)
            skipped += 1
            continue
        images = apply_background(render_levels(pieces.clips, front_end), background)
        for number, (image, start) in enumerate(zip(images, pieces.starts_s)):
            name = out / f"{Path(path).stem}_clip{number:03d}_{start:07.1f}s.png"
            Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(name)
        print(f"{path}: {len(images)} image(s)")
    return skipped


def _recordings_dataset(data: Path, front_end, labels=None, seed: int = 0):
    """A folder or manifest of recordings as a SpectrogramDataset (split by recording unless the
    manifest has a split column)."""
    from .frontend import assign_backgrounds, render_levels
    from .images import SpectrogramDataset, levels_to_uint8
    from .recordings import load_recordings, split_by_recording

    source = data / "labels.csv" if (data / "labels.csv").is_file() else data
    try:
        recordings, report = load_recordings(source, labels=labels, front_end=front_end)
    except ValueError as error:
        raise CommandError(str(error)) from None
    for file, reason in report.skipped:
        print(f"skipped {file}: {reason}", file=sys.stderr)
    if len(recordings) == 0:
        raise CommandError(f"no usable clips in {data}")
    clips = recordings.clips
    if "split" not in clips or clips["split"].isna().any():
        clips["split"] = split_by_recording(clips, seed=seed)
    levels = levels_to_uint8(render_levels(recordings.waveforms, front_end))
    return SpectrogramDataset(levels, clips, assign_backgrounds(len(levels), "black", seed), front_end,
                              None, with_masks=False), recordings.label_names


def train(data: Path, profile: str, out: Path, background: str, seed: int) -> None:
    """Train the paper's CNN on a folder of recordings (or a `wrenlib synth` folder) and save it."""
    from .frontend import assign_backgrounds, front_end_for_profile
    from .model import DialectCNN, ModelConfig
    from .runtime import choose_device, set_seed
    from .training import accuracy_with_interval, fit, predict, save_checkpoint, training_config_for_profile

    if out.exists():
        raise CommandError(f"{out} exists; choose a new file name (models are never overwritten)")
    try:
        front_end = front_end_for_profile(profile)
    except ValueError as error:
        raise CommandError(str(error)) from None
    dataset, label_names = _recordings_dataset(data, front_end, seed=seed)
    dataset = dataset.with_background(background, seed)
    set_seed(seed)
    device = choose_device()
    model_config = ModelConfig(*front_end.image_size, n_classes=len(label_names))
    training_config = training_config_for_profile(profile, seed)
    try:
        model = DialectCNN(model_config)
        history = fit(model, dataset, training_config, device)
    except ValueError as error:
        raise CommandError(str(error)) from None
    config = {"model": model_config.to_dict(), "training": training_config.to_dict(),
              "data": {"source": str(data), "front_end": front_end.to_dict(), "background": background,
                       "seed": seed, "label_names": list(label_names)}}
    save_checkpoint(out, model.cpu(), config, history)
    test = dataset.split_indices("test")
    if len(test):
        correct = predict(model, dataset, test).argmax(1) == dataset.labels[test]
        accuracy, low, high = accuracy_with_interval(correct)
        print(f"test accuracy {accuracy:.1%} (95 % CI {low:.1%}-{high:.1%}) on {len(test)} clips")
    print(f"saved {out}")


def evaluate(model_path: Path, data: Path) -> None:
    """Accuracy of a saved model on the test split of a folder (all clips if it has no split)."""
    from .frontend import front_end_from_dict
    from .training import accuracy_with_interval, load_checkpoint, predict

    try:
        model, config, _ = load_checkpoint(model_path)
    except (FileNotFoundError, ValueError) as error:
        raise CommandError(str(error)) from None
    front_end = front_end_from_dict(config["data"]["front_end"])
    labels = tuple(config["data"].get("label_names", ("Eastern", "Mexican")))
    dataset, _ = _recordings_dataset(data, front_end, labels=labels, seed=config["data"].get("seed", 0))
    dataset = dataset.with_background(config["data"].get("background", "mixed"), config["data"].get("seed", 0))
    chosen = dataset.split_indices("test")
    chosen = chosen if len(chosen) else np.arange(len(dataset))
    predicted = predict(model, dataset, chosen).argmax(1)
    accuracy, low, high = accuracy_with_interval(predicted == dataset.labels[chosen])
    print(f"accuracy {accuracy:.1%} (95 % CI {low:.1%}-{high:.1%}) on {len(chosen)} clips")
    for index, name in enumerate(labels):
        mine = dataset.labels[chosen] == index
        print(f"  {name}: {np.mean(predicted[mine] == index):.1%} of {int(mine.sum())} clips correct")


def bench(out: Path, n_clips: int = 96) -> dict:
    """Surrogate generation speed on 1 and 2 processes, measured side by side in one run."""
    import json
    import platform

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

    for size, batch, batches_ in (((120, 240), 32, 2), ((480, 960), 8, 1)):
        speed = benchmark_training(size, batch_size=batch, n_batches=batches_, device=choose_device())
        rows.append({"benchmark": f"training at {size[0]} x {size[1]}", "processes": 1, "clips": batch * batches_,
                     "clips_per_second": round(speed["training_images_per_second"], 1),
                     "loader share of step time": round(speed["loader_share_of_step_time"], 4)})
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "results": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "synth.json").write_text(json.dumps(report, indent=2))
    for row in rows:
        print(f"{row['benchmark']}: {row['processes']} process(es): {row['clips_per_second']} clips/s")
    return report


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
    image_parser.add_argument("--background", choices=("black", "white"), default="black")
    image_parser.add_argument("--size", type=_size, default=(480, 960), metavar="HEIGHTxWIDTH",
                              help="image size in pixels (default: the paper's 480x960)")

    train_parser = commands.add_parser("train", help="train the paper's CNN on a folder of recordings")
    train_parser.add_argument("data", type=Path, help="a class-per-subfolder folder, a manifest CSV, "
                              "or a `wrenlib synth` folder")
    train_parser.add_argument("--profile", default="quick", help="quick or full (image size, epochs)")
    train_parser.add_argument("--out", type=Path, required=True, help="new checkpoint file (.pt)")
    train_parser.add_argument("--background", choices=("black", "white", "mixed"), default="mixed")
    train_parser.add_argument("--seed", type=_non_negative_int, default=0)

    evaluate_parser = commands.add_parser("evaluate", help="test a saved model on a folder of recordings")
    evaluate_parser.add_argument("model", type=Path, help="checkpoint written by `wrenlib train`")
    evaluate_parser.add_argument("data", type=Path, help="folder, manifest, or `wrenlib synth` folder")

    bench_parser = commands.add_parser("bench", help="run the benchmarks and write their results")
    bench_parser.add_argument("--out", type=Path, default=Path("artifacts/bench"))
    bench_parser.add_argument("--clips", type=_positive_int, default=96)

    execute_parser = commands.add_parser("execute", help="execute the book's chapters with papermill")
    execute_parser.add_argument("--profile", default="auto",
                                help="quick, full, or auto (full when a CUDA GPU is present)")
    execute_parser.add_argument("--kernel", default="wrenbook", help="Jupyter kernel name")
    execute_parser.add_argument("chapters", nargs="*", help="chapter names (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        elif args.command == "bench":
            bench(args.out, args.clips)
        elif args.command == "execute":
            from .book import execute_chapters

            return execute_chapters(args.profile, args.kernel, args.chapters)
    except CommandError as error:
        print(f"wrenlib {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
