"""Real recordings in: a folder with one subfolder per class, or a CSV manifest (chapter 02).

Any sample rate and channel count is read (WAV, FLAC, OGG and MP3 through soundfile, with
librosa's decoder as the fallback), mixed to mono, resampled to the book's rate, band-passed and
cut into clips. Bad input never stops the load: every file that cannot be used is reported in the
:class:`LoadReport` with the reason, and the rest loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .frontend import PAPER_FRONT_END, FrontEnd, segment
from .surrogate import SPLITS, split_names

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MANIFEST_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = ("recording_id", "latitude", "longitude", "licence", "split")
# as in the labels.csv of `wrenlib synth`, whose clips of one bird are one unit of the statistics:
# its "individual" names the bird, which a recording_id would (the clips split and pooled by it)
COLUMN_ALIASES = {"file": "path", "dialect": "label", "individual": "recording_id"}
# the lowest sample rate that holds the front end's band (up to 9 kHz, design.md) below its Nyquist
# frequency: slower audio lacks the trill and buzz, so it is skipped, not upsampled into silence
MIN_SAMPLE_RATE_HZ = 18_000


class AudioError(Exception):
    """A recording that cannot be used, with the reason in words."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def read_audio(path: Path | str, sample_rate_hz: int = PAPER_FRONT_END.sample_rate_hz) -> np.ndarray:
    """A recording as mono float32 at ``sample_rate_hz``; raises :class:`AudioError` if unusable."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "missing file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
    except Exception as first_error:  # not a format libsndfile reads: try librosa's decoders
        try:
            import warnings

            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                samples, rate = librosa.load(path, sr=None, mono=True)
        except Exception:
            detail = str(first_error)  # libsndfile names the file again: "Error opening '<path>': <why>"
            detail = detail.split(": ", 1)[-1] if str(path) in detail else detail
            raise AudioError(path, f"unreadable or corrupt audio ({detail})") from None
    if len(samples) == 0:
        raise AudioError(path, "zero-length audio (no samples)")
    if rate < MIN_SAMPLE_RATE_HZ:
        raise AudioError(path, f"sampled at {rate:g} Hz, too slow to hold the 1.5-9 kHz band the front end "
                               f"keeps (at least {MIN_SAMPLE_RATE_HZ:,} Hz needed)")
    if not np.all(np.isfinite(samples)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    return librosa_resample(samples, rate, sample_rate_hz)


@dataclass
class LoadReport:
    """What a load used and what it skipped, and why."""

    files_loaded: int = 0
    clips: int = 0
    quiet_clips_dropped: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    folder: str | None = None  # the folder loaded: the printed report names files inside it from there

    def skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def table(self) -> pd.DataFrame:
        """One row per skipped file: file and reason."""
        return pd.DataFrame(self.skipped, columns=["file", "reason"])

    def folder_text(self) -> str | None:
        """The folder as the printed report names it: as given, or, inside the system's temporary
        folder (a demo's, with a random name that tells a reader nothing), by its own name."""
        if not self.folder:
            return None
        import tempfile

        temporary = Path(tempfile.gettempdir()).resolve()
        folder = Path(self.folder)
        if folder.resolve().is_relative_to(temporary) and folder.resolve() != temporary:
            return f"{folder.name} (in a temporary folder)"
        return self.folder

    def __str__(self) -> str:
        lines = [f"loaded {self.files_loaded} file(s)" + (f" of {self.folder_text()}" if self.folder else "")
                 + f" -> {self.clips} clip(s); {self.quiet_clips_dropped} clip(s) without song dropped; "
                 f"{len(self.skipped)} file(s) skipped"]
        inside = f"{self.folder.rstrip('/')}/" if self.folder else None
        lines += [f"  skipped {file.removeprefix(inside) if inside else file}: {reason}" for file, reason in self.skipped]
        return "\n".join(lines)


@dataclass
class RecordingClips:
    """Clips cut from real recordings: band-passed waveforms and one table row per clip."""

    waveforms: np.ndarray  # (N, clip_samples) float32
    clips: pd.DataFrame  # clip, file, recording_id, label, dialect, start_s, latitude, ...
    label_names: tuple[str, ...]
    front_end: FrontEnd

    def __len__(self) -> int:
        return len(self.clips)


def _entries_from_folder(folder: Path, report: LoadReport) -> list[dict]:
    entries = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
        report.skip(path, "outside every class subfolder (a folder's recordings lie in one subfolder per class)")
    for class_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(class_folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
                entries.append({"path": path, "label": class_folder.name})
            elif path.is_file():
                report.skip(path, f"not an audio file (suffix {path.suffix or 'none'}; "
                                  f"expected one of {', '.join(AUDIO_SUFFIXES)})")
    return entries


def _entries_from_manifest(manifest: Path) -> list[dict]:
    try:
        table = pd.read_csv(manifest)
    except Exception as error:
        raise ValueError(f"{manifest}: cannot read the manifest as CSV ({error})") from None
    table = table.rename(columns={old: new for old, new in COLUMN_ALIASES.items()
                                  if old in table.columns and new not in table.columns})
    missing = [column for column in MANIFEST_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{manifest}: the manifest lacks column(s) {', '.join(missing)}; "
                         f"it needs {', '.join(MANIFEST_COLUMNS)} and may have {', '.join(OPTIONAL_COLUMNS)}")
    entries = []
    for row in table.to_dict("records"):
        entry = {key: row.get(key) for key in (*MANIFEST_COLUMNS, *OPTIONAL_COLUMNS) if key in row}
        path = Path(str(row["path"]))
        entry["path"] = path if path.is_absolute() else manifest.parent / path
        entries.append(entry)
    splits = {str(e["split"]) for e in entries if "split" in e and not pd.isna(e["split"])}
    unknown = sorted(splits - set(SPLITS))
    if unknown:
        raise ValueError(f"{manifest}: unknown split(s) {', '.join(map(repr, unknown))} in column split; "
                         f"use {', '.join(SPLITS)}, or leave a cell empty to split by recording")
    return entries


def load_recordings(
    source: Path | str,
    labels: Iterable[str] | None = None,
    front_end: FrontEnd = PAPER_FRONT_END,
    progress: bool = True,
) -> tuple[RecordingClips, LoadReport]:
    """Load a class-per-subfolder folder or a CSV manifest into clips, skipping bad input.

    ``labels`` fixes the classes and their order (label index = position); a file with another
    label is skipped as "unknown label". Without it, the classes are the labels found, sorted.
    """
    from tqdm.auto import tqdm

    from .runtime import show_progress

    source = Path(source)
    report = LoadReport(folder=str(source) if source.is_dir() else None)
    if source.is_dir():
        entries = _entries_from_folder(source, report)
    elif source.is_file():
        entries = _entries_from_manifest(source)
    else:
        raise ValueError(f"{source}: no such folder or manifest")

    def blank(label) -> bool:  # an empty manifest cell: NaN, None or spaces
        return label is None or (not isinstance(label, str) and pd.isna(label)) or not str(label).strip()

    known = tuple(labels) if labels is not None else tuple(sorted({str(e["label"]) for e in entries
                                                                   if not blank(e["label"])}))
    waveforms, rows = [], []
    for entry in tqdm(entries, desc="loading recordings", unit="file", disable=not show_progress(progress)):
        path, label = Path(entry["path"]), str(entry["label"])
        if blank(entry["label"]):
            report.skip(path, "no label (the manifest's label cell is empty)")
            continue
        if label not in known:
            report.skip(path, f"unknown label {label!r} (known: {', '.join(known)})")
            continue
        try:
            audio = read_audio(path, front_end.sample_rate_hz)
        except AudioError as error:
            report.skip(path, error.reason)
            continue
        if np.max(np.abs(audio)) == 0:
            report.skip(path, "all-silent file (every sample is zero)")
            continue
        seconds = len(audio) / front_end.sample_rate_hz
        if seconds < front_end.min_tail_seconds:
            report.skip(path, f"too short to make one clip ({seconds:.2f} s; a clip needs at least "
                              f"{front_end.min_tail_seconds:g} s of audio)")
            continue
        pieces = segment(audio, front_end)
        report.quiet_clips_dropped += pieces.dropped_quiet
        if len(pieces.clips) == 0:
            report.skip(path, f"all-silent in the band (every clip below {front_end.min_clip_level_db:g} dB)")
            continue
        report.files_loaded += 1
        recording = entry.get("recording_id")
        recording = str(path) if recording is None or pd.isna(recording) else str(recording)
        for clip, start in zip(pieces.clips, pieces.starts_s):
            waveforms.append(clip)
            rows.append({
                "clip": len(rows), "file": str(path), "recording_id": recording,
                "label": known.index(label), "dialect": label, "start_s": float(start),
                **{key: entry.get(key) for key in ("latitude", "longitude", "licence", "split") if key in entry},
            })
    report.clips = len(rows)
    array = np.stack(waveforms) if waveforms else np.zeros((0, front_end.clip_samples), np.float32)
    return RecordingClips(array, pd.DataFrame(rows), known, front_end), report


def recordings_dataset(
    source: Path | str,
    front_end: FrontEnd = PAPER_FRONT_END,
    labels: Iterable[str] | None = None,
    seed: int = 0,
    background: str = "black",
    progress: bool = True,
):
    """A folder or manifest of recordings as a :class:`~wrenlib.images.SpectrogramDataset`, ready
    to train on and to explain (chapter 12; ``wrenlib train`` and ``evaluate``).

    ``source`` is a class-per-subfolder folder, a CSV manifest, or a folder holding a
    ``labels.csv`` manifest (what ``wrenlib synth`` writes). Clips are split by recording
    (:func:`split_by_recording`) unless the manifest gives every clip a split. Returns
    ``(dataset, recordings, report)``: the images, the :class:`RecordingClips` they were rendered
    from (waveforms, class names), and the :class:`LoadReport`; bad files are in the report, never fatal. Raises
    ``ValueError`` naming ``source`` when no usable clip is left.
    """
    from .frontend import assign_backgrounds, render_levels
    from .images import SpectrogramDataset, levels_to_uint8

    source = Path(source)
    if source.is_dir() and (source / "labels.csv").is_file():
        source = source / "labels.csv"
    recordings, report = load_recordings(source, labels=labels, front_end=front_end, progress=progress)
    if len(recordings) == 0:
        skipped = "".join(f"\n  skipped {file}: {reason}" for file, reason in report.skipped)
        raise ValueError(f"{source}: no usable clips ({len(report.skipped)} file(s) skipped){skipped}")
    clips = recordings.clips
    if "split" not in clips or clips["split"].isna().any():
        clips["split"] = split_by_recording(clips, seed=seed)
    levels = levels_to_uint8(render_levels(recordings.waveforms, front_end))
    dataset = SpectrogramDataset(levels, clips, assign_backgrounds(len(levels), background, seed), front_end,
                                 None, with_masks=False)
    return dataset, recordings, report


def describe_folder(folder: Path | str) -> pd.DataFrame:
    """One row per file under a class-per-subfolder folder: class, format, sample rate, channels
    and seconds as the file's header states them, or the reason it cannot be read. Reads headers
    only, so it is quick on a large folder (chapter 12)."""
    import soundfile

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder")
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        row = {"file": str(path.relative_to(folder)), "class": path.relative_to(folder).parts[0]
               if len(path.relative_to(folder).parts) > 1 else "(none)", "bytes": path.stat().st_size}
        try:
            info = soundfile.info(str(path))
            row.update(format=f"{info.format} {info.subtype}", sample_rate_hz=info.samplerate,
                       channels=info.channels, seconds=round(info.duration, 2), problem="")
        except Exception as error:  # soundfile names the problem; the loader gives its own reason
            row.update(format="", sample_rate_hz=None, channels=None, seconds=None,
                       problem="empty file (0 bytes)" if row["bytes"] == 0  # in the loader's words
                       else str(error).split(":")[-1].strip() or type(error).__name__)
        rows.append(row)
    return pd.DataFrame(rows, columns=["file", "class", "bytes", "format", "sample_rate_hz", "channels",
                                       "seconds", "problem"]).astype({"sample_rate_hz": "Int64", "channels": "Int64"})


def split_by_recording(
    clips: pd.DataFrame,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    group_column: str = "recording_id",
) -> pd.Series:
    """Train / validation / test per clip, assigned per recording (never across two splits),
    separately within each label so that every split sees every class when it can."""
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=clips.index, dtype=object)
    for _, group in clips.groupby("label"):
        recordings = group[group_column].unique()
        names = dict(zip(rng.permutation(recordings), split_names(len(recordings), fractions)))
        split[group.index] = group[group_column].map(names)
    return split


def write_demo_recordings(
    folder: Path | str,
    waveforms: np.ndarray,
    clips: pd.DataFrame,
    birds_per_dialect: int = 3,
    include_bad_files: bool = True,
) -> Path:
    """A small folder of "field recordings" made from surrogate clips, laid out as a user's would be.

    Each bird's clips are joined into one recording and written per dialect subfolder, in a mix of
    formats, sample rates and channel counts (WAV 16-bit 44.1 kHz, FLAC 48 kHz stereo, float WAV
    22.05 kHz); with ``include_bad_files`` a corrupt file, an empty file and a 1 s file are added
    so the loader's report has something to say. Used by chapters 02 and 12; nothing is
    downloaded.
    """
    import soundfile

    folder = Path(folder)
    formats = [(".wav", 44_100, 1, "PCM_16"), (".flac", 48_000, 2, "PCM_24"), (".wav", 22_050, 1, "FLOAT")]
    rate = PAPER_FRONT_END.sample_rate_hz
    for dialect, group in clips.groupby("dialect"):
        (folder / dialect).mkdir(parents=True, exist_ok=True)
        for number, (bird, rows) in enumerate(group.groupby("individual")):
            if number >= birds_per_dialect:
                break
            joined = np.concatenate([waveforms[i] for i in rows.index])
            suffix, target_rate, channels, subtype = formats[number % len(formats)]
            audio = librosa_resample(joined, rate, target_rate)
            peak = np.max(np.abs(audio)) or 1.0
            audio = 0.9 * audio / peak
            if channels == 2:
                audio = np.stack([audio, 0.8 * audio], axis=1)
            soundfile.write(folder / dialect / f"bird{bird:03d}{suffix}", audio, target_rate, subtype=subtype)
    if include_bad_files:
        first = sorted(p for p in folder.iterdir() if p.is_dir())[0]
        (first / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
        (first / "empty.flac").write_bytes(b"")
        soundfile.write(first / "too_short.wav", waveforms[0][:rate], rate)
    return folder


def librosa_resample(waveform: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample with librosa (soxr), or return the waveform when the rates agree."""
    if from_hz == to_hz:
        return np.asarray(waveform, np.float32)
    import librosa

    return librosa.resample(np.asarray(waveform, np.float32), orig_sr=from_hz, target_sr=to_hz)
