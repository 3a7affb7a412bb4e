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

from .frontend import PAPER_FRONT_END, FrontEnd, Segments, segment
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
# an in-band level below this is no sound at all, only the filter's rounding (a constant offset
# band-passed reaches about -300 dB): the file's sound lies outside the band
NO_SOUND_DB = -120.0


class AudioError(Exception):
    """A recording that cannot be used, with the reason in words."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def read_audio(path: Path | str, sample_rate_hz: int = PAPER_FRONT_END.sample_rate_hz,
               notes: list[str] | None = None) -> np.ndarray:
    """A recording as mono float32 at ``sample_rate_hz``; raises :class:`AudioError` if unusable.
    What is odd but usable (a WAV cut short of the length its header declares) is appended to
    ``notes``, in words, where a list is given."""
    import soundfile

    path = Path(path)
    if path.is_dir():
        raise AudioError(path, "a folder, not an audio file (name its files, or load the folder with "
                               "wrenlib.recordings.load_recordings)")
    if not path.is_file():
        raise AudioError(path, "missing file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        channels, rate = soundfile.read(path, dtype="float32", always_2d=True)
        samples = channels.mean(axis=1)
    except Exception as first_error:  # not a format libsndfile reads: try librosa's decoders
        channels = None
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
    loudest_channel = float(np.max(np.abs(channels))) if channels is not None else 0.0
    if channels is not None and channels.shape[1] > 1 and np.max(np.abs(samples)) < 1e-3 * loudest_channel:
        raise AudioError(path, f"its {channels.shape[1]} channels cancel out when mixed to mono (one is the "
                               "other inverted?); save one channel on its own")
    declared = _declared_wav_frames(path)
    if notes is not None and declared is not None and declared > len(samples):
        notes.append(f"cut short: its header declares {declared / rate:.1f} s, {len(samples) / rate:.1f} s "
                     "are in the file (those are used)")
    return librosa_resample(samples, rate, sample_rate_hz)


def _declared_wav_frames(path: Path) -> int | None:
    """The frames a RIFF WAV file's header declares (its data chunk's size over the frame size),
    which libsndfile quietly trims to what the file holds; None for any other file, or a header
    that says nothing usable (a streamed WAV declares 0 or 0xFFFFFFFF)."""
    import struct

    try:
        with open(path, "rb") as stream:
            head = stream.read(1 << 16)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position, block_align = 12, None
    while position + 8 <= len(head):
        chunk, size = head[position:position + 4], struct.unpack("<I", head[position + 4:position + 8])[0]
        if chunk == b"fmt " and position + 22 <= len(head):
            block_align = struct.unpack("<H", head[position + 20:position + 22])[0]
        elif chunk == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):
                return None
            return size // block_align
        position += 8 + size + (size & 1)
    return None


@dataclass
class LoadReport:
    """What a load used and what it skipped, and why."""

    files_loaded: int = 0
    clips: int = 0
    quiet_clips_dropped: int = 0
    invisible_clips_dropped: int = 0  # clips with song energy whose images are black (below the image's floor)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # files used, with something odd about them
    folder: str | None = None  # the folder loaded: the printed report names files inside it from there

    def skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def note(self, path: Path | str, text: str) -> None:
        self.notes.append((str(path), text))

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
                 + (f"{self.invisible_clips_dropped} clip(s) too quiet for the image dropped; "
                    if self.invisible_clips_dropped else "")
                 + f"{len(self.skipped)} file(s) skipped"]
        inside = f"{self.folder.rstrip('/')}/" if self.folder else None
        lines += [f"  skipped {file.removeprefix(inside) if inside else file}: {reason}" for file, reason in self.skipped]
        lines += [f"  note {file.removeprefix(inside) if inside else file}: {text}" for file, text in self.notes]
        return "\n".join(lines)


@dataclass
class RecordingClips:
    """Clips cut from real recordings: band-passed waveforms and one table row per clip."""

    waveforms: np.ndarray  # (N, clip_samples) float32
    clips: pd.DataFrame  # clip, file, recording_id, label, dialect, start_s, latitude, ...
    label_names: tuple[str, ...]
    front_end: FrontEnd
    levels: np.ndarray  # (N, H, W) uint8 level images of the clips (recording_clips), as the model sees them

    def __len__(self) -> int:
        return len(self.clips)


def _blank(label) -> bool:
    """An empty manifest cell: NaN, None or spaces."""
    return label is None or (not isinstance(label, str) and pd.isna(label)) or not str(label).strip()


def _ignored(path: Path, root: Path) -> bool:
    """A hidden or system file or folder under ``root`` (.DS_Store, .ipynb_checkpoints, .Trash,
    macOS's __MACOSX and its ._ stubs): never a recording or a class, and not worth a report line."""
    return any(part.startswith(".") or part == "__MACOSX" for part in path.relative_to(root).parts)


def _entries_from_folder(folder: Path, report: LoadReport) -> list[dict]:
    entries = []
    visible = sorted(p for p in folder.iterdir() if not _ignored(p, folder))
    for path in (p for p in visible if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
        report.skip(path, "outside every class subfolder (a folder's recordings lie in one subfolder per class)")
    for class_folder in (p for p in visible if p.is_dir()):
        for path in sorted(p for p in class_folder.rglob("*") if not _ignored(p, folder)):
            if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
                entries.append({"path": path, "label": class_folder.name})
            elif path.is_file():
                report.skip(path, f"not an audio file (suffix {path.suffix or 'none'}; "
                                  f"expected one of {', '.join(AUDIO_SUFFIXES)})")
    return entries


def _entries_from_manifest(manifest: Path, report: LoadReport) -> list[dict]:
    try:  # blank lines kept, then dropped, so that a row's number is its line in the file
        table = pd.read_csv(manifest, skip_blank_lines=False)
    except Exception as error:
        raise ValueError(f"{manifest}: cannot read the manifest as CSV ({error})") from None
    table.columns = [str(column).strip().lower() for column in table.columns]  # "Path", " label"
    table = table.rename(columns={old: new for old, new in COLUMN_ALIASES.items()
                                  if old in table.columns and new not in table.columns})
    missing = [column for column in MANIFEST_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{manifest}: the manifest lacks column(s) {', '.join(missing)}; "
                         f"it needs {', '.join(MANIFEST_COLUMNS)} and may have {', '.join(OPTIONAL_COLUMNS)}")
    table = table.dropna(how="all")
    entries, lines = [], []
    for line, row in zip(table.index + 2, table.to_dict("records")):  # the header is line 1
        lines.append(int(line))
        entry = {key: row.get(key) for key in (*MANIFEST_COLUMNS, *OPTIONAL_COLUMNS) if key in row}
        if isinstance(entry["label"], str):
            entry["label"] = entry["label"].strip()  # "Eastern " is Eastern
        path = Path(str(row["path"]).strip())
        entry["path"] = path if path.is_absolute() else manifest.parent / path
        entries.append(entry)
    splits = {str(e["split"]) for e in entries if "split" in e and not pd.isna(e["split"])}
    unknown = sorted(splits - set(SPLITS))
    if unknown:
        raise ValueError(f"{manifest}: unknown split(s) {', '.join(map(repr, unknown))} in column split; "
                         f"use {', '.join(SPLITS)}, or leave a cell empty to split by recording")
    # a file listed twice would be two recordings of one sound; under two labels, neither is trusted
    # (one file however it is spelled: relative, absolute, or through a symbolic link)
    rows_of: dict[Path, list[int]] = {}
    for number, entry in enumerate(entries):
        if not _blank(entry["label"]):  # a blank label is skipped on its own (load_recordings)
            rows_of.setdefault(Path(entry["path"]).resolve(), []).append(number)
    dropped = set()
    for rows in (rows for rows in rows_of.values() if len(rows) > 1):
        where = ", ".join(str(lines[number]) for number in rows)
        labels = sorted({str(entries[number]["label"]) for number in rows})
        if len(labels) > 1:
            report.skip(entries[rows[0]]["path"], f"listed on lines {where} of the manifest under different labels "
                                                  f"({', '.join(labels)}): not used")
            dropped.update(rows)
        else:
            report.note(entries[rows[0]]["path"], f"listed on lines {where} of the manifest: used once")
            dropped.update(rows[1:])
    return [entry for number, entry in enumerate(entries) if number not in dropped]


def recording_clips(path: Path | str, front_end: FrontEnd = PAPER_FRONT_END,
                    notes: list[str] | None = None) -> tuple[Segments, np.ndarray]:
    """One recording read (:func:`read_audio`), band-passed and cut into clips (chapter 02), with
    the clips' level images (uint8, as the model sees them): only the clips with song
    (``min_clip_level_db`` in the band) whose images show something, a pixel above the image's
    floor (``db_range``: the scale is fixed, as for the book's clips, so a quiet recording draws
    black images). Raises :class:`AudioError` with the reason when no clip is left. ``notes``
    gets what is odd but usable (:func:`read_audio`)."""
    from dataclasses import replace

    from .frontend import render_levels
    from .images import levels_to_uint8

    audio = read_audio(path, front_end.sample_rate_hz, notes)
    if np.max(np.abs(audio)) == 0:
        raise AudioError(path, "all-silent file (every sample is zero)")
    seconds = len(audio) / front_end.sample_rate_hz
    if seconds < front_end.min_tail_seconds:
        raise AudioError(path, f"too short to make one clip ({seconds:.2f} s; a clip needs at least "
                               f"{front_end.min_tail_seconds:g} s of audio)")
    pieces = segment(audio, front_end)
    low_hz, high_hz = front_end.band_hz
    band = f"the {low_hz / 1000:g}-{high_hz / 1000:g} kHz band"
    if len(pieces.clips) == 0:
        if pieces.loudest_db < NO_SOUND_DB:
            raise AudioError(path, f"no sound in {band} (its sound lies outside the band, or is a constant offset)")
        raise AudioError(path, f"too quiet in {band}: its loudest clip reaches {pieces.loudest_db:.0f} dB, below "
                               f"the {front_end.min_clip_level_db:g} dB a clip with song needs")
    levels = levels_to_uint8(render_levels(pieces.clips, front_end))
    shown = levels.reshape(len(levels), -1).max(axis=1) > 0
    if not shown.any():
        raise AudioError(path, f"too quiet for the images: every pixel of its {len(levels)} clip(s) lies below the "
                               f"image's {front_end.db_range[0]:g} dB floor (its loudest clip: {pieces.loudest_db:.0f} "
                               "dB in the band); the image's level scale is fixed, as for the book's clips, so raise "
                               "the recording's level (e.g. normalise its peak to -1 dBFS)")
    pieces = replace(pieces, clips=pieces.clips[shown], starts_s=pieces.starts_s[shown],
                     dropped_invisible=int((~shown).sum()))
    return pieces, levels[shown]


def load_recordings(
    source: Path | str,
    labels: Iterable[str] | None = None,
    front_end: FrontEnd = PAPER_FRONT_END,
    progress: bool = True,
) -> tuple[RecordingClips, LoadReport]:
    """Load a class-per-subfolder folder or a CSV manifest into clips, skipping bad input.

    ``labels`` fixes the classes and their order (label index = position); a file with another
    label is skipped as "unknown label". Without it, the classes are the labels found, sorted,
    that give at least one clip; labels that differ only in case are refused (a misspelling).
    Hidden and system files and folders (``.*``, ``__MACOSX``) are passed over; each file's clips
    come from :func:`recording_clips`.
    """
    from tqdm.auto import tqdm

    from .runtime import show_progress

    source = Path(source)
    report = LoadReport(folder=str(source) if source.is_dir() else None)
    if source.is_dir():
        entries = _entries_from_folder(source, report)
    elif source.is_file():
        entries = _entries_from_manifest(source, report)
    else:
        raise ValueError(f"{source}: no such folder or manifest")

    known = tuple(labels) if labels is not None else tuple(sorted({str(e["label"]) for e in entries
                                                                   if not _blank(e["label"])}))
    if labels is None:
        spellings: dict[str, list[str]] = {}
        for label in known:
            spellings.setdefault(label.casefold(), []).append(label)
        clash = next((names for names in spellings.values() if len(names) > 1), None)
        if clash:
            raise ValueError(f"{source}: the labels {' and '.join(map(repr, clash))} differ only in case; "
                             "write each class one way")
    waveforms, levels, rows = [], [], []
    for entry in tqdm(entries, desc="loading recordings", unit="file", disable=not show_progress(progress)):
        path, label = Path(entry["path"]), str(entry["label"])
        if _blank(entry["label"]):
            report.skip(path, "no label (the manifest's label cell is empty)")
            continue
        if label not in known:
            report.skip(path, f"unknown label {label!r} (known: {', '.join(known)})")
            continue
        notes: list[str] = []
        try:
            pieces, shown = recording_clips(path, front_end, notes)
        except AudioError as error:
            report.skip(path, error.reason)
            continue
        for text in notes:
            report.note(path, text)
        report.quiet_clips_dropped += pieces.dropped_quiet
        report.invisible_clips_dropped += pieces.dropped_invisible
        report.files_loaded += 1
        recording = entry.get("recording_id")
        recording = str(path) if recording is None or pd.isna(recording) else str(recording)
        levels.append(shown)
        for clip, start in zip(pieces.clips, pieces.starts_s):
            waveforms.append(clip)
            rows.append({
                "clip": len(rows), "file": str(path), "recording_id": recording,
                "label": known.index(label), "dialect": label, "start_s": float(start),
                **{key: entry.get(key) for key in ("latitude", "longitude", "licence", "split") if key in entry},
            })
    if labels is None:  # a class none of whose files gave a clip is no class to learn
        found = {row["dialect"] for row in rows}
        for label in (label for label in known if label not in found):
            report.note(f"class {label!r}", "none of its files gave a clip: it is not one of the classes")
        known = tuple(label for label in known if label in found)
        for row in rows:
            row["label"] = known.index(row["dialect"])
    report.clips = len(rows)
    array = np.stack(waveforms) if waveforms else np.zeros((0, front_end.clip_samples), np.float32)
    images = np.concatenate(levels) if levels else np.zeros((0, *front_end.image_size), np.uint8)
    return RecordingClips(array, pd.DataFrame(rows), known, front_end, images), report


def training_problem(clips: pd.DataFrame, label_names: tuple[str, ...], split_by_recording: bool = True) -> str | None:
    """Why clips (a :class:`RecordingClips` table with its splits) cannot train a classifier, in
    words, or None: fewer than two classes, or a class missing from the training or validation
    split (split by recording, a class needs three recordings to reach training, validation and
    test; a misspelled label is often a class of one recording)."""
    present = [name for name in label_names if (clips["dialect"] == name).any()]
    if len(present) < 2:
        return (f"{'one class only (' + present[0] + ')' if present else 'no class'}: a classifier needs "
                "recordings of at least two")
    for name in present:
        mine = clips[clips["dialect"] == name]
        missing = [split for split in ("train", "validation") if not (mine["split"] == split).any()]
        if missing:
            recordings = mine["recording_id"].unique()
            return (f"class {name!r} has no clips in the {' or the '.join(missing)} split: it has {len(recordings)} "
                    f"recording(s) ({', '.join(Path(str(r)).name for r in recordings[:3])}"
                    f"{', ...' if len(recordings) > 3 else ''}), "
                    + ("and split by recording a class needs at least 3 (one each for training, validation and "
                       "test); a misspelled label, or too few recordings?" if split_by_recording else
                       "and the manifest's split column puts none there"))
    return None


def recordings_dataset(
    source: Path | str,
    front_end: FrontEnd = PAPER_FRONT_END,
    labels: Iterable[str] | None = None,
    seed: int = 0,
    background: str = "black",
    progress: bool = True,
    for_training: bool = False,
):
    """A folder or manifest of recordings as a :class:`~wrenlib.images.SpectrogramDataset`, ready
    to train on and to explain (chapter 12; ``wrenlib train`` and ``evaluate``).

    ``source`` is a class-per-subfolder folder, a CSV manifest, or a folder holding a
    ``labels.csv`` manifest (what ``wrenlib synth`` writes). Clips are split by recording
    (:func:`split_by_recording`) unless the manifest gives every clip a split. Returns
    ``(dataset, recordings, report)``: the images, the :class:`RecordingClips` they were rendered
    from (waveforms, class names), and the :class:`LoadReport`; bad files are in the report, never fatal. Raises
    ``ValueError`` naming ``source`` when no usable clip is left, and with ``for_training`` when the
    clips cannot train a classifier (:func:`training_problem`), before any time is spent on it.
    """
    from .frontend import assign_backgrounds
    from .images import SpectrogramDataset

    source = Path(source)
    if source.is_dir() and (source / "labels.csv").is_file():
        source = source / "labels.csv"
    recordings, report = load_recordings(source, labels=labels, front_end=front_end, progress=progress)
    if len(recordings) == 0:
        skipped = "".join(f"\n  skipped {file}: {reason}" for file, reason in report.skipped)
        raise ValueError(f"{source}: no usable clips ({len(report.skipped)} file(s) skipped){skipped}")
    clips = recordings.clips
    by_recording = "split" not in clips or clips["split"].isna().any()
    if by_recording:
        clips["split"] = split_by_recording(clips, seed=seed)
    problem = training_problem(clips, recordings.label_names, by_recording) if for_training else None
    if problem:
        raise ValueError(f"{source}: {problem}")
    levels = recordings.levels  # rendered once, by the load (recording_clips)
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
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not _ignored(p, folder)):
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
