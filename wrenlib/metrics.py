"""Scores of attribution maps against the surrogate's ground truth (chapters 04-08).

The surrogate knows where each clip's dialect evidence lies (its diagnostic mask, chapter 01),
so a map can be scored instead of judged by eye. Every function takes maps (N, H, W) — raw or
normalised — and boolean masks (N, H, W) on the same pixels, and returns one value per map.

Chapter 08 ("Ensembles, and measuring which explanation is right") adds the scores that compare
methods and ensembles: where the top pixels lie (:func:`relevance_rank_accuracy`), where the
peak lies (:func:`pointing_game`), how well the map ranks mask pixels (:func:`mask_auc`), how
much attribution lands on empty background (:func:`background_share`), the share of the map
above thresholds (:func:`threshold_shares`, the paper's Figure 6), and means with confidence
intervals per group (:func:`summarise_scores`). Ties and constant maps are scored
fractionally, so a constant (or all-zero) map scores chance, never a hit.
"""

from __future__ import annotations

import inspect
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used, as in wrenlib.explain
    import pandas as pd


def points_text(difference: float, low: float, high: float, decimals: int = 1) -> str:
    """A difference of two shares (accuracies, relevance masses) with its interval, in percentage
    points for the text of a page: "+35.4 points [+26.4, +44.4]" (chapters 03, 04, 05, 11)."""
    return (f"{100 * difference:+.{decimals}f} points [{100 * low:+.{decimals}f}, "
            f"{100 * high:+.{decimals}f}]")


def share_text(value: float, decimals: int = 2) -> str:
    """A share as a percentage for the text of a page: ``decimals`` places, but a share too small
    to show at that precision reads "< 0.01%", not a misleading "0.00%" (exact zero stays "0%",
    NaN reads "–")."""
    value = float(value)
    if np.isnan(value):
        return "–"
    if value == 0:
        return "0%"
    text = f"{value:.{decimals}%}"
    if float(text.rstrip("%")) == 0:  # rounds to zero at this precision
        smallest = f"{10.0 ** -decimals:.{decimals}f}%"
        return f"< {smallest}" if value > 0 else f"> -{smallest}"
    return text


def _check(maps: np.ndarray, masks: np.ndarray, name: str = "masks") -> tuple[np.ndarray, np.ndarray]:
    if len(np.shape(maps)) != 3 or np.shape(maps) != np.shape(masks):
        raise ValueError(f"maps and {name} must both be (N, H, W) of one shape, got {np.shape(maps)} and "
                         f"{np.shape(masks)}")
    return np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=bool)


# the per-map scores below take this many maps at a time: each pass copies only its own maps to float64
# (a 480 x 960 map is 3.7 MB so), where one pass over the full profile's 800 test clips held several
# float64 copies of all of them at once (chapter 05's DeepLIFT comparisons peaked at 21 GiB on a CPU)
MAPS_PER_PASS = 32


def in_passes(score: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A score of one value per map (N, H, W), computed :data:`MAPS_PER_PASS` maps at a time: every
    argument that is an array of N entries (the maps, their masks, a second set of maps) is cut the
    same way, and the passes' values are joined. Each map's value is computed from that map alone,
    so the values are the very ones a single pass gives; only the memory a pass holds is bounded."""
    import functools

    @functools.wraps(score)
    def passes(maps, *args, **kwargs):
        n = len(maps) if np.ndim(maps) == 3 else 0
        if n <= MAPS_PER_PASS:
            return score(maps, *args, **kwargs)

        def cut(value, part: slice):
            return np.asarray(value)[part] if value is not None and np.ndim(value) >= 1 and len(value) == n else value

        for value in (*args, *kwargs.values()):  # a mismatched shape is named as a single pass names it
            if value is not None and np.ndim(value) >= 1 and np.shape(value) != np.shape(maps):
                return score(maps, *args, **kwargs)
        maps = np.asarray(maps)
        parts = [score(maps[first:first + MAPS_PER_PASS],
                       *(cut(value, slice(first, first + MAPS_PER_PASS)) for value in args),
                       **{key: cut(value, slice(first, first + MAPS_PER_PASS)) for key, value in kwargs.items()})
                 for first in range(0, n, MAPS_PER_PASS)]
        return np.concatenate(parts)

    return passes


def _check_finite(maps: np.ndarray, masks: np.ndarray, name: str = "masks") -> tuple[np.ndarray, np.ndarray]:
    """:func:`_check`, and no NaN or infinite map value (a rank or a maximum of those means nothing)."""
    maps, masks = _check(maps, masks, name)
    if not np.isfinite(maps).all():
        bad = np.flatnonzero(~np.isfinite(maps).reshape(len(maps), -1).all(axis=1))
        raise ValueError(f"maps must be finite; maps {bad[:5].tolist()} hold NaN or infinite values")
    return maps, masks


def check_normalised_maps(maps: np.ndarray, name: str = "maps") -> np.ndarray:
    """``maps`` as float32 (N, H, W) after checking they are normalised to [0, 1] by
    :func:`wrenlib.explain.normalise_maps` with ``sign="positive"`` or ``"absolute"`` (chapter 08)."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W), got shape {maps.shape}")
    if maps.size and not np.isfinite(maps).all():
        raise ValueError(f"{name} hold NaN or infinite values; normalise them with wrenlib.explain.normalise_maps")
    if maps.size and (maps.min() < 0 or maps.max() > 1 + 1e-6):
        raise ValueError(f"{name} must be normalised to [0, 1] (wrenlib.explain.normalise_maps with sign='positive' "
                         f"or 'absolute'), got values from {maps.min():.3g} to {maps.max():.3g}")
    return maps


@in_passes
def region_share(maps: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Share of each map's positive attribution that lies inside a boolean region (N, H, W), such as
    the diagnostic mask, the shared elements or the empty background (chapter 08); NaN for a map
    without positive attribution."""
    maps, region = _check(maps, region, "region")
    positive = np.clip(maps, 0, None).reshape(len(maps), -1)
    total = positive.sum(axis=1)
    inside = (positive * region.reshape(len(region), -1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)


@in_passes
def relevance_mass(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's positive attribution that lies inside its mask (Arras et al. 2022's
    relevance mass accuracy); NaN for a map without positive attribution."""
    maps, masks = _check(maps, masks)
    return region_share(maps, masks)


def mask_area(masks: np.ndarray) -> np.ndarray:
    """Share of the image each mask covers: the relevance mass a map spread evenly would get."""
    masks = np.asarray(masks, dtype=bool)
    return masks.reshape(len(masks), -1).mean(axis=1)


@in_passes
def map_correlation(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pearson correlation of two maps of the same clip, one value per pair of (N, H, W) maps.

    Pearson, not Spearman: attribution maps are mostly near-zero pixels, whose ranks are noise;
    a rank correlation over all pixels says more about that noise than about the maps' agreement.
    NaN where a map is constant.
    """
    if np.shape(first) != np.shape(second):
        raise ValueError(f"maps must have one shape, got {np.shape(first)} and {np.shape(second)}")
    a = np.asarray(first, dtype=np.float64).reshape(len(first), -1)
    b = np.asarray(second, dtype=np.float64).reshape(len(second), -1)
    # constant: every pixel equal (tested before centring, whose rounding would leave a residue
    # of 1e-17 for a constant such as 0.1 and give it a correlation of +-1e-16)
    varies = (np.ptp(a, axis=1) > 0) & (np.ptp(b, axis=1) > 0)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(varies, (a * b).sum(axis=1) / np.where(varies, norm, 1), np.nan)


# --------------------------------------------------------------------------------------------
# Chapter 08: which explanation is right.


@in_passes
def relevance_rank_accuracy(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's top-k pixels that lie inside its mask, k = the mask's size (Arras et al.
    2022's relevance rank accuracy, chapter 08); NaN for an empty mask.

    Ties are split fairly: the pixels tied at the k-th largest value share the places left in
    the top k, each counting for (places left) / (pixels tied). So a constant or all-zero map
    scores the mask's area share, not 1 or 0, whatever the pixel order.
    """
    maps, masks = _check_finite(maps, masks)
    flat, inside = maps.reshape(len(maps), -1), masks.reshape(len(masks), -1)
    k = inside.sum(axis=1)
    descending = -np.sort(-flat, axis=1)
    threshold = np.take_along_axis(descending, np.maximum(k - 1, 0)[:, None], axis=1)
    above, tied = flat > threshold, flat == threshold
    places_left = k - above.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        hits = (above & inside).sum(axis=1) + (tied & inside).sum(axis=1) * places_left / tied.sum(axis=1)
        return np.where(k > 0, hits / np.maximum(k, 1), np.nan)


def dilate_masks(masks: np.ndarray, radius_px: int) -> np.ndarray:
    """Masks (N, H, W) grown by ``radius_px`` pixels with a disk (Euclidean distance), each image on
    its own (chapter 08): the loose masks that coarse methods such as Grad-CAM are scored on."""
    from scipy.ndimage import binary_dilation

    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}")
    if int(radius_px) != radius_px or radius_px < 0:
        raise ValueError(f"the dilation radius must be a whole number of pixels >= 0, got {radius_px!r}")
    radius_px = int(radius_px)
    if radius_px == 0 or not masks.size:
        return masks.copy()
    rows, cols = np.ogrid[-radius_px:radius_px + 1, -radius_px:radius_px + 1]
    disk = rows ** 2 + cols ** 2 <= radius_px ** 2
    return binary_dilation(masks, structure=disk[None])  # a (1, h, w) element never crosses images


@in_passes
def pointing_game(maps: np.ndarray, masks: np.ndarray, tolerance_px: int = 0) -> np.ndarray:
    """1 where a map's maximum lies inside its mask grown by ``tolerance_px`` pixels (a disk), 0
    where it lies outside (the pointing game, chapter 08); NaN for an empty mask.

    Where several pixels share the maximum, the score is the share of them inside the mask, so a
    constant or all-zero map scores the (dilated) mask's area share instead of a free hit.
    """
    maps, masks = _check_finite(maps, masks)
    masks = dilate_masks(masks, tolerance_px)
    flat, inside = maps.reshape(len(maps), -1), masks.reshape(len(masks), -1)
    at_peak = flat == flat.max(axis=1, keepdims=True, initial=-np.inf)
    hits = (at_peak & inside).sum(axis=1) / np.maximum(at_peak.sum(axis=1), 1)
    return np.where(inside.any(axis=1), hits, np.nan)


@in_passes
def mask_auc(maps: np.ndarray, masks: np.ndarray, within: np.ndarray | None = None) -> np.ndarray:
    """ROC AUC of each map's values as a score for "pixel is in the mask" (chapter 08): 1 when every
    mask pixel outranks every other pixel, 0.5 for a constant map, 0 for the inverted ranking;
    NaN where the mask is empty or covers the whole image. Computed as the Mann-Whitney U
    statistic of the mask's pixels against the others over the number of such pairs
    (``scipy.stats.mannwhitneyu``), which is sklearn's ``roc_auc_score`` (ties counting one half)
    in about half its time: the full profile scores thousands of 480 x 960 maps.

    ``within`` (N, H, W), where given, keeps only its pixels on both sides: with the song mask,
    the diagnostic elements against the shared ones, a score that no longer rewards a map for
    telling song from the empty page that makes up most of a spectrogram."""
    from scipy import stats

    maps, masks = _check_finite(maps, masks)
    flat, inside = maps.reshape(len(maps), -1), masks.reshape(len(masks), -1)
    kept = np.ones_like(inside) if within is None else _check(maps, within, "within")[1].reshape(len(maps), -1)
    scores = np.full(len(maps), np.nan)
    defined = (inside & kept).any(axis=1) & (~inside & kept).any(axis=1)
    for i in np.flatnonzero(defined):
        positives, negatives = flat[i][inside[i] & kept[i]], flat[i][~inside[i] & kept[i]]
        with np.errstate(invalid="ignore", divide="ignore"):  # a constant map's p-value (unused) divides by 0
            u = stats.mannwhitneyu(positives, negatives, method="asymptotic").statistic
        scores[i] = u / (len(positives) * len(negatives))
    return scores


@in_passes
def background_share(maps: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """Share of each map's positive attribution on empty background, the pixels without song
    energy (chapter 08; LIME's failure in the paper). ``empty`` (N, H, W) is decided by the
    caller, e.g. ``images == background level``; NaN for a map without positive attribution."""
    maps, empty = _check(maps, empty, "empty")
    return region_share(maps, empty)


def threshold_shares(maps: np.ndarray, thresholds: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> np.ndarray:
    """Share of each normalised map's pixels strictly above each threshold, (N, len(thresholds))
    (the paper's Figure 6 heat-map analysis, chapter 08). Maps must be in [0, 1]. A threshold is
    compared in the maps' float32, so a pixel stored as 0.4 is not above 0.4 (float32's 0.4 lies a
    hair above the decimal one, and 0.7's a hair below: in float64 the first counted and the second not)."""
    maps = check_normalised_maps(maps)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or not len(thresholds) or not np.isfinite(thresholds).all():
        raise ValueError(f"thresholds must be a non-empty sequence of finite numbers, got {thresholds!r}")
    flat = maps.reshape(len(maps), -1)
    shares = np.empty((len(maps), len(thresholds)))
    for j, threshold in enumerate(thresholds):  # one (N, H*W) comparison at a time keeps memory flat
        shares[:, j] = (flat > flat.dtype.type(threshold)).mean(axis=1) if flat.shape[1] else np.nan
    return shares


# --------------------------------------------------------------------------------------------
# Means with confidence intervals, per group.


def bootstrap_seeding(seed: int) -> dict[str, Any]:
    """The keyword that seeds ``scipy.stats.bootstrap`` with a generator from ``seed``: ``rng`` from
    SciPy 1.15 on, ``random_state`` before it (the project allows SciPy 1.11 and later)."""
    from scipy.stats import bootstrap

    generator = np.random.default_rng(seed)
    return {"rng": generator} if "rng" in inspect.signature(bootstrap).parameters else {"random_state": generator}


#: How :func:`mean_with_interval` draws its interval: Student's t (the default: the chapters score
#: 8 to 16 explained clips, where a bootstrap's comes out too narrow), a percentile bootstrap, or
#: Wilson's interval of a proportion (a share of hits, such as the pointing game).
INTERVAL_METHODS = ("t", "bootstrap", "proportion")


def wilson_interval(share: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``share`` observed on ``n`` trials: scipy's
    ``binomtest(k, n).proportion_ci(method="wilson")`` for a whole number of hits k = share x n,
    written out so that a share of fractional hits (a pointing game's ties) has one too."""
    from scipy import stats

    if not 0 <= share <= 1:
        raise ValueError(f"a proportion lies in [0, 1], got {share!r}")
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    spread = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    centre = share + z * z / (2 * n)
    return float((centre - spread) / (1 + z * z / n)), float((centre + spread) / (1 + z * z / n))


def mean_with_interval(values: np.ndarray, confidence: float = 0.95, n_boot: int = 2000,
                       seed: int = 0, method: str = "t",
                       bounds: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """(mean, low, high) of the finite values, with Student's t-interval of the mean
    (``scipy.stats.t``), which widens as it should with a handful of values (the chapters explain
    8 to 16 clips), or with ``method="bootstrap"`` a percentile bootstrap interval
    (``scipy.stats.bootstrap``, ``n_boot`` resamples, repeatable with ``seed``), which comes out
    too narrow there: simulated on skewed scores (Beta(0.5, 3), 2,000 draws) of 8 and 16 clips, a
    95 % percentile interval held the mean 85 % and 90 % of the time, the t-interval 89 % and 92 %. ``bounds`` are the
    score's possible range (e.g. (-1, 1) for a correlation): the interval is cut to it, since
    the mean cannot lie outside.

    ``method="proportion"`` is for a share of hits, values in [0, 1] (the pointing game, whose
    ties score a fraction of a hit): Wilson's score interval of a proportion at the values' mean,
    which is not empty where every clip missed (0 of 16: up to 19 %), as an interval of no spread
    would be. The caller says which scores are proportions; a score is not one because its values
    happen to be 0 or 1. NaN values (undefined scores, e.g. all-zero maps) are left out; an
    infinite one is an error (no score the book computes can be). No values: all NaN; one value:
    no interval (NaN); otherwise, with ``t`` or ``bootstrap``, the same value on every clip has
    no spread, and the interval is the value itself.
    """
    from scipy import stats

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot!r}")
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {', '.join(INTERVAL_METHODS)}, got {method!r}")
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if np.isinf(values).any():
        raise ValueError(f"{int(np.isinf(values).sum())} of the {len(values)} values are infinite: a mean "
                         "and its interval need finite scores")
    if not len(values):
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    if method == "proportion":
        if (values < 0).any() or (values > 1).any():
            raise ValueError(f"a proportion lies in [0, 1]: its values are hits (1), misses (0) or shares of a hit, "
                             f"got values from {values.min():g} to {values.max():g}")
        low, high = wilson_interval(mean, len(values), confidence)
    elif np.ptp(values) == 0:
        low = high = mean
    elif method == "t":
        low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=stats.sem(values))
    else:
        interval = stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                                   method="percentile", vectorized=True, **bootstrap_seeding(seed)).confidence_interval
        low, high = interval.low, interval.high
    if bounds is not None:
        low, high = np.clip([low, high], *bounds)
    return mean, float(low), float(high)


def ratio_of_means_with_interval(numerator: np.ndarray, denominator: np.ndarray, confidence: float = 0.95,
                                 n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(ratio, low, high): the mean of ``numerator`` over the mean of ``denominator``, two scores of
    the same clips (e.g. a map's relevance on the diagnostic elements and on the shared ones,
    chapter 08), with a bootstrap percentile interval that resamples clips, keeping each clip's
    pair together (``scipy.stats.bootstrap``, repeatable with ``seed``). Clips with a NaN in either
    score are left out; fewer than two left, or a zero denominator mean: NaN. A resample whose
    denominators are all 0 has an infinite ratio (a map with relevance on the diagnostic elements
    and none on the shared ones is infinitely more diagnostic), so where such resamples pass the
    interval's tail, the interval is unbounded: its high end is ``inf``."""
    from scipy.stats import bootstrap

    numerator, denominator = (np.asarray(v, dtype=np.float64).ravel() for v in (numerator, denominator))
    if len(numerator) != len(denominator):
        raise ValueError(f"numerator and denominator must score the same clips, got {len(numerator)} and "
                         f"{len(denominator)} values")
    keep = ~(np.isnan(numerator) | np.isnan(denominator))
    numerator, denominator = numerator[keep], denominator[keep]
    if len(numerator) < 2 or denominator.mean() == 0:
        return float("nan"), float("nan"), float("nan")
    ratio = float(numerator.mean() / denominator.mean())
    if np.ptp(numerator) == 0 and np.ptp(denominator) == 0:
        return ratio, ratio, ratio

    def statistic(top, bottom, axis=-1):
        with np.errstate(divide="ignore", invalid="ignore"):  # x / 0: +-inf; 0 / 0: NaN
            return top.mean(axis=axis) / bottom.mean(axis=axis)

    with warnings.catch_warnings():  # interpolating next to an infinite resample: taken below
        warnings.simplefilter("ignore", RuntimeWarning)
        result = bootstrap((numerator, denominator), statistic, paired=True, vectorized=True, n_resamples=n_boot,
                           confidence_level=confidence, method="percentile", **bootstrap_seeding(seed))
    distribution = result.bootstrap_distribution
    if np.isfinite(distribution).all():
        return ratio, float(result.confidence_interval.low), float(result.confidence_interval.high)
    # the percentile interval interpolates between neighbouring resamples, which is undefined next
    # to an infinite one; the resamples' own quantiles are not (NaN resamples, 0 / 0, left out)
    tail = round((1 - confidence) / 2, 12)  # 0.025, not 0.025000000000000022: the 50th of 2000, not the 51st
    low, high = np.quantile(distribution[~np.isnan(distribution)], [tail, 1 - tail], method="inverted_cdf")
    return ratio, float(low), float(high)


def summarise_scores(table: pd.DataFrame, by: list[str], columns: list[str], confidence: float = 0.95,
                     n_boot: int = 2000, seed: int = 0, method: str = "t",
                     bounds: tuple[float, float] | None = None, proportions: Iterable[str] = ()) -> pd.DataFrame:
    """Mean, interval (``ci_low``, ``ci_high``; Student's t or a bootstrap by ``method``, Wilson's
    for the columns named in ``proportions``; cut to ``bounds``: see :func:`mean_with_interval`),
    ``n`` (finite values) and ``n_undefined`` (NaN values, such as
    scores of all-zero maps) of each score column per group of ``by``, e.g. per method and dialect
    (chapter 08). One row per group and score, named in column ``score``."""
    import pandas as pd

    missing = [name for name in [*by, *columns] if name not in table.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table, which has {list(table.columns)}")
    groups = table.groupby(list(by), sort=True, dropna=False) if by else [((), table)]
    rows = []
    for keys, group in groups:
        keys = keys if isinstance(keys, tuple) else (keys,)
        for column in columns:
            values = pd.to_numeric(group[column], errors="raise").to_numpy(dtype=np.float64)
            mean, low, high = mean_with_interval(values, confidence, n_boot, seed,
                                                 "proportion" if column in proportions else method, bounds)
            n_undefined = int(np.isnan(values).sum())
            rows.append({**dict(zip(by, keys)), "score": column, "mean": mean, "ci_low": low, "ci_high": high,
                         "n": len(values) - n_undefined, "n_undefined": n_undefined})
    return pd.DataFrame(rows, columns=[*by, "score", "mean", "ci_low", "ci_high", "n", "n_undefined"])


def listing(names: list[str], bold: bool = False) -> str:
    """Names as prose: "A", "A and B", "A, B and C" (each in Markdown bold with ``bold``), for the
    sentences the chapters build from a run's results."""
    words = [f"**{name}**" if bold else str(name) for name in names]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


ROUNDING = 1e-12  # spreads below this share of the scores' size are rounding (paired_comparison)


def paired_comparison(table: "pd.DataFrame", first: str, second: str, score: str = "score",
                      by: str = "map", unit: str = "clip", confidence: float = 0.95) -> dict[str, Any]:
    """Whether map ``first`` beats map ``second`` on ``score`` over the same clips (chapters 08,
    10-12): each clip's mean score under each map (``table`` has columns ``by``, ``unit`` and
    ``score``), their differences, and the Student-t interval of the mean difference
    (``scipy.stats.ttest_rel``). ``result`` is "won" where the interval lies above 0, "lost"
    where below, else "undecided", with ``p_value`` the two-sided t-test's; a difference that is
    the same on every clip (up to :data:`ROUNDING`) leaves a t-test no spread to work with, and is
    decided by the exact sign-flip test instead (p = 2 / 2^n for n clips, 1 for no difference).
    That is a single comparison's result; a claim's family of comparisons is decided again together by
    :func:`decide_family`. With few clips the t-interval widens as it should,
    where a percentile bootstrap's interval comes out too narrow and decides too often."""
    from scipy.stats import ttest_rel

    per_unit = table[table[by].isin([first, second])].groupby([by, unit])[score].mean().unstack(by).dropna()
    if len(per_unit) < 2:
        raise ValueError(f"a paired comparison needs at least 2 {unit}s scored under both {first!r} and {second!r}, "
                         f"got {len(per_unit)}")
    difference = per_unit[first] - per_unit[second]
    # the same difference on every clip leaves no spread for a t-test; "the same" up to rounding, since
    # clip means of discrete scores (1/3 - 0 and 2/3 - 1/3) differ in their last bit, and a t-test
    # reads that bit as a spread so small that three clips come out at p ~ 1e-33
    rounding = ROUNDING * np.abs(per_unit.to_numpy()).max()
    if np.ptp(difference.to_numpy()) <= rounding:
        low = high = float(difference.mean()) if abs(difference.mean()) > rounding else 0.0
        # the exact sign-flip test: of the 2^n ways to flip the n differences' signs, 2 put every one on
        # one side, so n clips that all moved the same way are evidence only when 2 / 2^n is small
        p_value = 1.0 if low == 0 else min(1.0, 2.0 * 0.5 ** len(difference))
        result = "undecided" if p_value >= 1 - confidence else ("won" if low > 0 else "lost")
    else:
        test = ttest_rel(per_unit[first], per_unit[second])
        interval = test.confidence_interval(confidence)
        low, high, p_value = float(interval.low), float(interval.high), float(test.pvalue)
        result = {"above": "won", "below": "lost", "within": "undecided"}[interval_side(low, high)]
    return {"difference": float(difference.mean()), "low": low, "high": high, "n": len(per_unit), "p_value": p_value,
            "result": result}


def holm_adjusted(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979) of a family of tests, in their order: the
    k-th smallest p times the number of tests not yet passed (m - k + 1), kept from falling below
    the one before it, capped at 1. Deciding every test whose adjusted p lies below alpha keeps the
    chance of *any* false call in the family at alpha or less, whatever the tests' dependence —
    where each test at alpha alone would make one somewhere ever more likely as the family grows."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def paired_comparisons(table: "pd.DataFrame", contests: dict[str, Iterable[str]], score: str = "score",
                       by: str = "map", unit: str = "clip", confidence: float = 0.95) -> "pd.DataFrame":
    """Every :func:`paired_comparison` a claim makes on one table: for each map of ``contests``,
    against each of the maps it names. One row per comparison: ``map``, ``against`` and the
    comparison's ``difference``, ``low``, ``high``, ``n``, ``p_value`` and (each on its own)
    ``result``; :func:`decide_family` decides them together."""
    import pandas as pd

    rows = [{"map": first, "against": other,
             **paired_comparison(table, first, other, score=score, by=by, unit=unit, confidence=confidence)}
            for first, others in contests.items() for other in others]
    if not rows:
        raise ValueError("a family of comparisons needs at least one map with one map to be compared with")
    return pd.DataFrame(rows)


def decide_family(comparisons: "pd.DataFrame", alpha: float = 0.05) -> "pd.DataFrame":
    """The comparisons that test one claim (rows of :func:`paired_comparisons`, from one table or
    several), decided together: ``p_holm`` is each one's :func:`holm_adjusted` p-value over the
    whole family, and ``result`` "won" (or "lost") where it lies below ``alpha`` with the
    difference above (or below) 0, else "undecided". A claim that counts many comparisons then
    carries at most an ``alpha`` chance of resting on any false call (chapters 08 and 10)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    decided = comparisons.copy()
    decided["p_holm"] = holm_adjusted(decided["p_value"])
    below = decided["p_holm"] < alpha
    decided["result"] = np.where(below & (decided["difference"] > 0), "won",
                                 np.where(below & (decided["difference"] < 0), "lost", "undecided"))
    return decided


#: A single comparison's result as a comparison table says it (:func:`comparison_table`).
COMPARISON_WORDS = {"won": "beats", "lost": "is beaten", "undecided": "not told apart"}


def comparison_table(families: dict[str, "pd.DataFrame"], decimals: int = 3, name: str = "claim") -> "pd.DataFrame":
    """Decided comparisons (:func:`decide_family`) as one table to show, grouped under the keys
    of ``families`` (a claim, or a check of one claim; the index level ``name``): the two maps,
    the mean per-clip difference with its 95 % t-interval, the number of clips (or other units), the
    raw and the Holm-adjusted p-value, and the comparison's result in words
    (:data:`COMPARISON_WORDS`: "beats", "is beaten", "not told apart"; "won" and "lost" are kept
    for a map's outcome over its comparisons) (chapters 08 and 10)."""
    import pandas as pd

    rows = [{name: key, "map": row["map"], "against": row["against"],
             "difference [95 % t-interval, unadjusted]": f"{row['difference']:+.{decimals}f} [{row['low']:+.{decimals}f}, "
                                           f"{row['high']:+.{decimals}f}]",
             "clips": row["n"], "p": f"{row['p_value']:.2g}", "p (Holm)": f"{row['p_holm']:.2g}",
             "comparison": COMPARISON_WORDS[row["result"]]}
            for key, family in families.items() for row in family.to_dict("records")]
    return pd.DataFrame(rows).set_index([name, "map", "against"])


def outcomes_per_map(comparisons: "pd.DataFrame", keys: Iterable[str] = ("map",)) -> "pd.Series":
    """Each map's outcome against its group from decided comparisons (:func:`decide_family`), per
    ``keys``: "won" where it beat every map it was set against, "lost" where any beat it, else
    "undecided". A claim that one map is better than a group is tested once per map, not once
    per pair: beating one of two would otherwise count as a win."""
    def outcome(results: "pd.Series") -> str:
        return "won" if (results == "won").all() else "lost" if (results == "lost").any() else "undecided"

    return comparisons.groupby(list(keys), sort=False)["result"].agg(outcome)


def against_each(table: "pd.DataFrame", first: str, others: Iterable[str], score: str = "score",
                 by: str = "map", unit: str = "clip", alpha: float = 0.05) -> str:
    """One map against several others on the same clips (chapter 08): "won" where it beats every
    one of ``others``, "lost" where any of them beats it, else "undecided" — the comparisons
    decided together, Holm-adjusted (:func:`decide_family`, :func:`outcomes_per_map`)."""
    others = list(others)
    if not others:
        raise ValueError(f"{first!r} needs at least one map to be compared with")
    family = decide_family(paired_comparisons(table, {first: others}, score=score, by=by, unit=unit), alpha)
    return str(outcomes_per_map(family)[first])


def correlation_with_interval(correlations: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """The typical value of several correlations (one per clip) and its ``confidence`` interval
    (chapter 07): Student's t-interval of their mean on Fisher's z scale (``arctanh``), turned
    back into correlations, so that it stays inside (-1, 1) however close to 1 they lie. The
    centre is the back-transformed mean z. At least two finite values in (-1, 1) are needed; with
    no spread the interval is the value itself."""
    from scipy import stats

    values = np.asarray(correlations, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if len(values) < 2:
        raise ValueError(f"an interval needs at least 2 finite correlations, got {len(values)}")
    if np.any(np.abs(values) >= 1):
        raise ValueError("correlations of exactly ±1 have no Fisher z; leave those clips out or report them apart")
    z = np.arctanh(values)
    mean = float(np.mean(z))
    if np.ptp(z) == 0:
        return float(np.tanh(mean)), float(np.tanh(mean)), float(np.tanh(mean))
    low, high = stats.t.interval(confidence, len(z) - 1, loc=mean, scale=stats.sem(z))
    return float(np.tanh(mean)), float(np.tanh(low)), float(np.tanh(high))


def permutation_p_text(p_value: float, n_draws: int, alpha: float = 0.05) -> str:
    """A permutation (or Monte Carlo) test's p-value, (1 + draws at least as extreme) / (1 +
    ``n_draws``), as text (chapter 09): two decimals below 100 draws, three from 100, and more
    where fewer would round it onto the other side of ``alpha`` (0.04995 reads "p = 0.04995", not
    "p = 0.050", since it counts as below 0.05); at its floor 1 / (1 + n_draws) "p ≤" the floor
    rounded up to two significant digits, since that few draws cannot show a smaller p."""
    if int(n_draws) != n_draws or n_draws < 1:
        raise ValueError(f"n_draws must be a whole number of at least 1, got {n_draws!r}")
    floor = 1 / (1 + int(n_draws))
    if p_value <= floor * (1 + 1e-9):
        step = 10.0 ** (np.floor(np.log10(floor)) - 1)
        return f"p ≤ {np.ceil(floor / step - 1e-9) * step:.2g}"
    decimals = 3 if n_draws >= 100 else 2
    while decimals < 8 and (round(p_value, decimals) < alpha) != (p_value < alpha):
        decimals += 1
    return f"p = {p_value:.{decimals}f}"


def interval_side(low: float, high: float, value: float = 0.0) -> str:
    """Where an interval lies against ``value``: "above" (its low end is), "below" (its high end
    is) or "within" (it holds the value, or is NaN). The book calls a difference or a share
    larger or smaller than a reference only where its interval says so (chapters 03, 07, 08, the
    scorecard)."""
    return "above" if low > value else "below" if high < value else "within"


def comparison_verdict(wins: int, losses: int) -> str:
    """A claim's verdict from the outcomes that test it (each won, lost or undecided: by
    :func:`decide_family` and :func:`outcomes_per_map` in chapters 08 and 10, by each dialect's
    paired interval in chapter 09): "confirmed" when some are won and none lost,
    "refuted" when some are lost and none won, "qualified" when some go each way, "undecided" when
    none is told apart. One rule for every claim, symmetric: a single loss refutes no more than a
    single win confirms."""
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses are counts, got {wins!r} and {losses!r}")
    if wins and losses:
        return "qualified"
    return "confirmed" if wins else "refuted" if losses else "undecided"


def dialect_gap_text(values, dialects, birds, ratio: float = 1.5, alpha: float = 0.05) -> str:
    """A sentence on a score per clip (e.g. relevance mass) split by predicted dialect (chapters
    04, 05 and 07): the clips' median per dialect (with their number: chapter 07 scores fewer clips
    than 04 and 05) and whether the median over all clips hides a
    gap between them. A gap needs both size — the larger median at least ``ratio`` times the
    smaller — and evidence: a bird's clips share its voice, so each bird's mean per dialect is one
    value, and the dialects' birds are compared by Mann-Whitney's test (``scipy.stats``); p at
    ``alpha`` or above says the gap is not established, not that there is none. Medians within
    ``ratio`` are said to be so, not "alike". NaN scores (all-zero maps) are left out; empty with
    fewer than two dialects."""
    import pandas as pd
    from scipy import stats

    table = pd.DataFrame({"value": np.asarray(values, dtype=np.float64).ravel(), "dialect": np.asarray(dialects).ravel(),
                          "bird": np.asarray(birds).ravel()}).dropna(subset=["value"])
    medians = table.groupby("dialect")["value"].median()
    if len(medians) < 2:
        return ""
    counts = table.groupby("dialect").size()
    each = listing([f"{value:.1%} for the {counts[dialect]} clips predicted {dialect}"
                    for dialect, value in medians.items()])
    if medians.min() > 0 and medians.max() / medians.min() < ratio:
        return (f"The {'two ' if len(medians) == 2 else ''}dialects' medians lie within a factor of {ratio:g} "
                f"of each other: {each}.")
    by_bird = table.groupby(["dialect", "bird"])["value"].mean()
    groups = [by_bird.loc[dialect].to_numpy() for dialect in medians.index]
    if len(groups) != 2 or min(len(group) for group in groups) < 2:
        reason = "too few birds to test it" if len(groups) == 2 else f"the test compares two dialects, not {len(groups)}"
        return f"The median over all clips may hide a gap between the dialects: {each} ({reason})."
    p_value = float(stats.mannwhitneyu(*groups).pvalue)
    if p_value < alpha:
        return (f"The median over all clips hides a gap between the dialects: {each} (the birds' means, "
                f"Mann-Whitney p = {p_value:.2g}).")
    return (f"The dialects' medians differ, {each}, but over the birds the gap is not established "
            f"(Mann-Whitney p = {p_value:.2g}).")


def interval_table(summary: pd.DataFrame, index: str | list[str], columns: str | list[str] = "score",
                   digits: int = 2) -> pd.DataFrame:
    """A :func:`summarise_scores` table as the book prints it: "mean [low, high]" strings with
    ``index`` down and ``columns`` across (chapters 08, 10-12). A cell whose group had undefined
    values (NaN: an all-zero map's share, a constant map's correlation) says over how many of its
    clips it was taken, "(n of N)": its interval is over fewer clips than its neighbours'."""
    text = (summary["mean"].map(f"{{:.{digits}f}}".format) + " [" + summary["ci_low"].map(f"{{:.{digits}f}}".format)
            + ", " + summary["ci_high"].map(f"{{:.{digits}f}}".format) + "]")
    if "n_undefined" in summary:
        counted = summary["n"].astype(int).astype(str) + " of " + (summary["n"] + summary["n_undefined"]).astype(int).astype(str)
        text = text.where(summary["n_undefined"] == 0, text + " (" + counted + ")")
    return summary.assign(value=text).pivot(index=index, columns=columns, values="value")
