"""The surrogate dataset: clips, labels, element lists and masks, generated once and cached.

Chapter 01 builds it; every later chapter asks :func:`load_surrogate_dataset` for the profile's copy.
Masks are stored sparsely (the flat indices of their cells on the STFT grid) and rebuilt on demand.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .runtime import map_batches, show_progress

from .cache import load_or_build, profile_dir
from .profiles import get_profile
from .spectrogram import PAPER_STFT
from .surrogate import (
    DIALECTS,
    SurrogateClip,
    SurrogateConfig,
    build_population,
    synthesise_clip,
)


@dataclass
class SurrogateDataset:
    """Waveforms (N, samples), one metadata row per clip, element and background tables, masks."""

    config: SurrogateConfig
    waveforms: np.ndarray
    clips: pd.DataFrame
    elements: pd.DataFrame
    background: pd.DataFrame
    mask_shape: tuple[int, int]
    diagnostic_cells: Sequence[np.ndarray]  # a list, or a ClipCells when loaded from the cache
    song_cells: Sequence[np.ndarray]
    seconds_to_generate: float = float("nan")
    processes: int = 0  # the processes that synthesised it (0: not recorded, a cache from before)
    made: str = ""  # when it was synthesised ("YYYY-MM-DD HH:MM UTC"; "": not recorded, a cache from before)
    confound_cells: list[np.ndarray] | None = None  # set by wrenlib.confound.add_confound (chapter 11)
    confound: Any = None  # the wrenlib.confound.Confound applied, if any

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labels(self) -> np.ndarray:
        """Dialect of each clip: 0 = Eastern, 1 = Mexican."""
        return self.clips["label"].to_numpy()

    def diagnostic_mask(self, index: int) -> np.ndarray:
        """Boolean (n_bins, n_frames) mask of the diagnostic elements of clip ``index``."""
        return _dense(self.diagnostic_cells[index], self.mask_shape)

    def song_mask(self, index: int) -> np.ndarray:
        """Boolean (n_bins, n_frames) mask of all song elements of clip ``index``."""
        return _dense(self.song_cells[index], self.mask_shape)

    def confound_mask(self, index: int) -> np.ndarray:
        """Boolean (n_bins, n_frames) mask of the confound's source in clip ``index`` (all False
        when the clip does not carry it, or the data has no confound: chapter 11)."""
        if self.confound_cells is None:
            return np.zeros(self.mask_shape, dtype=bool)
        return _dense(self.confound_cells[index], self.mask_shape)

    def elements_of(self, index: int) -> pd.DataFrame:
        """The element table of one clip (kind, role, times, frequency range)."""
        return self.elements[self.elements["clip"] == index]

    def split_indices(self, split: str) -> np.ndarray:
        """Clip indices of one split (train, validation or test)."""
        return np.flatnonzero(self.clips["split"].to_numpy() == split)

    def save(self, folder: Path) -> None:
        """Write the dataset to ``folder`` (waveforms as .npy, tables as CSV, masks sparse)."""
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "waveforms.npy", self.waveforms)
        self.clips.to_csv(folder / "clips.csv", index=False)
        self.elements.to_csv(folder / "elements.csv", index=False)
        self.background.to_csv(folder / "background.csv", index=False)
        # each clip's cells as runs of consecutive indices (a stroke along time is one run): 20x
        # fewer numbers than the cells, written in a fraction of a second (zlib took ~10 s)
        np.savez(folder / "masks.npz", shape=np.array(self.mask_shape),
                 **_run_arrays("diagnostic", self.diagnostic_cells), **_run_arrays("song", self.song_cells))
        (folder / "dataset.json").write_text(
            json.dumps({"config": self.config.to_dict(),
                        "seconds_to_generate": self.seconds_to_generate,
                        "processes": self.processes, "made": self.made}, indent=2)
        )

    @classmethod
    def load(cls, folder: Path) -> "SurrogateDataset":
        """Read a dataset written by :meth:`save`."""
        meta = json.loads((folder / "dataset.json").read_text())
        # a folder written before masks stopped at the image's floor holds masks made without one
        meta["config"].setdefault("mask_visible_db", float("-inf"))
        config_fields = {f.name for f in fields(SurrogateConfig)}
        config = SurrogateConfig(**{
            key: tuple(value) if isinstance(value, list) else value
            for key, value in meta["config"].items() if key in config_fields
        })
        masks = np.load(folder / "masks.npz")
        return cls(
            config=config,
            waveforms=np.load(folder / "waveforms.npy", mmap_mode="r"),
            clips=pd.read_csv(folder / "clips.csv"),
            elements=pd.read_csv(folder / "elements.csv"),
            background=pd.read_csv(folder / "background.csv").fillna({"detail": ""}),
            mask_shape=tuple(int(v) for v in masks["shape"]),
            diagnostic_cells=_cells_from(masks, "diagnostic"),
            song_cells=_cells_from(masks, "song"),
            seconds_to_generate=float(meta.get("seconds_to_generate", float("nan"))),
            processes=int(meta.get("processes", 0)),
            made=str(meta.get("made", "")),
        )


def _dense(cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape[0] * shape[1], dtype=bool)
    mask[cells] = True
    return mask.reshape(shape)


def _concatenate(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays).astype(np.int32) if arrays else np.zeros(0, np.int32)


def _split(flat: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(counts)[:-1]) if len(counts) else []


def _run_arrays(name: str, cells: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every clip's sorted cell indices as runs of consecutive values: the runs' first cells and
    lengths (all clips concatenated) and the number of runs per clip."""
    flat = _concatenate(cells)
    counts = np.array([len(c) for c in cells], dtype=np.int64)
    first_of_clip = np.cumsum(counts)[:-1]
    breaks = np.union1d(np.flatnonzero(np.diff(flat) != 1) + 1,
                        first_of_clip[(first_of_clip > 0) & (first_of_clip < len(flat))])
    firsts = np.r_[0, breaks].astype(np.int64) if len(flat) else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[firsts, len(flat)])
    runs_per_clip = np.diff(np.searchsorted(firsts, np.r_[0, np.cumsum(counts)]))
    return {f"{name}_run_starts": flat[firsts].astype(np.int32), f"{name}_run_lengths": lengths.astype(np.int32),
            f"{name}_runs": runs_per_clip}


class ClipCells(Sequence):
    """Each clip's mask cells (flat indices into the STFT grid, int32), kept as the runs of
    consecutive cells that :meth:`SurrogateDataset.save` writes and expanded one clip at a time
    when asked for: a list of every clip's cells at the full profile (4,000 clips) took 4 s and
    several GiB to build in every chapter that loaded the data, which mostly reads a few clips."""

    def __init__(self, starts: np.ndarray, lengths: np.ndarray, runs_per_clip: np.ndarray):
        self._starts = np.asarray(starts, dtype=np.int64)
        self._lengths = np.asarray(lengths, dtype=np.int64)
        self._first_run = np.r_[0, np.cumsum(runs_per_clip)].astype(np.int64)

    def __len__(self) -> int:
        return len(self._first_run) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = int(index) + (len(self) if int(index) < 0 else 0)
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} of {len(self)}")
        first, last = self._first_run[index], self._first_run[index + 1]
        starts, lengths = self._starts[first:last], self._lengths[first:last]
        ends = np.cumsum(lengths)
        cells = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - (ends - lengths), lengths)
        return cells.astype(np.int32)


def _cells_from(masks, name: str) -> Sequence[np.ndarray]:
    """The clips' cell indices: from :func:`_run_arrays`' runs (a :class:`ClipCells`), or from
    the flat arrays that caches written before it hold."""
    if f"{name}_runs" not in masks:
        return _split(masks[name], masks[f"{name}_counts"])
    return ClipCells(masks[f"{name}_run_starts"], masks[f"{name}_run_lengths"], masks[f"{name}_runs"])


def clip_rows(clip: SurrogateClip) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Metadata row, element rows and background rows of one synthesised clip."""
    plan = clip.plan
    row = {
        "clip": plan.clip_id,
        "dialect": DIALECTS[plan.dialect],
        "label": plan.dialect,
        "song_type": f"{DIALECTS[plan.dialect][0]}{plan.song_type + 1}",
        "song_template": plan.song_type,
        "individual": plan.individual,
        "split": plan.split,
        "snr_db": plan.snr_db,
        "song_level_db": plan.song_level_db,
        **plan.features,
    }
    elements = [
        {"clip": plan.clip_id, "kind": e.kind, "role": "diagnostic" if e.diagnostic else "shared",
         "start_s": e.start_s, "end_s": e.end_s, "low_hz": e.low_hz, "high_hz": e.high_hz}
        for e in plan.elements
    ]
    background = [{"clip": plan.clip_id, **source} for source in clip.background]
    return row, elements, background


def _synthesise_batch(population, clip_ids: list[int]) -> list[tuple]:
    out = []
    for clip_id in clip_ids:
        clip = synthesise_clip(population, clip_id)
        out.append((
            clip.waveform,
            np.flatnonzero(clip.diagnostic_mask).astype(np.int32),
            np.flatnonzero(clip.song_mask).astype(np.int32),
            clip_rows(clip),
        ))
    return out


def generate_surrogate_dataset(
    config: SurrogateConfig, n_jobs: int = 2, progress: bool = True, batch_size: int = 16
) -> SurrogateDataset:
    """Synthesise every clip of ``config`` (in parallel processes, with a progress bar)."""
    population = build_population(config)
    clip_ids = list(range(config.total_clips))
    batches = [clip_ids[i:i + batch_size] for i in range(0, len(clip_ids), batch_size)]
    started = time.perf_counter()
    results: Iterator[list[tuple]] = map_batches(_synthesise_batch, batches, n_jobs, population)
    waveforms = np.zeros((len(clip_ids), config.clip_samples), dtype=np.float32)
    rows, element_rows, background_rows, diagnostic, song = [], [], [], [], []
    with tqdm(total=len(clip_ids), desc="synthesising clips", unit="clip", disable=not show_progress(progress)) as bar:
        for batch in results:
            for waveform, diagnostic_cells, song_cells, (row, elements, background) in batch:
                waveforms[row["clip"]] = waveform
                diagnostic.append(diagnostic_cells)
                song.append(song_cells)
                rows.append(row)
                element_rows.extend(elements)
                background_rows.extend(background)
                bar.update(1)
    seconds = time.perf_counter() - started
    return SurrogateDataset(
        config=config,
        waveforms=waveforms,
        clips=pd.DataFrame(rows),
        elements=pd.DataFrame(element_rows),
        background=pd.DataFrame(background_rows),
        mask_shape=(PAPER_STFT.n_bins, PAPER_STFT.n_frames(config.clip_samples)),
        diagnostic_cells=diagnostic,
        song_cells=song,
        seconds_to_generate=seconds,
        processes=max(1, min(n_jobs, len(batches))),  # map_batches's workers with work to do
        made=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )


def surrogate_config_for_profile(profile: str, seed: int = 0, **changes: Any) -> SurrogateConfig:
    """The surrogate configuration a profile uses (sizes from :mod:`wrenlib.profiles`)."""
    sizes = get_profile(profile)
    return SurrogateConfig(
        seed=seed,
        individuals_per_dialect=sizes.individuals_per_dialect,
        clips_per_individual=sizes.clips_per_individual,
        **changes,
    )


def load_surrogate_dataset(profile: str, seed: int = 0, n_jobs: int | None = None, **changes: Any) -> SurrogateDataset:
    """The profile's surrogate dataset from the artifact cache, generated on first use in
    ``n_jobs`` processes (``None``: one per usable core, since chapter 01 makes it before any
    other job of a run can start; every clip is the same whatever the number, since each is
    synthesised from its own seed)."""
    from .runtime import usable_cores

    config = surrogate_config_for_profile(profile, seed, **changes)
    n_jobs = n_jobs or usable_cores()
    return load_or_build(
        profile_dir(profile) / "surrogate",
        {"surrogate": config.to_dict()},
        build=lambda: generate_surrogate_dataset(config, n_jobs=n_jobs),
        save=lambda dataset, folder: dataset.save(folder),
        load=SurrogateDataset.load,
    )
