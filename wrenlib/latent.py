"""Sub-populations in the network's latent space (chapter 09, "Sub-populations").

The latent features of a clip are the activations of one named layer of the trained model; by
default :data:`DEFAULT_LAYER`, the output of the ReLU after the penultimate fully connected layer
(the 1024-unit layer of the paper's network), i.e. the representation the final linear layer
reads. The ReLU output, not the linear output, because negative values are cut before the
classifier sees them; the dropout that follows is the identity in evaluation mode, so its output
would be the same numbers. :func:`dataset_features` caches them per (model, data, layer, clips).

Embeddings (:func:`embed`) are t-SNE and PCA of the *standardised* features (scikit-learn's
``StandardScaler``: each unit to zero mean and unit variance over the clips; units that never
fire stay 0). The number of clusters (:func:`choose_clusters`) is chosen without the true labels,
by the silhouette score (or, for a Gaussian mixture on request, the BIC). How well clusters
recover the true song types is the adjusted Rand index and the adjusted mutual information
(:func:`cluster_agreement`); how well t-SNE keeps neighbours, its trustworthiness
(:func:`embedding_quality`). Whether explanations agree more inside a cluster than across
clusters of the same dialect is a permutation test (:func:`cluster_consistency`). Every algorithm
is scikit-learn's; this module adds the choices.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from .metrics import permutation_p_text

if TYPE_CHECKING:  # pandas is imported where it is used, as in wrenlib.explain
    import pandas as pd

#: The ReLU after the penultimate (1024-unit) fully connected layer of the paper's DialectCNN:
#: classifier = Flatten(0), Linear 512(1), ReLU(2), Dropout(3), Linear 1024(4), ReLU(5), Dropout(6),
#: Linear 2(7). It is the module ``DialectCNN.latent_layer()`` returns for the paper's shape.
DEFAULT_LAYER = "classifier.5"
EMBEDDINGS = ("tsne", "pca")
CLUSTERINGS = ("kmeans", "gmm", "agglomerative")
CRITERIA = ("silhouette", "bic")
# Part of every cached feature file's key: raise it whenever a change here changes the features.
LATENT_VERSION = 1


# --------------------------------------------------------------------------------------------
# Latent features.


def latent_layer_name(model: nn.Module) -> str:
    """The name (as in ``model.named_modules()``) of ``model.latent_layer()``: the penultimate
    fully connected layer's ReLU whatever the model's hidden sizes (chapter 09)."""
    target = model.latent_layer()
    for name, module in model.named_modules():
        if module is target:
            return name
    raise ValueError("the model's latent_layer() is not one of its named modules")


def _named_module(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        leaves = [name for name, module in modules.items() if name and not list(module.children())]
        raise ValueError(f"the model has no layer named {layer!r}; its layers are {', '.join(leaves)}")
    return modules[layer]


def latent_features(model: nn.Module, images: np.ndarray | torch.Tensor, layer: str = DEFAULT_LAYER,
                    batch_size: int = 64, device: torch.device | str | None = None) -> np.ndarray:
    """Activations (N, D) of the module named ``layer`` for images (N, H, W) or (N, 1, H, W),
    flattened per image (chapter 09). The model runs in evaluation mode without gradients (its
    mode is restored afterwards); the forward hook is removed even when the forward pass fails."""
    from .explain import _as_batch

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    module = _named_module(model, layer)
    x = _as_batch(images)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    captured: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        captured.append(output.detach().flatten(1).to("cpu", torch.float32))

    was_training = model.training
    model = model.to(device).eval()  # note: moves the caller's model, as torch's .to() does
    handle = module.register_forward_hook(keep)
    try:
        with torch.no_grad():
            for first in range(0, len(x), batch_size):
                model(x[first:first + batch_size].to(device))
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(captured).numpy()


def _feature_file(profile: str, model: nn.Module, dataset, layer: str, indices: np.ndarray):
    from .cache import config_hash, profile_dir
    from .explain import dataset_fingerprint, model_fingerprint

    key = config_hash({"model": model_fingerprint(model), "data": dataset_fingerprint(dataset), "layer": layer,
                       "indices": [int(i) for i in indices], "version": LATENT_VERSION})
    return profile_dir(profile) / "latent" / f"{layer}-{key}.npz"


def dataset_features(model: nn.Module, dataset, indices, profile: str, layer: str = DEFAULT_LAYER,
                     device: torch.device | str | None = None, batch_size: int = 64) -> np.ndarray:
    """Latent features (N, D) of the dataset's clips ``indices`` in the asked order, from the cache
    or computed now (chapter 09). One ``.npz`` per (model, data, layer, set of clips) under
    ``artifacts/<profile>/latent/``, written atomically; images are loaded one batch at a time."""
    indices = np.asarray(indices, dtype=np.int64).ravel()
    if len(indices) and (indices.min() < 0 or indices.max() >= len(dataset)):
        raise ValueError(f"clip indices must lie in [0, {len(dataset)}), got {indices.min()} to {indices.max()}")
    unique = np.unique(indices)
    path = _feature_file(profile, model, dataset, layer, unique)
    features = _read_features(path, unique)
    if features is None:
        parts = [latent_features(model, dataset.images(unique[first:first + batch_size]), layer=layer,
                                 batch_size=batch_size, device=device)
                 for first in range(0, len(unique), batch_size)]
        features = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, features=features, indices=unique, layer=np.array(layer))
            os.replace(name, path)
        finally:
            if os.path.exists(name):
                os.remove(name)
    return features[np.searchsorted(unique, indices)]


def _read_features(path, indices: np.ndarray) -> np.ndarray | None:
    """The cached features, or None when the file is missing, unreadable or of other clips."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            if not np.array_equal(stored["indices"], indices):
                return None
            return stored["features"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


# --------------------------------------------------------------------------------------------
# Embeddings.


def _one_thread():
    """Run scikit-learn's OpenMP and BLAS code on one thread: with torch's OpenMP runtime loaded
    beside scikit-learn's, a 2-thread t-SNE of 60 points took 40 s instead of 0.3 s on a busy
    2-core machine, and one thread also makes the embedding the same on every machine."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def standardise_features(features: np.ndarray) -> np.ndarray:
    """Each feature to zero mean and unit variance over the clips (scikit-learn's
    ``StandardScaler``; a constant feature, such as a unit that never fires, becomes 0)."""
    from sklearn.preprocessing import StandardScaler

    features = _as_points(features, "features")
    return StandardScaler().fit_transform(features)


def _as_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(f"{name} hold NaN or infinite values")
    return points


def embed(features: np.ndarray, method: str = "tsne", n_components: int = 2, perplexity: float = 30.0,
          seed: int = 0) -> np.ndarray:
    """A low-dimensional embedding (N, n_components) of the standardised features (chapter 09).

    ``tsne``: scikit-learn's ``TSNE`` with PCA initialisation, the automatic learning rate
    (N / early exaggeration / 4, at least 50: 50 at the book's sizes) and ``random_state=seed``;
    ``perplexity`` must be below N.
    ``pca``: scikit-learn's ``PCA``. Both give the same result for the same seed (with the PCA
    initialisation, t-SNE hardly depends on the seed at all); both run on one thread.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method not in EMBEDDINGS:
        raise ValueError(f"unknown embedding {method!r}; choose one of {', '.join(EMBEDDINGS)}")
    points = standardise_features(features)
    n, dimensions = points.shape
    if int(n_components) != n_components or not 1 <= n_components <= min(n, dimensions):
        raise ValueError(f"n_components must be a whole number from 1 to min(N, D) = {min(n, dimensions)}, "
                         f"got {n_components!r}")
    n_components = int(n_components)
    if method == "pca":
        with _one_thread():
            return PCA(n_components=n_components, random_state=seed).fit_transform(points)
    if not 0 < perplexity < n:
        raise ValueError(f"t-SNE's perplexity must be positive and below the number of points ({n}), "
                         f"got {perplexity!r}")
    tsne = TSNE(n_components=n_components, perplexity=float(perplexity), init="pca", learning_rate="auto",
                method="barnes_hut" if n_components < 4 else "exact", random_state=seed)
    with _one_thread():
        return tsne.fit_transform(points)


def fitting_perplexity(n_points: int, wanted: float = 30.0) -> float:
    """The t-SNE perplexity to use on ``n_points`` points (chapters 09 and 12): ``wanted``, or
    (N - 1) / 3 where fewer points cannot support it (the usual rule that three times the
    perplexity stays below N - 1; scikit-learn only refuses a perplexity of N or more)."""
    if int(n_points) != n_points or n_points < 2:
        raise ValueError(f"t-SNE needs at least 2 points, got {n_points!r}")
    if not wanted > 0:
        raise ValueError(f"the perplexity must be positive, got {wanted!r}")
    return float(min(float(wanted), (int(n_points) - 1) / 3))


def fitting_k_range(n_points: int, largest: int = 8) -> range:
    """The numbers of clusters :func:`choose_clusters` tries on ``n_points`` points (chapters 09
    and 12): 2 to ``largest``, or to N - 1 where there are fewer points (the silhouette needs
    more points than clusters)."""
    if int(n_points) != n_points or n_points < 3:
        raise ValueError(f"choosing a number of clusters needs at least 3 points, got {n_points!r}")
    if int(largest) != largest or largest < 2:
        raise ValueError(f"the largest number of clusters must be a whole number of at least 2, got {largest!r}")
    return range(2, min(int(largest), int(n_points) - 1) + 1)


def embedding_quality(features: np.ndarray, embedding: np.ndarray, n_neighbors: int = 5) -> float:
    """Trustworthiness of an embedding (scikit-learn's ``trustworthiness``, chapter 09): 1 when
    every point's ``n_neighbors`` nearest neighbours in the embedding are also near in the
    features, lower when the embedding invents neighbours. Pass the features the embedding was
    made from (for :func:`embed`, :func:`standardise_features` of the latent features)."""
    from sklearn.manifold import trustworthiness

    features, embedding = _as_points(features, "features"), _as_points(embedding, "embedding")
    if len(features) != len(embedding):
        raise ValueError(f"features and embedding must have one row per clip, got {len(features)} and {len(embedding)}")
    if int(n_neighbors) != n_neighbors or not 1 <= n_neighbors < len(features) / 2:
        raise ValueError(f"n_neighbors must be a whole number from 1 to below half the number of points "
                         f"({len(features)}), got {n_neighbors!r}")
    with _one_thread():
        return float(trustworthiness(features, embedding, n_neighbors=int(n_neighbors)))


# --------------------------------------------------------------------------------------------
# Clusters, and how well they recover the song types.


def _cluster(points: np.ndarray, k: int, method: str, seed: int):
    """(labels, BIC or NaN) of one clustering into ``k`` groups."""
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.mixture import GaussianMixture

    if method == "kmeans":
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(points), float("nan")
    if method == "agglomerative":
        return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(points), float("nan")
    mixture = GaussianMixture(n_components=k, covariance_type="full", n_init=3, random_state=seed).fit(points)
    return mixture.predict(points), float(mixture.bic(points))


def choose_clusters(points: np.ndarray, k_range: Iterable[int] = range(2, 9), method: str = "kmeans",
                    seed: int = 0, criterion: str = "silhouette") -> tuple[np.ndarray, pd.DataFrame]:
    """Cluster labels (N,) of the points, with the number of clusters chosen without the true
    labels, and the table of the criterion per k (chapter 09).

    ``method``: ``kmeans`` (10 starts), ``gmm`` (a Gaussian mixture with full covariances, 3
    starts; meant for low-dimensional embeddings) or ``agglomerative`` (Ward linkage).
    ``criterion``: ``silhouette`` (the default, for every method: the k with the largest mean
    silhouette width; ties go to the smaller k) or ``bic`` (Gaussian mixtures only: the smallest
    BIC). The table has one row per k: ``k``, ``silhouette``, ``bic`` (NaN except for ``gmm``)
    and ``chosen``.
    """
    import pandas as pd
    from sklearn.metrics import silhouette_score

    if method not in CLUSTERINGS:
        raise ValueError(f"unknown clustering {method!r}; choose one of {', '.join(CLUSTERINGS)}")
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if criterion == "bic" and method != "gmm":
        raise ValueError(f"the BIC criterion needs method='gmm', got method={method!r}")
    points = _as_points(points, "points")
    ks = sorted({int(k) for k in k_range})
    if not ks or ks[0] < 2:
        raise ValueError(f"k_range must hold numbers of clusters of at least 2, got {list(k_range)!r}")
    if len(points) <= ks[-1]:
        raise ValueError(f"{len(points)} points are too few for {ks[-1]} clusters (the largest k of k_range); "
                         f"the silhouette needs more points than clusters")
    rows, labellings = [], []
    for k in ks:
        with _one_thread():
            labels, bic = _cluster(points, k, method, seed)
            found = len(np.unique(labels))
            silhouette = float(silhouette_score(points, labels)) if 2 <= found < len(points) else float("nan")
        rows.append({"k": k, "n_found": found, "silhouette": silhouette, "bic": bic})
        labellings.append(labels)
    table = pd.DataFrame(rows)
    scores = table["silhouette"].to_numpy() if criterion == "silhouette" else -table["bic"].to_numpy()
    if np.isnan(scores).all():
        raise ValueError(f"no k in {ks} gave a usable {criterion}; the points may be all alike")
    best = int(np.nanargmax(scores))
    table["chosen"] = np.arange(len(ks)) == best
    return np.asarray(labellings[best], dtype=np.int64), table


def cluster_structure(points: np.ndarray, k_range: Iterable[int] = range(2, 9), method: str = "kmeans",
                      seed: int = 0, n_null: int = 40, level: float = 0.95) -> dict[str, Any]:
    """Whether ``points`` hold more cluster structure than points spread evenly over the same
    extent (chapter 09: does t-SNE show *several* clusters in a dialect, or one cloud that k-means
    cuts up?).

    :func:`choose_clusters` always returns two clusters or more, so the number it chooses cannot
    say that there is more than one. This compares the best mean silhouette width it finds on the
    points with the best it finds the same way (``k_range``, ``method``, ``seed``) on ``n_null``
    samples of the gap statistic's reference (Tibshirani, Walther and Hastie 2001): as many points,
    uniform over the box of the points' extent along their principal axes. Even spread is the
    reference that a single unimodal cloud is least likely to beat; a curved continuum (a ring, an
    arc) can beat it without being several groups, so a small ``p_value`` there is read with the
    t-SNE figure beside it. Returns
    ``silhouette``, the reference's ``null_median`` and ``null_high`` (its ``level`` quantile),
    ``p_value`` ((1 + references at or above the points) / (1 + ``n_null``)) and ``clustered``
    (``p_value`` at most 1 - ``level``, which needs ``n_null`` of at least 1 / (1 - ``level``) - 1)."""
    points = _as_points(points, "points")
    if int(n_null) != n_null or n_null < 1:
        raise ValueError(f"n_null must be a whole number of at least 1, got {n_null!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1, got {level!r}")
    fewest = int(np.ceil(1 / (1 - level) - 1 - 1e-9))  # below this, no p-value can reach 1 - level
    if n_null < fewest:
        raise ValueError(f"n_null must be at least {fewest} for level {level:g}, got {n_null!r}")
    ks = list(k_range)

    def best_silhouette(sample: np.ndarray) -> float:
        return float(choose_clusters(sample, ks, method=method, seed=seed)[1]["silhouette"].max())

    observed = best_silhouette(points)
    centred = points - points.mean(0)
    axes = np.linalg.svd(centred, full_matrices=False)[2]  # the principal axes, one per row
    turned = centred @ axes.T
    low, high = turned.min(0), turned.max(0)
    rng = np.random.default_rng([seed, 9])
    nulls = np.array([best_silhouette(rng.uniform(low, high, turned.shape) @ axes)
                      for _ in range(int(n_null))])
    p_value = float((1 + np.sum(nulls >= observed)) / (1 + len(nulls)))
    return {"silhouette": observed, "null_median": float(np.median(nulls)), "null_high": float(np.quantile(nulls, level)),
            "p_value": p_value, "clustered": bool(p_value <= 1 - level + 1e-12)}


def cluster_agreement(true_labels, clusters) -> dict[str, float]:
    """Adjusted Rand index (``ari``) and adjusted mutual information (``ami``) of clusters against
    true labels such as the song types (scikit-learn's, chapter 09): both 1 for the same partition
    under any renaming and about 0 for a random one, whatever the number of labels (plain
    normalised mutual information is not: it rises with the number of labels and falls with the
    number of clips, so a sample of a random partition scores above 0)."""
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    true_labels, clusters = np.asarray(true_labels).ravel(), np.asarray(clusters).ravel()
    if len(true_labels) != len(clusters):
        raise ValueError(f"true labels and clusters must have one value per clip, got {len(true_labels)} "
                         f"and {len(clusters)}")
    if not len(clusters):
        raise ValueError("no clips to compare")
    return {"ari": float(adjusted_rand_score(true_labels, clusters)),
            "ami": float(adjusted_mutual_info_score(true_labels, clusters)),
            "n_clusters": int(len(np.unique(clusters))), "n_true": int(len(np.unique(true_labels)))}


def _half_samples(n: int, n_boot: int, seed: int, groups=None) -> list[np.ndarray]:
    """``n_boot`` half-samples of ``n`` clips drawn without replacement: the same draws for the
    same ``n``, ``groups`` and ``seed``, so two partitions of the same clips can be compared draw
    by draw (:func:`agreement_difference`). With ``groups`` (one per clip: the bird), half of the
    groups are drawn, each with all its clips: a bird's clips share its voice, so the birds, not
    the clips, are the independent units, and an interval from drawn clips comes out too narrow."""
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a whole number of at least 1, got {n_boot!r}")
    generator = np.random.default_rng(seed)
    if groups is None:
        return list(np.argsort(generator.random((int(n_boot), n)), axis=1)[:, :max(n // 2, 1)])
    groups = np.asarray(groups).ravel()
    if len(groups) != n:
        raise ValueError(f"groups must name the group of each of the {n} clips, got {len(groups)}")
    _, group = np.unique(groups, return_inverse=True)
    n_groups = int(group.max()) + 1
    drawn = np.argsort(generator.random((int(n_boot), n_groups)), axis=1)[:, :max(n_groups // 2, 1)]
    return [np.flatnonzero(np.isin(group, chosen)) for chosen in drawn]


def agreement_difference(first, second, true_labels, n_boot: int = 500, seed: int = 0,
                         measure: str = "ari", level: float = 0.95, groups=None) -> dict[str, float]:
    """How much better ``first`` clusters match ``true_labels`` than ``second`` clusters of the same
    clips do (chapter 09: t-SNE's clusters against PCA's, on the song types): the difference of
    :func:`cluster_agreement`'s ``measure`` with a percentile interval at ``level`` from ``n_boot``
    half-samples, *the same* half-sample for both partitions in each draw; half of the ``groups``
    (one per clip: the birds) with all their clips, where given (:func:`_half_samples`).

    Two partitions of the same clips are paired data: a draw that happens to hold clips both
    partitions get right lifts both, so each one's own interval is wide where their difference is
    not. Whether two separate intervals overlap asks a needlessly hard question; the paired
    difference's interval asks the one wanted. Returns ``difference``, ``low``, ``high``."""
    first, second = np.asarray(first).ravel(), np.asarray(second).ravel()
    true_labels = np.asarray(true_labels).ravel()
    if not len(first) == len(second) == len(true_labels):
        raise ValueError(f"both partitions and the labels must have one value per clip, got {len(first)}, "
                         f"{len(second)} and {len(true_labels)}")
    if measure not in ("ari", "ami"):
        raise ValueError(f"measure must be 'ari' or 'ami', got {measure!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1, got {level!r}")

    def difference(d: np.ndarray | slice) -> float:
        return (cluster_agreement(true_labels[d], first[d])[measure]
                - cluster_agreement(true_labels[d], second[d])[measure])

    drawn = [difference(d) for d in _half_samples(len(first), n_boot, seed, groups)]
    tail = 100 * (1 - level) / 2
    return {"difference": difference(slice(None)), "low": float(np.percentile(drawn, tail)),
            "high": float(np.percentile(drawn, 100 - tail))}


def label_agreement(clusters, labels: "pd.DataFrame | dict[str, Any]", n_boot: int = 500,
                    seed: int = 0, groups=None) -> "pd.DataFrame":
    """Which known property of the clips do the clusters follow (chapter 09, the paper's open
    question 2)? One row per column of ``labels`` (e.g. song type, individual, background; on
    real recordings: site, date, recordist): :func:`cluster_agreement`'s ARI and AMI, with 95 %
    percentile intervals from ``n_boot`` half-samples of the clips drawn without replacement (the
    clusters are kept, only the clips are redrawn), or of the ``groups`` (one per clip: the
    birds) with all their clips where given (:func:`_half_samples`).

    Half-samples, not the usual bootstrap: a resample drawn with replacement repeats clips, and a
    repeated clip agrees with itself under any two partitions, which lifts ARI and AMI the more
    the finer the labels (for birds that sang a handful of clips each, the whole interval could
    lie above the estimate). A half-sample repeats nothing, and the spread of its statistic about
    the full sample's approximates the full sample's own sampling spread (half-sampling)."""
    import pandas as pd

    clusters = np.asarray(clusters).ravel()
    columns = labels if isinstance(labels, dict) else {name: labels[name].to_numpy() for name in labels.columns}
    draws = _half_samples(len(clusters), n_boot, seed, groups)
    rows = []
    for name, values in columns.items():
        values = np.asarray(values).ravel()
        agreement = cluster_agreement(values, clusters)
        samples = [cluster_agreement(values[d], clusters[d]) for d in draws]
        row: dict[str, Any] = {"label": name}
        for measure in ("ari", "ami"):
            drawn = [sample[measure] for sample in samples]
            row.update({measure: agreement[measure], f"{measure}_low": float(np.percentile(drawn, 2.5)),
                        f"{measure}_high": float(np.percentile(drawn, 97.5))})
        rows.append({**row, "n_values": agreement["n_true"], "n_clusters": agreement["n_clusters"]})
    return pd.DataFrame(rows)


def sweep_perplexity(features: np.ndarray, perplexities: Iterable[float], true_labels, seed: int = 0,
                     k_range: Iterable[int] = range(2, 9), method: str = "kmeans",
                     n_neighbors: int = 5) -> pd.DataFrame:
    """One row per perplexity (chapter 09's sweep): the t-SNE embedding's trustworthiness, the
    number of clusters :func:`choose_clusters` picks on it, and their ARI and AMI against the
    true labels (used only for scoring, never for choosing)."""
    import pandas as pd

    standardised = standardise_features(features)
    k_range = list(k_range)
    rows = []
    for perplexity in perplexities:
        embedding = embed(features, "tsne", perplexity=perplexity, seed=seed)
        clusters, _ = choose_clusters(embedding, k_range, method=method, seed=seed)
        agreement = cluster_agreement(true_labels, clusters)
        rows.append({"perplexity": float(perplexity), "trustworthiness": embedding_quality(standardised, embedding,
                                                                                             n_neighbors),
                     **agreement})
    return pd.DataFrame(rows)


def compare_spaces(features: np.ndarray, true_labels, perplexity: float = 30.0, seed: int = 0,
                   k_range: Iterable[int] = range(2, 9), method: str = "kmeans",
                   n_neighbors: int = 5) -> pd.DataFrame:
    """How well clusters recover the true labels in three spaces (chapter 09): the 2-D t-SNE and
    PCA embeddings and the standardised features themselves, each clustered by
    :func:`choose_clusters` with the same rule. One row per space: ``space``, ``ari``, ``ami``,
    ``n_clusters``, ``n_true`` and ``trustworthiness`` (NaN for the features)."""
    import pandas as pd

    standardised = standardise_features(features)
    k_range = list(k_range)
    spaces = {"tsne": embed(features, "tsne", perplexity=perplexity, seed=seed),
              "pca": embed(features, "pca", seed=seed), "features": standardised}
    rows = []
    for space, points in spaces.items():
        clusters, _ = choose_clusters(points, k_range, method=method, seed=seed)
        quality = embedding_quality(standardised, points, n_neighbors) if space != "features" else float("nan")
        rows.append({"space": space, **cluster_agreement(true_labels, clusters), "trustworthiness": quality})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Do explanations agree more inside a cluster?


def correlation_matrix(maps: np.ndarray) -> np.ndarray:
    """Pearson correlation (N, N) of every pair of flattened maps (N, H, W): the pairwise form of
    :func:`wrenlib.metrics.map_correlation`; NaN where a map is constant (e.g. all zero)."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.sqrt((flat * flat).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = flat / np.where(norms > 0, norms, np.nan)[:, None]
    return np.clip(flat @ flat.T, -1.0, 1.0)


def cluster_consistency(maps: np.ndarray, clusters, groups,
                        similarity: Callable[[np.ndarray], np.ndarray] | None = None, n_permutations: int = 1000,
                        seed: int = 0, given: np.ndarray | None = None, given_degree: int = 2,
                        units=None) -> dict[str, float]:
    """Mean pairwise similarity of explanation maps within a cluster vs between clusters of the
    same group (the dialect), with a permutation test (chapter 09).

    Both kinds of pairs are taken inside one group only, so clusters may be numbered per dialect
    or across dialects alike. ``similarity`` maps (N, H, W) -> an (N, N) matrix; the default is
    :func:`correlation_matrix` (Pearson). Pairs with an undefined (NaN) similarity, such as those
    of an all-zero map, are left out. The statistic is ``within - between``; its one-sided p-value
    comes from ``n_permutations`` shuffles of the cluster labels inside each group (group sizes
    and cluster sizes per group kept), as (1 + shuffles at least as large) / (1 + shuffles with a
    statistic): a shuffle that leaves no within- or no between-cluster pair (possible only where
    pairs are left out) has none and is not counted. Returns ``within``, ``between``,
    ``difference``, ``p_value``, ``n_within_pairs``, ``n_between_pairs`` and ``n_shuffles`` (the
    shuffles counted).

    ``units`` (one per clip, e.g. the bird that sang it) leaves out every pair of clips of one unit:
    a bird's clips are alike whatever the clusters and tend to share one, so their pairs would lift
    the within-cluster mean and make the clusters look consistent for the birds' sake. Shuffling
    clips treats them as exchangeable; without a bird's own pairs, what is left compares birds.

    ``given`` (N, H', W'), e.g. the images themselves, asks for consistency *beyond* theirs: each
    pair's similarity of the maps is replaced by its residual after a least-squares polynomial of
    degree ``given_degree`` (default 2, a parabola) in the same pair's similarity of ``given``
    (fitted over the pairs the test compares), and the test runs on the residuals. Maps of one
    cluster that are alike only as far as their images are come out near 0, whatever the two
    kinds of map's levels of similarity; the curve is fitted once, not again per shuffle. A
    straight line (degree 1) reads a convex relation as consistency: pairs of one cluster, alike
    in their images, lie where a convex curve rises above its chord.
    """
    maps = np.asarray(maps)
    clusters, groups = np.asarray(clusters).ravel(), np.asarray(groups).ravel()
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {maps.shape}")
    if len(clusters) != len(maps) or len(groups) != len(maps):
        raise ValueError(f"maps, clusters and groups must have one entry per clip, got {len(maps)}, "
                         f"{len(clusters)} and {len(groups)}")
    if int(n_permutations) != n_permutations or n_permutations < 1:
        raise ValueError(f"n_permutations must be a whole number of at least 1, got {n_permutations!r}")
    n = len(maps)
    matrix = np.asarray((similarity or correlation_matrix)(maps), dtype=np.float64)
    if matrix.shape != (n, n):
        raise ValueError(f"the similarity must give an ({n}, {n}) matrix, got shape {matrix.shape}")
    _, group_codes = np.unique(groups, return_inverse=True)
    _, cluster_codes = np.unique(clusters, return_inverse=True)
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    usable = upper & (group_codes[:, None] == group_codes[None, :]) & ~np.isnan(matrix)
    if units is not None:
        units = np.asarray(units).ravel()
        if len(units) != n:
            raise ValueError(f"units must have one entry per clip ({n}), got {len(units)}")
        usable &= units[:, None] != units[None, :]  # no pair of one bird's clips
    if given is not None:
        given = np.asarray(given)
        if given.ndim != 3 or len(given) != n:
            raise ValueError(f"given must be (N, H, W) with one entry per clip ({n}), got shape {given.shape}")
        reference = np.asarray((similarity or correlation_matrix)(given), dtype=np.float64)
        usable &= ~np.isnan(reference)
        if int(given_degree) != given_degree or given_degree < 1:
            raise ValueError(f"given_degree must be a whole number of at least 1, got {given_degree!r}")
        if usable.sum() < given_degree + 2 or len(np.unique(reference[usable])) <= given_degree:
            raise ValueError(f"the similarity of `given` must take more than {given_degree} values over "
                             f"at least {given_degree + 2} compared pairs to be regressed out")
        curve = np.polynomial.Polynomial.fit(reference[usable], matrix[usable], int(given_degree))
        matrix = np.where(np.isnan(reference), np.nan, matrix - curve(np.nan_to_num(reference)))
    values = np.where(usable, matrix, 0.0)
    weights = usable.astype(np.float64)
    values, weights = values + values.T, weights + weights.T  # symmetric: each pair counted twice below
    total_sum, total_count = values.sum() / 2, weights.sum() / 2
    n_clusters = int(cluster_codes.max()) + 1 if n else 0

    def within(codes: np.ndarray) -> tuple[float, float]:
        onehot = np.zeros((n, n_clusters))
        onehot[np.arange(n), codes] = 1.0
        return (onehot * (values @ onehot)).sum() / 2, (onehot * (weights @ onehot)).sum() / 2

    within_sum, within_count = within(cluster_codes)
    between_sum, between_count = total_sum - within_sum, total_count - within_count
    if within_count < 0.5:
        raise ValueError("no pair of clips shares both a cluster and a group (with a defined similarity, and "
                         "of two units where units are given); the within-cluster mean is undefined")
    if between_count < 0.5:
        raise ValueError("no pair of clips lies in different clusters of the same group (with a defined "
                         "similarity, and of two units where units are given); the between-cluster mean is undefined")
    observed = within_sum / within_count - between_sum / between_count
    generator = np.random.default_rng(seed)
    members = [np.flatnonzero(group_codes == g) for g in range(int(group_codes.max()) + 1)]
    exceed = defined = 0
    for _ in range(int(n_permutations)):
        shuffled = cluster_codes.copy()
        for member in members:
            shuffled[member] = generator.permutation(cluster_codes[member])
        s, c = within(shuffled)
        if c < 0.5 or total_count - c < 0.5:
            # only with pairs left out (undefined, or of one unit): this labelling has no statistic, and
            # the test is the exact one among the labellings that have one, as the observed one has
            continue
        defined += 1
        statistic = s / c - (total_sum - s) / (total_count - c)
        exceed += statistic >= observed - 1e-12
    return {"within": float(within_sum / within_count), "between": float(between_sum / between_count),
            "difference": float(observed), "p_value": float((1 + exceed) / (1 + defined)),
            "n_within_pairs": int(round(within_count)), "n_between_pairs": int(round(between_count)),
            "n_shuffles": defined}


def consistency_p_text(result: dict[str, Any]) -> str:
    """:func:`cluster_consistency`'s p-value as text (chapter 09), its floor set by the shuffles that
    had a statistic (``n_shuffles``), not by those drawn: with pairs left out, fewer may count."""
    shuffles = int(result["n_shuffles"])
    if shuffles == 0:
        return "p undefined (no shuffle left a pair of each kind)"
    return permutation_p_text(float(result["p_value"]), shuffles)
