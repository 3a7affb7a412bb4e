"""Spectrogram-image datasets for the CNN, built once per profile and cached (chapter 02).

The cache keeps one *level* image per clip (uint8, 0 = the -40 dB floor); backgrounds are applied
when an item is read, so the black, white and mixed sets share one cache. Masks, where the clips
are surrogate songs, are rendered onto the image's pixels from the surrogate's STFT-grid masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .cache import load_or_build, profile_dir
from .dataset import SurrogateDataset, load_surrogate_dataset
from .frontend import (
    FrontEnd,
    apply_background,
    assign_backgrounds,
    front_end_for_profile,
    render_levels,
    render_mask,
)
from .audio import bandpass

METADATA_COLUMNS = ("clip", "dialect", "song_type", "individual", "split")


def levels_to_uint8(levels: np.ndarray) -> np.ndarray:
    """Level images in [0, 1] as uint8 (0..255), the cache's storage format."""
    return np.round(np.clip(levels, 0, 1) * 255).astype(np.uint8)


def render_level_cache(waveforms: np.ndarray, front_end: FrontEnd, device=None,
                       chunk: int = 64, progress: bool = True) -> np.ndarray:
    """uint8 level images of many clips, band-passed and rendered in chunks (bounded memory)."""
    from tqdm.auto import tqdm

    from .runtime import show_progress

    out = np.empty((len(waveforms), *front_end.image_size), dtype=np.uint8)
    with tqdm(total=len(waveforms), desc="rendering images", unit="clip", disable=not show_progress(progress)) as bar:
        for first in range(0, len(waveforms), chunk):
            block = bandpass(np.asarray(waveforms[first:first + chunk], np.float32),
                             front_end.sample_rate_hz, front_end.band_hz, front_end.filter_order,
                             front_end.filter_type)
            out[first:first + len(block)] = levels_to_uint8(render_levels(block, front_end, device))
            bar.update(len(block))
    return out


def load_or_render_levels(folder, config: dict[str, Any], waveforms: np.ndarray, front_end: FrontEnd,
                          device=None, progress: bool = True) -> np.ndarray:
    """:func:`render_level_cache` kept in ``folder`` (``levels.npy``) under ``config``: rendered on the
    first call, memory-mapped from disk on the next (:func:`~wrenlib.cache.load_or_build`)."""
    return load_or_build(
        folder, config,
        build=lambda: render_level_cache(waveforms, front_end, device, progress=progress),
        save=lambda array, path: np.save(path / "levels.npy", array),
        load=lambda path: np.load(path / "levels.npy", mmap_mode="r"),
    )


@dataclass
class SpectrogramDataset(Dataset):
    """Images, labels and metadata of clips; diagnostic and song masks where they are known.

    ``dataset[i]`` yields ``(image, label, metadata, masks)``: a float32 tensor (1, H, W) in
    [0, 1] with the clip's background, the dialect (0 Eastern, 1 Mexican), a dict of plain
    metadata, and a dict of boolean (H, W) tensors (empty when the clips carry no masks, or when
    ``with_masks`` is False, which is faster for training).
    """

    levels: np.ndarray  # (N, H, W) uint8
    clips: pd.DataFrame
    backgrounds: np.ndarray  # one of "black", "white" per clip
    front_end: FrontEnd
    surrogate: SurrogateDataset | None = None
    with_masks: bool = True
    mask_rule: str = "any"

    def __len__(self) -> int:
        return len(self.levels)

    @property
    def labels(self) -> np.ndarray:
        return self.clips["label"].to_numpy()

    def image(self, index: int) -> np.ndarray:
        """The image of clip ``index`` with its background, (H, W) float32 in [0, 1]."""
        return apply_background(self.levels[index].astype(np.float32) / 255, self.backgrounds[index])

    def images(self, indices) -> np.ndarray:
        """A stack of images (N, H, W) with their backgrounds."""
        indices = np.asarray(indices)
        return apply_background(self.levels[indices].astype(np.float32) / 255, self.backgrounds[indices])

    def mask_names(self) -> tuple[str, ...]:
        """The masks this dataset's clips have: ``diagnostic`` and ``song``, and ``confound`` on
        chapter 11's confounded data (none when the clips' source is unknown)."""
        if self.surrogate is None:
            return ()
        return ("diagnostic", "song") + (("confound",) if self.surrogate.confound_cells is not None else ())

    def _grid_masks(self, sources: np.ndarray, name: str) -> np.ndarray:
        """Mask ``name`` of the surrogate clips ``sources`` on the STFT grid, (N, n_bins, n_frames)."""
        if name not in self.mask_names():
            raise ValueError(f"no {name!r} mask here; the clips have {', '.join(self.mask_names()) or 'none'}")
        grid_mask = {"diagnostic": self.surrogate.diagnostic_mask, "song": self.surrogate.song_mask,
                     "confound": self.surrogate.confound_mask}[name]
        return np.stack([grid_mask(int(source)) for source in sources]) if len(sources) else \
            np.zeros((0, *self.surrogate.mask_shape), dtype=bool)

    def masks(self, index: int) -> dict[str, np.ndarray]:
        """Diagnostic and song masks of clip ``index`` on the image's pixels ({} if unknown)."""
        source = self.clips["clip"].to_numpy()[[index]]
        return {name: render_mask(self._grid_masks(source, name), self.front_end, self.mask_rule)[0]
                for name in self.mask_names()}

    def stacked_masks(self, indices, name: str = "diagnostic") -> np.ndarray:
        """One mask (``diagnostic``, ``song``, or on confounded data ``confound``) of each clip of
        ``indices``, stacked (N, H, W): only that mask, pooled onto the pixels a few clips at a time."""
        sources = self.clips["clip"].to_numpy()[np.asarray(indices, dtype=np.int64)]
        out = np.empty((len(sources), *self.front_end.image_size), dtype=bool)
        for first in range(0, len(sources), 16):  # the STFT-grid masks of 16 clips at a time (1 MiB each)
            out[first:first + 16] = render_mask(self._grid_masks(sources[first:first + 16], name), self.front_end,
                                                self.mask_rule)
        return out

    def metadata(self, index: int) -> dict[str, Any]:
        row = self.clips.iloc[index]
        meta = {column: row[column] for column in METADATA_COLUMNS if column in row}
        meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in meta.items()}
        meta.update(index=index, background=str(self.backgrounds[index]))
        return meta

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.image(index))[None]
        masks = {name: torch.from_numpy(mask) for name, mask in self.masks(index).items()} if self.with_masks else {}
        return image, int(self.clips.iloc[index]["label"]), self.metadata(index), masks

    def split_indices(self, split: str) -> np.ndarray:
        """Indices of the clips of one split (train, validation or test)."""
        return np.flatnonzero(self.clips["split"].to_numpy() == split)

    def subset(self, split: str) -> "SpectrogramDataset":
        """The clips of one split (train, validation or test), as a dataset of the same kind."""
        keep = self.split_indices(split)
        return SpectrogramDataset(self.levels[keep], self.clips.iloc[keep].reset_index(drop=True),
                                  self.backgrounds[keep], self.front_end, self.surrogate,
                                  self.with_masks, self.mask_rule)

    def with_background(self, background: str, seed: int = 0) -> "SpectrogramDataset":
        """The same clips rendered with another background (black, white or mixed)."""
        return SpectrogramDataset(self.levels, self.clips, assign_backgrounds(len(self), background, seed),
                                  self.front_end, self.surrogate, self.with_masks, self.mask_rule)


def load_spectrogram_dataset(profile: str, background: str = "mixed", seed: int = 0,
                             device=None, **surrogate_changes: Any) -> SpectrogramDataset:
    """The profile's surrogate clips as spectrogram images, rendered once and cached."""
    from .runtime import choose_device

    surrogate = load_surrogate_dataset(profile, seed=seed, **surrogate_changes)
    front_end = front_end_for_profile(profile)
    device = device or choose_device()  # the STFT runs on the GPU when there is one
    folder = profile_dir(profile) / f"images_{front_end.image_height_px}x{front_end.image_width_px}"
    levels = load_or_render_levels(folder, {"front_end": front_end.to_dict(), "surrogate": surrogate.config.image_key()},
                                   surrogate.waveforms, front_end, device)
    return SpectrogramDataset(levels, surrogate.clips, assign_backgrounds(len(levels), background, seed),
                              front_end, surrogate)
