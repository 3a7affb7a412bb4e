"""Ensembles of attribution maps (chapter 08, "Ensembles, and measuring which explanation is right").

The paper combines the Grad-CAM and DeepLIFT maps of a clip by a weighted average (0.5 / 0.5) and
by the element-wise maximum; its open question 3 asks whether an adaptive weighting would do
better. :func:`adaptive_ensemble` is the book's answer to try: per-image weights from a rule that
never looks at the ground-truth mask, with one temperature to choose on the validation split.

Every function takes ``maps_by_method``, a dict from method name to maps (N, H, W) of the same
clips, each normalised to [0, 1] with :func:`wrenlib.explain.normalise_maps`, and returns float32
maps (N, H, W) in [0, 1]. The ensembles are not normalised again: an average of maps whose peaks
lie apart has a maximum below 1, and that is part of what Figure 6's threshold shares measure.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import softmax

from .metrics import check_normalised_maps, map_correlation

ENSEMBLE_KINDS = ("average", "max", "adaptive")
ADAPTIVE_RULES = ("agreement", "faithfulness")


def _checked(maps_by_method: dict[str, np.ndarray]) -> tuple[list[str], list[np.ndarray]]:
    """(method names, their maps) after checking shapes and the [0, 1] range. The maps stay a list,
    not one (M, N, H, W) array, so that paper-size images are not copied M times."""
    if not isinstance(maps_by_method, dict) or not maps_by_method:
        raise ValueError("maps_by_method must be a non-empty dict from method name to maps (N, H, W)")
    names = list(maps_by_method)
    maps = [check_normalised_maps(maps_by_method[name], name=f"the maps of {name!r}") for name in names]
    shapes = {name: m.shape for name, m in zip(names, maps)}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"the maps of all methods must have one shape (N, H, W), got {shapes}")
    return names, maps


def _combine(maps: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Per-image weighted sum of the methods' maps with weights (N, M) that sum to 1."""
    weights = weights.astype(np.float32)
    out = np.zeros_like(maps[0])
    for m, method_maps in enumerate(maps):
        out += weights[:, m, None, None] * method_maps
    return np.clip(out, 0, 1)


def average_ensemble(maps_by_method: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """Weighted mean of the methods' maps (chapter 08); equal weights by default (0.5 / 0.5 for the
    paper's two methods). Weights are non-negative, one per method, and normalised to sum to 1."""
    names, maps = _checked(maps_by_method)
    if weights is None:
        fixed = np.full(len(names), 1.0 / len(names))
    else:
        if set(weights) != set(names):
            raise ValueError(f"weights must name exactly the methods {names}, got {list(weights)}")
        fixed = np.array([weights[name] for name in names], dtype=np.float64)
        if not np.isfinite(fixed).all() or (fixed < 0).any():
            raise ValueError(f"weights must be finite and non-negative, got {dict(weights)}")
        if fixed.sum() <= 0:
            raise ValueError(f"weights sum to zero, so they cannot be normalised: {dict(weights)}")
        fixed = fixed / fixed.sum()
    return _combine(maps, np.broadcast_to(fixed, (len(maps[0]), len(names))))


def max_ensemble(maps_by_method: dict[str, np.ndarray]) -> np.ndarray:
    """Element-wise maximum of the methods' maps (the paper's max ensemble, chapter 08), clipped to
    [0, 1] like the averages (maps a rounding error above 1 pass the range check)."""
    maps = _checked(maps_by_method)[1]
    return np.clip(functools.reduce(np.maximum, maps), 0, 1)  # pairwise: no (M, N, H, W) copy; a new array


def agreement_weights(maps_by_method: dict[str, np.ndarray]) -> np.ndarray:
    """Per-image weights (N, M), in the dict's method order, from how much each method agrees with
    the others on that image (chapter 08): its mean Pearson correlation (:func:`map_correlation`)
    with the other methods' maps, clipped at 0 and normalised to sum 1; uniform where every
    method's agreement is 0. An undefined correlation (a constant or all-zero map) counts as 0.

    With two methods both get the same agreement, so the weights are always 0.5 / 0.5: the rule
    needs three or more methods to differ from the plain average.
    """
    return _agreement(*_checked(maps_by_method))


def _agreement(names: list[str], maps: list[np.ndarray]) -> np.ndarray:
    """The weights of :func:`agreement_weights` from checked maps."""
    n_methods, n_images = len(names), len(maps[0])
    if n_methods < 2:
        raise ValueError(f"agreement weights need at least two methods, got {names}")
    correlation = np.zeros((n_images, n_methods, n_methods))
    for i in range(n_methods):
        for j in range(i + 1, n_methods):
            r = np.nan_to_num(map_correlation(maps[i], maps[j]), nan=0.0)
            correlation[:, i, j] = correlation[:, j, i] = r
    agreement = np.clip(correlation.sum(axis=2) / (n_methods - 1), 0, None)  # the diagonal is 0
    total = agreement.sum(axis=1, keepdims=True)
    return np.where(total > 0, agreement / np.where(total > 0, total, 1), 1.0 / n_methods)


def _tempered_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / temperature) along the methods; -inf logits get weight 0 at any
    temperature, and an infinite temperature gives equal weights to the rest."""
    if not (temperature > 0):
        raise ValueError(f"temperature must be positive (np.inf allowed), got {temperature!r}")
    allowed = np.isfinite(logits)
    scaled = np.where(allowed, 0.0 if np.isinf(temperature) else logits / temperature, -np.inf)
    return softmax(scaled, axis=1)


def adaptive_weights(maps_by_method: dict[str, np.ndarray], rule: str = "agreement", temperature: float = 1.0,
                     scores: np.ndarray | None = None) -> np.ndarray:
    """The per-image weights (N, M) of :func:`adaptive_ensemble`, in the dict's method order."""
    return _adaptive_weights(*_checked(maps_by_method), rule, temperature, scores)


def _adaptive_weights(names: list[str], maps: list[np.ndarray], rule: str, temperature: float,
                      scores: np.ndarray | None) -> np.ndarray:
    if rule == "agreement":
        if scores is not None:
            raise ValueError("scores go with rule='faithfulness'; the agreement rule computes its own from the maps")
        with np.errstate(divide="ignore"):
            logits = np.log(_agreement(names, maps))  # w ** (1 / T), normalised == softmax(log w / T)
    elif rule == "faithfulness":
        if scores is None:
            raise ValueError("rule='faithfulness' needs scores=, an (N, M) array of per-image per-method scores")
        logits = np.asarray(scores, dtype=np.float64)
        expected = (len(maps[0]), len(names))
        if logits.shape != expected:
            raise ValueError(f"scores must be (N, M) = {expected} for methods {names}, got shape {logits.shape}")
        if np.isnan(logits).any() or np.isposinf(logits).any():
            raise ValueError("scores must be finite (-inf excludes a method from an image), got NaN or +inf")
        excluded = np.flatnonzero(np.isneginf(logits).all(axis=1))
        if len(excluded):
            raise ValueError(f"every method is excluded (-inf) for images {excluded[:5].tolist()}")
    else:
        raise ValueError(f"unknown adaptive rule {rule!r}; choose one of {', '.join(ADAPTIVE_RULES)}")
    return _tempered_softmax(logits, temperature)


def adaptive_ensemble(maps_by_method: dict[str, np.ndarray], rule: str = "agreement", temperature: float = 1.0,
                      scores: np.ndarray | None = None) -> np.ndarray:
    """Per-image weighted mean of the methods' maps, with weights that never use the ground-truth
    mask (chapter 08, the paper's open question 3). ``temperature`` (> 0) is the one parameter,
    to be chosen on the validation split.

    - ``rule="agreement"``: weights ``a ** (1 / temperature)``, normalised per image, where ``a``
      are the :func:`agreement_weights` (mean correlation with the other methods on that image).
      Temperature 1 uses them as they are; towards 0 it picks the best-agreeing method; towards
      infinity it approaches the plain average of the methods with positive agreement (a method
      with agreement 0 keeps weight 0 at every temperature).
    - ``rule="faithfulness"``: weights ``softmax(scores / temperature)`` per image, where
      ``scores`` (N, M), in the dict's method order, are measured on the model by the caller,
      higher = better (pass minus a deletion AUC); -inf leaves a method out of an image.
      The temperature is in the scores' units.
    """
    names, maps = _checked(maps_by_method)
    return _combine(maps, _adaptive_weights(names, maps, rule, temperature, scores))


def ensemble_maps(maps_by_method: dict[str, np.ndarray], kind: str, **options) -> np.ndarray:
    """The ``kind`` ensemble ("average", "max" or "adaptive") of the methods' maps, ``options``
    passed on to :func:`average_ensemble` or :func:`adaptive_ensemble` (chapter 08)."""
    builders = {"average": average_ensemble, "max": max_ensemble, "adaptive": adaptive_ensemble}
    if kind not in builders:
        raise ValueError(f"unknown ensemble kind {kind!r}; choose one of {', '.join(ENSEMBLE_KINDS)}")
    return builders[kind](maps_by_method, **options)


ADAPTIVE_TEMPERATURES = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, float("inf"))
PAPER_PAIR = ("Grad-CAM", "DeepLIFT")  # the two methods the paper's ensembles combine


def choose_temperature(maps_by_method: dict[str, np.ndarray], masks: np.ndarray,
                       temperatures: tuple[float, ...] = ADAPTIVE_TEMPERATURES) -> tuple[float, "pd.DataFrame"]:  # noqa: F821
    """The agreement rule's temperature with the highest mean mask ROC AUC
    (:func:`wrenlib.metrics.mask_auc`) on clips set aside for it — the validation split, never the
    clips reported on (chapter 08). Returns the temperature and the table of candidates."""
    import pandas as pd

    from .metrics import mask_auc

    scores = [float(np.nanmean(mask_auc(adaptive_ensemble(maps_by_method, temperature=t), masks)))
              for t in temperatures]
    table = pd.DataFrame({"temperature": list(temperatures), "validation mask AUC": scores})
    return float(table.loc[table["validation mask AUC"].idxmax(), "temperature"]), table


def book_ensembles(maps_by_method: dict[str, np.ndarray], temperature: float) -> dict[str, np.ndarray]:
    """The four ensembles the book scores (chapters 08-11), by name: the paper's average and max
    of Grad-CAM and DeepLIFT (:data:`PAPER_PAIR`), the average of every method given, and the
    agreement-weighted adaptive ensemble of every method at ``temperature``."""
    missing = [name for name in PAPER_PAIR if name not in maps_by_method]
    if missing:
        raise ValueError(f"the paper's ensembles need maps named {', '.join(PAPER_PAIR)}; missing {', '.join(missing)}")
    pair = {name: maps_by_method[name] for name in PAPER_PAIR}
    n = len(maps_by_method)
    return {"average (GC+DL)": average_ensemble(pair), "max (GC+DL)": max_ensemble(pair),
            f"average (all {n})" if n != 4 else "average (all four)": average_ensemble(maps_by_method),
            f"adaptive (all {n})" if n != 4 else "adaptive (all four)": adaptive_ensemble(maps_by_method,
                                                                                         temperature=temperature)}
