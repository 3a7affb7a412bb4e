"""Sanity and faithfulness of attribution maps, without ground truth (chapter 10).

Chapter 08 scores maps against the surrogate's diagnostic mask. Real recordings have no mask, and a
map can match the mask without reflecting the model, so chapter 10 asks two questions of the model
itself:

- **faithfulness** — does the map rank first the pixels the model relies on? The deletion and
  insertion curves (Samek et al. 2017's pixel flipping; Petsiuk et al. 2018) remove (or restore)
  the map's top-ranked pixels step by step and follow the model's probability of the explained
  class: :func:`deletion_curve`, :func:`curve_auc`, with :func:`random_maps` as the floor any
  method must beat.
- **sanity** — does the map depend on the model at all? The cascading model-randomisation test
  of Adebayo et al. 2018 re-initialises the network from the top down and measures how similar
  the maps stay (:func:`randomised_models`, :func:`randomisation_test`, :func:`map_similarity`);
  a map that stays the same explains the image, not the model. :func:`noise_stability` and
  :func:`seed_stability` measure how much a map moves under invisible input noise and across
  models trained from other seeds.

Pixels are "removed" by setting them to the image's own background level
(:func:`wrenlib.explain.background_levels`: 0 on black, 1 on white), the value an empty
spectrogram pixel has and the one the CNN's standardisation maps to zero.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .explain import _as_batch, _batches, background_levels, explain, image_targets
from .metrics import map_correlation
from .model import fast_forward
from .runtime import seeded

if TYPE_CHECKING:  # pandas is imported where it is used, as in wrenlib.explain
    import pandas as pd

CURVE_MODES = ("deletion", "insertion")
SIMILARITY_MEASURES = ("spearman_abs", "spearman", "ssim", "pearson")
TIE_SEED = 0  # fixes the order in which pixels of equal map value are removed


# --------------------------------------------------------------------------------------------
# Deletion and insertion curves.


def _model_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """``device`` if given, else where the model's weights (or buffers) live, else the CPU."""
    if device is not None:
        return torch.device(device)
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _checked_maps(maps: np.ndarray | torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Maps as a float32 tensor (N, H, W) of the images' shape, without NaN or infinite values."""
    maps = torch.as_tensor(maps.detach().cpu() if isinstance(maps, torch.Tensor) else np.asarray(maps)).float()
    if tuple(maps.shape) != tuple(shape):
        raise ValueError(f"maps must be (N, H, W) = {tuple(shape)} like the images, got shape {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise ValueError("maps hold NaN or infinite values; a ranking of those pixels means nothing")
    return maps


def _pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Each pixel's place in its map's ranking, highest value first (0 = removed first), (N, H*W).

    Ties are broken by one fixed pseudo-random order of the pixel positions (seed
    :data:`TIE_SEED`), the same for every map: deterministic, and a constant (e.g. all-zero) map
    removes its pixels in a scattered order instead of sweeping the image from one corner.
    """
    n_maps, n_pixels = len(maps), maps[0].numel() if len(maps) else 0
    shuffle = torch.randperm(n_pixels, generator=torch.Generator().manual_seed(TIE_SEED)).to(maps.device)
    flat = maps.reshape(n_maps, n_pixels)
    order = shuffle[torch.argsort(flat[:, shuffle], dim=1, descending=True, stable=True)]
    places = torch.arange(n_pixels, device=maps.device).expand(n_maps, n_pixels)
    return torch.empty_like(order).scatter_(1, order, places)


def _perturb(x: torch.Tensor, ranks: torch.Tensor, counts: torch.Tensor, levels: torch.Tensor,
             mode: str) -> torch.Tensor:
    """Images (b, 1, H, W) with their ``counts`` (b,) top-ranked pixels at the background level
    (deletion), or with only those pixels kept on an all-background image (insertion)."""
    chosen = (ranks < counts[:, None]).view_as(x)
    background = levels.to(x.dtype).view(-1, 1, 1, 1)
    return torch.where(chosen, background, x) if mode == "deletion" else torch.where(chosen, x, background)


def _check_mode(mode: str) -> None:
    if mode not in CURVE_MODES:
        raise ValueError(f"mode must be one of {', '.join(CURVE_MODES)}, got {mode!r}")


def _pixel_counts(fractions: np.ndarray, n_pixels: int) -> np.ndarray:
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or not np.isfinite(fractions).all() or fractions.min(initial=0) < 0 \
            or fractions.max(initial=0) > 1:
        raise ValueError(f"fractions must be a 1-d sequence of shares in [0, 1], got {fractions!r}")
    return np.rint(fractions * n_pixels).astype(np.int64)


def perturbed_images(images: np.ndarray | torch.Tensor, maps: np.ndarray, fractions: np.ndarray,
                     mode: str = "deletion") -> np.ndarray:
    """The images a deletion (or insertion) curve shows the model, (N, len(fractions), H, W)
    (chapter 10's figure of an image losing its top-ranked pixels). ``fractions`` are shares of
    the pixels, rounded to whole pixels; the ranking is :func:`deletion_curve`'s."""
    _check_mode(mode)
    x = _as_batch(images).cpu()  # for a figure: on the CPU, where the ranks and counts are
    n, _, height, width = x.shape
    ranks = _pixel_ranks(_checked_maps(maps, (n, height, width)))
    counts = torch.from_numpy(_pixel_counts(fractions, height * width))
    levels = background_levels(x)
    frames = [_perturb(x, ranks, count.expand(n), levels, mode)[:, 0] for count in counts]
    return torch.stack(frames, dim=1).numpy() if frames else np.zeros((n, 0, height, width), np.float32)


def deletion_curve(model: nn.Module, images: np.ndarray | torch.Tensor, maps: np.ndarray,
                   targets: np.ndarray | int | None = None, steps: int = 20, batch_size: int = 64,
                   mode: str = "deletion", device: torch.device | str | None = None, up_to: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The deletion (or insertion) curve of each image under its map (chapter 10).

    Each image's pixels are ranked by its map (N, H, W), highest first (ties: see
    :func:`_pixel_ranks`). At step k of ``steps`` the top k / steps share of the pixels is
    *removed* — set to the image's background level — (``mode="deletion"``), or, starting from the
    all-background image, *restored* (``mode="insertion"``); the score is the model's softmax
    probability of ``targets`` (default: the class it predicts on the original image). All
    N x (steps + 1) perturbed images are built on the model's device and evaluated in batches of
    ``batch_size``, so a map's curve does not depend on the batch.

    ``up_to`` (0 < up_to <= 1) ends the curve after that share of the pixels, in ``steps`` equal
    steps: on a spectrogram the song is a few per cent of the pixels, and a curve over all of them
    spends most of its steps on an image whose song is already gone.

    Returns ``fractions`` (steps + 1,) from 0 to ``up_to`` and ``scores`` (N, steps + 1). Deletion starts
    at the probability on the original image and ends with the share ``up_to`` of the pixels set to
    the background (the all-background image when ``up_to=1``); insertion starts from the
    all-background image and ends with that share of the pixels put back. A faithful map gives a
    *low* deletion area (:func:`curve_auc`: the probability falls as soon as the top pixels go)
    and a *high* insertion area.
    """
    _check_mode(mode)
    if int(steps) != steps or steps < 1 or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"steps and batch_size must be whole numbers >= 1, got {steps!r} and {batch_size!r}")
    steps, batch_size = int(steps), int(batch_size)
    if not 0 < up_to <= 1:
        raise ValueError(f"up_to must be a share of the pixels in (0, 1], got {up_to!r}")
    device = _model_device(model, device)
    model = model.to(device).eval()  # note: moves the caller's model, as wrenlib.explain.explain does
    x = _as_batch(images).to(device)
    n, _, height, width = x.shape
    maps = _checked_maps(maps, (n, height, width)).to(device)
    targets = image_targets(model, x, targets, batch_size)
    fractions = np.linspace(0.0, float(up_to), steps + 1)
    counts = torch.from_numpy(_pixel_counts(fractions, height * width)).to(device)
    levels = background_levels(x)
    wanted = torch.as_tensor(np.ascontiguousarray(targets), device=device)
    per_image = steps + 1
    scores = torch.empty(n * per_image, device=device)
    network = fast_forward(model)  # only the outputs are needed
    with torch.no_grad():
        for part in _batches(n * per_image, batch_size):  # image-major: one batch spans few images
            flat = torch.arange(part.start, part.stop, device=device)
            image, step = flat // per_image, flat % per_image
            first = part.start // per_image
            ranks = _pixel_ranks(maps[first:(part.stop - 1) // per_image + 1])[image - first]
            probabilities = torch.softmax(network(_perturb(x[image], ranks, counts[step], levels[image], mode)), dim=1)
            scores[part] = probabilities[torch.arange(len(flat), device=device), wanted[image]]
    return fractions, scores.view(n, per_image).double().cpu().numpy()


def curve_auc(fractions: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Area under each curve (N,) per unit of the fractions' range, by the trapezoid rule
    (``scipy.integrate.trapezoid``; chapter 10): the mean score over the range, which is the plain
    area for fractions from 0 to 1. Deletion: lower is more faithful; insertion: higher is more
    faithful."""
    from scipy.integrate import trapezoid

    fractions = np.asarray(fractions, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if fractions.ndim != 1 or scores.ndim != 2 or scores.shape[1] != len(fractions):
        raise ValueError(f"scores must be (N, {len(fractions)}) for {len(fractions)} fractions, got shape "
                         f"{scores.shape}")
    if len(fractions) < 2:
        raise ValueError(f"a curve needs at least two fractions to have an area, got {len(fractions)}")
    if np.any(np.diff(fractions) <= 0):
        raise ValueError("fractions must increase strictly")
    return trapezoid(scores, fractions, axis=1) / (fractions[-1] - fractions[0])


def faithfulness_scores(model: nn.Module, images: np.ndarray | torch.Tensor, maps_by_name: dict[str, np.ndarray],
                        targets: np.ndarray | int | None = None, steps: int = 10, up_to: float = 0.1,
                        device: torch.device | str | None = None
                        ) -> tuple[np.ndarray, dict[tuple[str, str], np.ndarray], "pd.DataFrame"]:
    """Deletion and insertion of every map in ``maps_by_name`` over the same images (chapter 10,
    chapter 12): the checks that need no ground truth, only the model.

    Returns the ``fractions``, the curves by ``(name, mode)`` (N, steps + 1), and a table with one
    row per map and image (``map``, ``position`` in ``images``, ``deletion AUC``,
    ``insertion AUC`` and ``insertion - deletion``; areas by :func:`curve_auc`).
    """
    import pandas as pd

    curves, frames = {}, []
    for name, values in maps_by_name.items():
        for mode in ("deletion", "insertion"):
            fractions, curves[(name, mode)] = deletion_curve(model, images, values, targets=targets, steps=steps,
                                                             mode=mode, device=device, up_to=up_to)
        frames.append(pd.DataFrame({"map": name, "position": np.arange(len(values)),
                                    "deletion AUC": curve_auc(fractions, curves[(name, "deletion")]),
                                    "insertion AUC": curve_auc(fractions, curves[(name, "insertion")])}))
    table = pd.concat(frames, ignore_index=True)
    table["insertion - deletion"] = table["insertion AUC"] - table["deletion AUC"]
    return fractions, curves, table


def random_maps(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Uniform noise maps (N, H, W) in [0, 1), float32: the floor of the deletion and insertion
    curves, a ranking that knows nothing (chapter 10). Repeatable with ``seed``."""
    if len(shape) != 3:
        raise ValueError(f"shape must be (N, H, W), got {shape!r}")
    return np.random.default_rng(seed).random(tuple(shape), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Cascading model randomisation (Adebayo et al. 2018).


def randomisable_layers(model: nn.Module) -> list[str]:
    """Names (``named_modules``) of the layers the cascading randomisation re-initialises, top
    first: every module with weights of its own and a ``reset_parameters`` method, in the reverse
    of their definition order (for :class:`~wrenlib.model.DialectCNN`: the classifier's linear
    layers from the last, then the convolutions of block 5 down to block 1; chapter 10)."""
    names = [name for name, module in model.named_modules()
             if name and callable(getattr(module, "reset_parameters", None))
             and next(module.parameters(recurse=False), None) is not None]
    return names[::-1]


def randomisable_layer_labels(model: nn.Module) -> list[str]:
    """Readable names of :func:`randomisable_layers`, in the same order, for plots: "dense 3
    (output)", "dense 2", ..., "conv 5", ..., "conv 1" for the book's CNN (other layer types keep
    their module names)."""
    names = randomisable_layers(model)
    kinds = {nn.Linear: "dense", nn.Conv2d: "conv"}
    totals = {kind: sum(type(model.get_submodule(n)) is cls for n in names) for cls, kind in kinds.items()}
    seen = dict.fromkeys(totals, 0)
    labels = []
    for name in names:
        kind = kinds.get(type(model.get_submodule(name)))
        if kind is None:
            labels.append(name)
            continue
        number = totals[kind] - seen[kind]
        seen[kind] += 1
        labels.append(f"{kind} {number}" + (" (output)" if kind == "dense" and seen[kind] == 1 else ""))
    return labels


def randomised_models(model: nn.Module, seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """(layer name, model copy) pairs of the cascading model-randomisation test (Adebayo et al.
    2018; chapter 10): the k-th copy has the top k layers of :func:`randomisable_layers`
    re-initialised by their own ``reset_parameters()``, all below as trained.

    Each layer is re-initialised under torch seed ``seed`` + its place in the cascade (CUDA's
    generator on a GPU, so CPU and GPU copies differ), inside :func:`wrenlib.runtime.seeded`: the
    caller's random state is untouched. ``model`` itself is never modified; buffers (the input
    standardisation) are kept. Every copy is independent of the others and in eval mode.
    """
    names = randomisable_layers(model)
    if not names:
        raise ValueError(f"{type(model).__name__} has no layer with weights and reset_parameters() to randomise")

    def cascade() -> Iterator[tuple[str, nn.Module]]:
        working = copy.deepcopy(model).eval()
        for place, name in enumerate(names):
            layer = working.get_submodule(name)
            cuda = sorted({p.device for p in layer.parameters() if p.is_cuda}, key=str)
            with seeded(seed + place, cuda), torch.no_grad():
                layer.reset_parameters()
            yield name, (working if place == len(names) - 1 else copy.deepcopy(working))

    return cascade()


# --------------------------------------------------------------------------------------------
# Similarity of two maps of the same image.


def _unit_range(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each map scaled to [0, 1] by its own minimum and maximum, and which maps are constant."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    constant = span[:, 0, 0] == 0
    return (maps - low) / np.where(span > 0, span, 1.0), constant


def _ssim(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """skimage's SSIM of each pair of maps after scaling each to [0, 1] (so ``data_range=1``)."""
    from skimage.metrics import structural_similarity

    first, constant_first = _unit_range(first)
    second, constant_second = _unit_range(second)
    values = np.full(len(first), np.nan)
    for i in np.flatnonzero(~(constant_first | constant_second)):  # skimage takes one pair at a time
        values[i] = structural_similarity(first[i], second[i], data_range=1.0)
    return values


def map_similarity(first: np.ndarray, second: np.ndarray, within: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """How alike two maps of each image are, one value per pair of (N, H, W) maps (chapter 10),
    by the measures of Adebayo et al. 2018 (:data:`SIMILARITY_MEASURES`):

    - ``spearman_abs``: Spearman rank correlation of the absolute values (sign flips ignored);
    - ``spearman``: Spearman rank correlation of the raw values;
    - ``ssim``: structural similarity (``skimage.metrics.structural_similarity``) of the maps,
      each scaled to [0, 1] by its own minimum and maximum first, so ``data_range`` is 1;
    - ``pearson``: :func:`wrenlib.metrics.map_correlation`.

    Spearman's rho is Pearson's r of the ranks (``scipy.stats.rankdata``, ties averaged), as
    ``scipy.stats.spearmanr`` computes it, here for all pairs at once. NaN where a map is constant.

    ``within`` (N, H, W) boolean restricts the rank and Pearson measures to those pixels of each
    image (e.g. the song's pixels): on a spectrogram most pixels are empty background, where a
    reference-based map is exactly 0 whatever the model, and they would dominate a correlation
    over all pixels. SSIM, a measure of local structure, always uses the whole map.
    """
    from scipy.stats import rankdata

    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"maps must both be (N, H, W) of one shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("maps hold NaN or infinite values")
    flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    if within is not None:
        region = np.asarray(within, dtype=bool)
        if region.shape != a.shape:
            raise ValueError(f"within must be (N, H, W) like the maps, got {region.shape} for maps {a.shape}")
        measures: dict[str, list[float]] = {"spearman_abs": [], "spearman": [], "pearson": []}
        for x, y, keep in zip(flat_a, flat_b, region.reshape(len(region), -1)):
            x, y = x[keep][None], y[keep][None]
            usable = x.shape[1] >= 2
            measures["spearman_abs"].append(map_correlation(rankdata(np.abs(x), axis=1),
                                                            rankdata(np.abs(y), axis=1))[0] if usable else np.nan)
            measures["spearman"].append(map_correlation(rankdata(x, axis=1), rankdata(y, axis=1))[0]
                                        if usable else np.nan)
            measures["pearson"].append(map_correlation(x, y)[0] if usable else np.nan)
        return {"spearman_abs": np.array(measures["spearman_abs"]), "spearman": np.array(measures["spearman"]),
                "ssim": _ssim(a, b), "pearson": np.array(measures["pearson"])}
    return {
        "spearman_abs": map_correlation(rankdata(np.abs(flat_a), axis=1), rankdata(np.abs(flat_b), axis=1)),
        "spearman": map_correlation(rankdata(flat_a, axis=1), rankdata(flat_b, axis=1)),
        "ssim": _ssim(a, b),
        "pearson": map_correlation(a, b),
    }


def _mean_similarity(first: np.ndarray, second: np.ndarray, n_groups: int,
                     within: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`map_similarity` of n_groups x N stacked pairs, averaged over the groups (N,) per
    measure; NaN pairs (constant maps) are left out of the mean. ``within`` (N, H, W) is the
    region of each of the N images, repeated for every group."""
    if within is not None:
        within = np.tile(np.asarray(within, dtype=bool), (n_groups, 1, 1))
    similarity = map_similarity(first, second, within)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an image whose every pair is NaN stays NaN
        return {name: np.nanmean(values.reshape(n_groups, -1), axis=0) for name, values in similarity.items()}


# --------------------------------------------------------------------------------------------
# The tests of chapter 10.


def randomisation_maps(model: nn.Module, explainer: Callable[[nn.Module], dict[str, np.ndarray]],
                       depths: Sequence[int] | None = None, seed: int = 0,
                       progress: bool = False) -> list[tuple[int, str, dict[str, np.ndarray]]]:
    """The maps of the cascading model-randomisation test (Adebayo et al. 2018; chapter 10).

    ``explainer`` takes a model and returns its maps of fixed images by name (one method, or
    several, see :func:`wrenlib.explain.explain_methods`); it must explain the same classes on
    every model. It runs on ``model`` and on the copies of :func:`randomised_models` whose number
    of re-initialised layers is in ``depths`` (default: every depth; the cascade itself is cheap,
    explaining is not). Returns ``(n_randomised, last layer re-initialised, maps)`` rows, the
    first ``(0, "none", maps of the trained model)``. The trained model is explained last: its
    maps are the ones a job beside this one may be making (the book's explained test clips), and
    by then the cache may hold them.
    """
    from tqdm.auto import tqdm

    from .runtime import show_progress

    n_layers = len(randomisable_layers(model))
    wanted = set(range(1, n_layers + 1)) if depths is None else {int(d) for d in depths}
    if not wanted <= set(range(1, n_layers + 1)):
        raise ValueError(f"depths must lie in 1..{n_layers} (the model's randomisable layers), got {sorted(wanted)}")
    rows = []
    with tqdm(total=len(wanted), desc="randomised models", disable=not show_progress(progress)) as bar:
        for depth, (layer, randomised) in enumerate(randomised_models(model, seed), start=1):
            if depth in wanted:
                rows.append((depth, layer, explainer(randomised)))
                bar.update()
            if depth >= max(wanted, default=0):
                break
    return [(0, "none", explainer(model)), *rows]


def sanity_positions(labels: np.ndarray, per_class: int, n_classes: int = 2) -> np.ndarray:
    """Positions, among clips of ``labels``, of the first ``per_class`` clips of each class: which
    of chapter 10's explained test clips its randomisation and stability checks explain."""
    return np.concatenate([np.flatnonzero(np.asarray(labels) == label)[:per_class] for label in range(n_classes)])


def sanity_clips(dataset, profile: str, seed: int = 0) -> np.ndarray:
    """Chapter 10's sanity clips: the first ``sanity_clips // 2`` of each dialect among the
    profile's explained test clips (:func:`sanity_positions`), which its randomisation and
    stability checks explain."""
    from .explain import explained_clips
    from .profiles import get_profile

    sizes = get_profile(profile)
    test = explained_clips(dataset, sizes.explain_clips, seed=seed)
    return test[sanity_positions(dataset.labels[test], sizes.sanity_clips // 2)]


def sanity_cascade(profile: str, seed: int = 0, device: torch.device | str | None = None, progress: bool = False,
                   model: nn.Module | None = None, dataset=None) -> tuple[np.ndarray, list[tuple[int, str, dict[str, np.ndarray]]]]:
    """Chapter 10's cascading randomisation test of the profile's mixed-set CNN: its sanity clips
    (:func:`sanity_positions` among :func:`wrenlib.explain.explained_clips`) and the four methods'
    raw maps of them on the trained model (the cache of chapters 04-07) and on the randomised
    copies at the profile's ``randomisation_depths`` (:func:`randomisation_maps`), always for the
    class the trained model predicts.

    The maps are cached (keyed by the model, the data, the clips, the methods' settings and the
    device type, since a GPU re-initialises layers from its own generator), so that ``wrenlib
    execute`` makes them as a preparation of their own, beside chapters 04-08, instead of chapter
    10 making them after them: on a GPU at the full profile they are most of that chapter's work.
    ``model`` and ``dataset`` default to the profile's mixed-set CNN and images (chapter 03)."""
    from dataclasses import asdict

    from .cache import config_hash, kept_maps, load_map_groups, load_or_build, parts_folder, profile_dir, save_map_groups
    from .explain import (METHODS, dataset_fingerprint, explain_dataset, explain_methods, explainer_version,
                          model_fingerprint, settings_for_profile)
    from .profiles import get_profile

    from .training import model_and_data

    sizes = get_profile(profile)
    model, dataset = model_and_data(profile, seed, device, model, dataset, "sanity_cascade")
    device = _model_device(model, device)
    model = model.to(device).eval()
    clips = sanity_clips(dataset, profile, seed)
    settings = {m: settings_for_profile(m, profile, seed) for m in METHODS}
    config = {"model": model_fingerprint(model), "data": dataset_fingerprint(dataset), "clips": clips.tolist(),
              "backgrounds": [str(b) for b in dataset.backgrounds[clips]], "depths": list(sizes.randomisation_depths),
              "seed": seed, "device": device.type, "settings": {m: asdict(s) for m, s in settings.items()},
              "version": explainer_version()}

    def build():
        # the classes the trained model predicts; its other maps are asked for last (randomisation_maps),
        # when the explained test clips' preparation beside this one has likely cached them
        targets = explain_dataset(model, dataset, clips, "gradcam", profile, settings["gradcam"], device=device,
                                  progress=False).targets
        pictures = dataset.images(clips)

        def explainer(network: nn.Module) -> dict[str, np.ndarray]:
            if network is model:
                return {m: explain_dataset(model, dataset, clips, m, profile, settings[m], device=device,
                                           progress=False).maps for m in METHODS}
            # each randomised network's maps are kept as soon as they are made (a run cut short goes on from there)
            return kept_maps(parts, model_fingerprint(network), lambda: explain_methods(
                network, pictures, profile, dataset, targets=targets, device=device, seed=seed))

        return randomisation_maps(model, explainer, depths=sizes.randomisation_depths, seed=seed, progress=progress)

    def save(rows, folder):
        save_map_groups(folder, {str(depth): raw for depth, _, raw in rows}, [[depth, layer] for depth, layer, _ in rows])

    def load(folder):
        groups, layers = load_map_groups(folder)
        return [(depth, layer, groups[str(depth)]) for depth, layer in layers]

    folder = profile_dir(profile) / "sanity" / f"cascade-seed{seed}-{config_hash(config)}"
    parts = parts_folder(folder)
    return clips, load_or_build(folder, config, build, save, load)


#: Chapter 10's input noise: standard deviation on the song's pixels (2 % of the pixel range).
STABILITY_NOISE_SIGMA = 0.02


def stability_maps(profile: str, seed: int = 0, device: torch.device | str | None = None, progress: bool = False,
                   model: nn.Module | None = None, dataset=None) -> dict[str, Any]:
    """Chapter 10's stability checks on its :func:`sanity_clips`, for the classes the trained
    model predicts: the four methods' raw maps of a noisy copy of each clip
    (:func:`noisy_copies` at :data:`STABILITY_NOISE_SIGMA`; LIME draws the clean image's samples,
    so that the two maps differ by the noise alone), LIME's and SHAP's maps with the next seed
    (their own randomness; Grad-CAM and DeepLIFT have none), and the four methods' maps on the
    mixed set's CNNs trained from other initial weights (the profile's ``stability_seeds``).

    Returns ``{"clips", "noisy" (the noisy images), "input noise" and "explainer's seed" (raw maps
    by method), "training seed" (a list of raw maps by method, one per other CNN)}``. Cached
    (keyed by the CNNs, the data, the clips, the settings and the device type), with each piece
    kept as soon as it is made, so that ``wrenlib execute`` makes them as a preparation once the
    CNNs are trained, instead of chapter 10 after chapter 08. ``model`` and ``dataset`` default to
    the profile's mixed-set CNN and images (chapter 03)."""
    from dataclasses import asdict

    from .cache import config_hash, kept_maps, load_map_groups, load_or_build, parts_folder, profile_dir, save_map_groups
    from .explain import (METHODS, dataset_fingerprint, explain_dataset, explain_methods, explainer_version,
                          model_fingerprint, settings_for_profile)
    from .profiles import get_profile
    from .training import load_or_train_model, model_and_data

    sizes = get_profile(profile)
    model, dataset = model_and_data(profile, seed, device, model, dataset, "stability_maps")
    device = _model_device(model, device)
    model = model.to(device).eval()
    others = [load_or_train_model(profile, background="mixed", seed=seed, init_seed=init_seed, device=device,
                                  progress=progress)[0] for init_seed in range(seed + 1, seed + sizes.stability_seeds)]
    clips = sanity_clips(dataset, profile, seed)
    pictures = dataset.images(clips)
    noisy = noisy_copies(pictures, sigma=STABILITY_NOISE_SIGMA, n_repeats=1, seed=seed)[0]
    config = {"model": model_fingerprint(model), "others": [model_fingerprint(other) for other in others],
              "data": dataset_fingerprint(dataset), "clips": clips.tolist(), "seed": seed, "device": device.type,
              "sigma": STABILITY_NOISE_SIGMA, "settings": {m: asdict(settings_for_profile(m, profile, seed))
                                                          for m in METHODS}, "version": explainer_version()}
    folder = profile_dir(profile) / "sanity" / f"stability-seed{seed}-{config_hash(config)}"
    parts = parts_folder(folder)

    def build():
        targets = explain_dataset(model, dataset, clips, "gradcam", profile, settings_for_profile("gradcam", profile, seed),
                                  device=device, progress=False).targets  # the trained model's predicted classes
        groups = {"input noise": kept_maps(parts, "noise", lambda: explain_methods(
            model, noisy, profile, dataset, targets=targets, device=device, seed=seed, seed_images=pictures))}
        groups["explainer's seed"] = kept_maps(parts, "reseeded", lambda: explain_methods(  # the next seed's settings
            model, pictures, profile, dataset, methods=("lime", "shap"), targets=targets, device=device, seed=seed + 1))
        for k, other in enumerate(others):
            groups[f"training seed {k}"] = kept_maps(parts, f"init{k}", lambda other=other: explain_methods(
                other, pictures, profile, dataset, targets=targets, device=device, seed=seed))
        return groups

    def save(groups, target):
        save_map_groups(target, groups, list(groups))

    def load(target):
        groups, _ = load_map_groups(target)
        return groups

    groups = load_or_build(folder, config, build, save, load)
    return {"clips": clips, "noisy": noisy, "input noise": groups["input noise"],
            "explainer's seed": groups["explainer's seed"],
            "training seed": [groups[f"training seed {k}"] for k in range(len(others))]}


def randomisation_test(model: nn.Module, images: np.ndarray | torch.Tensor, method: str, settings: Any = None,
                       references: np.ndarray | None = None, targets: np.ndarray | int | None = None,
                       seed: int = 0, progress: bool = False, batch_size: int = 16,
                       depths: Sequence[int] | None = None) -> "pd.DataFrame":
    """The cascading model-randomisation test of one method (Adebayo et al. 2018; chapter 10).

    Explains ``images`` with :func:`wrenlib.explain.explain` on ``model`` and on the copies of
    :func:`randomised_models` (at ``depths``, see :func:`randomisation_maps`), always for the class
    explained on the original model (``targets``, default its predictions), and compares each
    copy's maps with the original maps. One row per (randomised layer, image): ``layer`` (the last
    layer re-initialised), ``n_randomised`` (how many layers from the top are), ``image`` (index
    into ``images``), ``target`` and the :func:`map_similarity` columns. A method that explains the
    model falls towards 0 as layers go; one that stays near 1 shows the image, whatever the weights.
    """
    import pandas as pd

    x = _as_batch(images)
    targets = image_targets(model.eval(), x.to(_model_device(model, None)), targets)

    def explainer(network: nn.Module) -> dict[str, np.ndarray]:
        return {method: explain(network, images, method, targets=targets, settings=settings, batch_size=batch_size,
                                references=references).maps}

    (_, _, original), *randomised = randomisation_maps(model, explainer, depths, seed, progress)
    return pd.concat([pd.DataFrame({"layer": layer, "n_randomised": depth, "image": np.arange(len(x)),
                                    "target": targets, **map_similarity(original[method], maps[method])})
                      for depth, layer, maps in randomised], ignore_index=True)


def noisy_copies(images: np.ndarray | torch.Tensor, sigma: float, n_repeats: int = 1, seed: int = 0) -> np.ndarray:
    """``n_repeats`` copies of the images (n_repeats, N, H, W) with Gaussian noise of standard
    deviation ``sigma`` added to the song pixels only (every pixel not at the image's background
    level), clipped to [0, 1] (chapter 10). Repeatable with ``seed``."""
    if not np.isfinite(sigma) or sigma < 0 or int(n_repeats) != n_repeats or n_repeats < 1:
        raise ValueError(f"sigma must be >= 0 and n_repeats a whole number >= 1, got {sigma!r} and {n_repeats!r}")
    x = _as_batch(images).cpu()
    song = (x != background_levels(x).view(-1, 1, 1, 1))[:, 0].numpy()
    x = x[:, 0].numpy()
    noise = np.random.default_rng(seed).normal(0.0, sigma, size=(int(n_repeats), *x.shape)).astype(np.float32)
    return np.clip(x[None] + noise * song[None], 0.0, 1.0)


def noise_stability(model: nn.Module, images: np.ndarray | torch.Tensor, method: str, sigma: float = 0.02,
                    n_repeats: int = 3, seed: int = 0, settings: Any = None, references: np.ndarray | None = None,
                    targets: np.ndarray | int | None = None, batch_size: int = 16) -> "pd.DataFrame":
    """How far each image's map moves under small noise on its song pixels (chapter 10): the
    :func:`map_similarity` of the image's map with the maps of its :func:`noisy_copies`, explained
    for the same class (``targets``, default the prediction on the clean image), averaged over the
    ``n_repeats`` copies. One row per image: ``image``, ``target`` and the similarity columns."""
    import pandas as pd

    copies = noisy_copies(images, sigma, n_repeats, seed)
    n_repeats, n, height, width = copies.shape
    original = explain(model, images, method, targets=targets, settings=settings, batch_size=batch_size,
                       references=references)
    noisy = explain(model, copies.reshape(-1, height, width), method, targets=np.tile(original.targets, n_repeats),
                    settings=settings, batch_size=batch_size, references=references)
    repeated = np.broadcast_to(original.maps, copies.shape).reshape(-1, height, width)
    return pd.DataFrame({"image": np.arange(n), "target": original.targets,
                         **_mean_similarity(repeated, noisy.maps, n_repeats)})


def seed_stability(maps_by_seed: list[np.ndarray], within: np.ndarray | None = None) -> "pd.DataFrame":
    """How alike the maps of models trained from different seeds are (chapter 10): the
    :func:`map_similarity` of every pair of seeds, averaged over the pairs, per image. Each entry of
    ``maps_by_seed`` holds one model's maps (N, H, W) of the same images, for the same classes;
    ``within`` (N, H, W) restricts the rank measures to a region of each image, as in
    :func:`map_similarity`. One row per image: ``image``, ``n_pairs`` and the similarity columns."""
    import pandas as pd

    if len(maps_by_seed) < 2:
        raise ValueError(f"seed_stability needs the maps of at least two models, got {len(maps_by_seed)}")
    maps = [np.asarray(m) for m in maps_by_seed]
    if any(m.ndim != 3 or m.shape != maps[0].shape for m in maps):
        raise ValueError(f"every model's maps must be (N, H, W) of one shape, got {[m.shape for m in maps]}")
    pairs = list(itertools.combinations(range(len(maps)), 2))
    first = np.concatenate([maps[i] for i, _ in pairs])
    second = np.concatenate([maps[j] for _, j in pairs])
    return pd.DataFrame({"image": np.arange(len(maps[0])), "n_pairs": len(pairs),
                         **_mean_similarity(first, second, len(pairs), within)})
