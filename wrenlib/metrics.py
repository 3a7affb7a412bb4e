"""Scores of attribution maps against the surrogate's ground truth (chapters 04-08).

The surrogate knows where each clip's dialect evidence lies (its diagnostic mask, chapter 01),
so a map can be scored instead of judged by eye. Every function takes maps (N, H, W) — raw or
normalised — and boolean masks (N, H, W) on the same pixels, and returns one value per map.
"""

from __future__ import annotations

import numpy as np


def _check(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=bool)
    if maps.ndim != 3 or maps.shape != masks.shape:
        raise ValueError(f"maps and masks must both be (N, H, W) of one shape, got {maps.shape} and {masks.shape}")
    return maps, masks


def relevance_mass(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's positive attribution that lies inside its mask (Arras et al. 2022's
    relevance mass accuracy); NaN for a map without positive attribution."""
    maps, masks = _check(maps, masks)
    positive = np.clip(maps, 0, None).reshape(len(maps), -1)
    total = positive.sum(axis=1)
    inside = (positive * masks.reshape(len(masks), -1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)


def mask_area(masks: np.ndarray) -> np.ndarray:
    """Share of the image each mask covers: the relevance mass a map spread evenly would get."""
    masks = np.asarray(masks, dtype=bool)
    return masks.reshape(len(masks), -1).mean(axis=1)


def map_correlation(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pearson correlation of two maps of the same clip, one value per pair of (N, H, W) maps.

    Pearson, not Spearman: attribution maps are mostly near-zero pixels, whose ranks are noise;
    a rank correlation over all pixels says more about that noise than about the maps' agreement.
    NaN where a map is constant.
    """
    a = np.asarray(first, dtype=np.float64).reshape(len(first), -1)
    b = np.asarray(second, dtype=np.float64).reshape(len(second), -1)
    if a.shape != b.shape:
        raise ValueError(f"maps must have one shape, got {np.shape(first)} and {np.shape(second)}")
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (a * b).sum(axis=1) / np.where(norm > 0, norm, 1), np.nan)
