"""The latent space (chapter 09): features from a named layer, their cache, embeddings, clusters
chosen without labels, agreement scores, trustworthiness and the consistency permutation test."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from wrenlib import latent
from wrenlib.latent import (
    DEFAULT_LAYER,
    agreement_difference,
    choose_clusters,
    cluster_agreement,
    cluster_consistency,
    cluster_structure,
    compare_spaces,
    consistency_p_text,
    correlation_matrix,
    dataset_features,
    embed,
    embedding_quality,
    fitting_k_range,
    fitting_perplexity,
    latent_features,
    label_agreement,
    latent_layer_name,
    sweep_perplexity,
)
from wrenlib.model import DialectCNN, ModelConfig


def _no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _tiny_cnn() -> DialectCNN:
    """The paper's layer layout (two hidden layers) at toy size, with dropout that would show."""
    torch.manual_seed(1)
    model = DialectCNN(ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(8, 16), dropout=0.5))
    model.set_standardisation(0.0, 0.2)
    return model


def _random_dataset(n: int = 12):
    from wrenlib.frontend import PAPER_FRONT_END, assign_backgrounds
    from wrenlib.images import SpectrogramDataset

    rng = np.random.default_rng(0)
    levels = (rng.random((n, 32, 64)) ** 6 * 255).astype(np.uint8)
    clips = pd.DataFrame({"clip": np.arange(n), "label": np.arange(n) % 2, "split": ["test"] * n})
    return SpectrogramDataset(levels, clips, assign_backgrounds(n, "mixed", 0),
                              PAPER_FRONT_END.with_image_size(32, 64), None, with_masks=False)


def _blobs(n_per: int = 20, centres=((0, 0), (10, 0), (0, 10)), seed: int = 0):
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.normal(centre, 0.5, size=(n_per, 2)) for centre in centres])
    return points, np.repeat(np.arange(len(centres)), n_per)


# ---------------------------------------------------------------- features


def test_default_layer_is_the_relu_after_the_penultimate_linear_layer():
    model = _tiny_cnn()
    modules = dict(model.named_modules())
    assert isinstance(modules[DEFAULT_LAYER], nn.ReLU)
    assert isinstance(modules["classifier.4"], nn.Linear) and modules["classifier.4"].out_features == 16
    assert modules[DEFAULT_LAYER] is model.latent_layer() and latent_layer_name(model) == DEFAULT_LAYER


def test_latent_features_match_a_forward_pass_by_hand_and_leave_no_hook():
    model = _tiny_cnn().train()  # dropout 0.5 would change the numbers if eval mode were not used
    images = torch.rand(5, 32, 64)
    features = latent_features(model, images, batch_size=2)
    assert features.shape == (5, 16) and features.dtype == np.float32
    assert model.training and _no_hooks_left(model)
    model.eval()
    with torch.no_grad():
        x = model.features(model.standardise(images[:, None]))
        for index in range(6):  # Flatten, Linear 8, ReLU, Dropout, Linear 16, ReLU
            x = model.classifier[index](x)
    np.testing.assert_allclose(features, x.numpy(), rtol=1e-5, atol=1e-6)
    assert (features >= 0).all() and (features > 0).any()
    np.testing.assert_allclose(features, model.latent_features(images[:, None]).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    before_relu = latent_features(model, images, layer="classifier.4")
    assert (before_relu < 0).any()
    np.testing.assert_allclose(np.maximum(before_relu, 0), features, rtol=1e-5, atol=1e-6)


def test_latent_features_of_another_layer_and_errors(small_cnn):
    images = np.random.default_rng(0).random((3, 32, 64)).astype(np.float32)
    assert latent_features(small_cnn, images, layer=latent_layer_name(small_cnn)).shape == (3, 16)
    assert latent_features(small_cnn, images, layer="features.1").shape == (3, 8 * 8 * 16)  # flattened
    with pytest.raises(ValueError, match="no layer named 'classifier.9'"):
        latent_features(small_cnn, images, layer="classifier.9")
    with pytest.raises(RuntimeError):  # a wrong image size fails inside the forward pass ...
        latent_features(small_cnn, np.zeros((2, 16, 16), np.float32), layer="classifier.2")
    assert _no_hooks_left(small_cnn)  # ... and the hook is still removed


def test_dataset_features_are_cached_once_per_set_of_clips(isolated_artifacts, monkeypatch):
    model, data = _tiny_cnn(), _random_dataset()
    first = dataset_features(model, data, [3, 0, 5, 0], "quick", batch_size=2)
    assert first.shape == (4, 16)
    np.testing.assert_array_equal(first[1], first[3])
    np.testing.assert_allclose(first, latent_features(model, data.images([3, 0, 5, 0])), rtol=1e-5, atol=1e-6)
    files = list((isolated_artifacts / "quick" / "latent").iterdir())
    assert len(files) == 1 and files[0].name.startswith(f"{DEFAULT_LAYER}-") and files[0].suffix == ".npz"

    def fail(*_args, **_kwargs):
        raise AssertionError("features were recomputed instead of read from the cache")

    computed = latent.latent_features
    monkeypatch.setattr(latent, "latent_features", fail)
    again = dataset_features(model, data, [5, 0, 3], "quick")  # same set of clips, another order
    np.testing.assert_array_equal(again, first[[2, 1, 0]])
    with pytest.raises(AssertionError, match="recomputed"):
        dataset_features(model, data, [1, 2], "quick")
    monkeypatch.setattr(latent, "latent_features", computed)
    dataset_features(model, data, [1, 2], "quick")
    dataset_features(model, data, [1, 2], "quick", layer="classifier.4")
    names = sorted(path.name for path in (isolated_artifacts / "quick" / "latent").iterdir())
    assert len(names) == 3 and not any(name.startswith(".") for name in names)  # no temporary file left
    with pytest.raises(ValueError, match="clip indices"):
        dataset_features(model, data, [12], "quick")


# ---------------------------------------------------------------- embeddings


def test_pca_orders_points_on_a_line():
    rng = np.random.default_rng(0)
    t = rng.permutation(np.linspace(-1, 1, 30))
    points = np.outer(t, [3.0, -1.0, 2.0, 0.5]) + rng.normal(0, 1e-3, (30, 4))
    first = embed(points, "pca", n_components=2)[:, 0]
    order = np.argsort(first)
    assert np.all(np.diff(t[order]) > 0) or np.all(np.diff(t[order]) < 0)
    assert embed(points, "pca").shape == (30, 2)


def test_small_sets_get_a_perplexity_and_numbers_of_clusters_they_can_support():
    """Chapters 09 and 12 on few clips (a reader's own recordings): the book's perplexity of 30 and
    k up to 8 where the clips allow them, less where not, and then t-SNE and the clustering run
    where the book's settings would refuse."""
    assert fitting_perplexity(200) == 30.0 and fitting_perplexity(91) == 30.0
    assert fitting_perplexity(31) == pytest.approx(10.0) and fitting_perplexity(31, wanted=5) == 5.0
    assert fitting_k_range(100) == range(2, 9) and fitting_k_range(10) == range(2, 9)
    assert fitting_k_range(8) == range(2, 8) and fitting_k_range(3) == range(2, 3)
    assert fitting_k_range(100, largest=5) == range(2, 6)
    points, _ = _blobs(n_per=4)  # 12 points in 3 groups
    features = np.hstack([points, np.random.default_rng(2).normal(size=(12, 3))])
    with pytest.raises(ValueError, match="below the number of points"):
        embed(features, "tsne", perplexity=30.0)
    assert embed(features, "tsne", perplexity=fitting_perplexity(len(features))).shape == (12, 2)
    few = points[:8]
    with pytest.raises(ValueError, match="too few"):
        choose_clusters(few, range(2, 9))
    _, table = choose_clusters(few, fitting_k_range(len(few)))
    assert table["k"].max() == 7
    for call, value in ((fitting_perplexity, 1), (fitting_k_range, 2), (fitting_k_range, 2.5)):
        with pytest.raises(ValueError, match="at least"):
            call(value)
    with pytest.raises(ValueError, match="positive"):
        fitting_perplexity(50, wanted=0)


def test_embeddings_standardise_each_feature_first():
    """Units on very different scales count alike: rescaling or shifting a feature changes nothing."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    rescaled = features * np.array([1000.0, 0.01, 1.0, 50.0, 3.0]) + np.array([5.0, -2.0, 0.0, 100.0, 1.0])
    np.testing.assert_allclose(embed(rescaled, "pca"), embed(features, "pca"), atol=1e-8)
    np.testing.assert_allclose(embed(rescaled, "tsne", perplexity=8), embed(features, "tsne", perplexity=8),
                               atol=1e-3)


def test_tsne_is_deterministic_for_a_seed_and_checks_the_perplexity():
    points, _ = _blobs(n_per=20)
    features = np.hstack([points, np.random.default_rng(1).normal(size=(60, 6))])
    first = embed(features, "tsne", perplexity=10, seed=3)
    assert first.shape == (60, 2)
    np.testing.assert_array_equal(first, embed(features, "tsne", perplexity=10, seed=3))
    assert not np.allclose(first, embed(features, "tsne", perplexity=20, seed=3))
    with pytest.raises(ValueError, match="perplexity must be positive and below the number of points"):
        embed(features[:10], "tsne", perplexity=10)
    with pytest.raises(ValueError, match="unknown embedding"):
        embed(features, "umap")
    with pytest.raises(ValueError, match=r"must be \(N, D\)"):
        embed(features[:, 0], "pca")


# ---------------------------------------------------------------- clusters


@pytest.mark.parametrize("method", ["kmeans", "gmm", "agglomerative"])
def test_choose_clusters_finds_three_blobs_without_labels(method):
    points, truth = _blobs()
    clusters, table = choose_clusters(points, range(2, 7), method=method)
    assert list(table["k"]) == [2, 3, 4, 5, 6] and table["chosen"].sum() == 1
    assert int(table.loc[table["chosen"], "k"].iloc[0]) == 3
    assert table["silhouette"].idxmax() == table.index[table["chosen"]][0]
    agreement = cluster_agreement(truth, clusters)
    assert agreement["ari"] == pytest.approx(1.0) and agreement["ami"] == pytest.approx(1.0)
    assert agreement["n_clusters"] == 3


def test_choose_clusters_by_bic_and_errors():
    points, truth = _blobs()
    clusters, table = choose_clusters(points, range(2, 6), method="gmm", criterion="bic")
    assert int(table.loc[table["chosen"], "k"].iloc[0]) == 3 and table["bic"].notna().all()
    assert cluster_agreement(truth, clusters)["ari"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="too few for 8 clusters"):
        choose_clusters(points[:8], range(2, 9))
    with pytest.raises(ValueError, match="at least 2"):
        choose_clusters(points, range(1, 4))
    with pytest.raises(ValueError, match="needs method='gmm'"):
        choose_clusters(points, method="kmeans", criterion="bic")
    with pytest.raises(ValueError, match="unknown clustering"):
        choose_clusters(points, method="dbscan")


def test_cluster_structure_tells_separate_clusters_from_one_cloud_or_a_continuum():
    """choose_clusters finds two clusters or more in anything; cluster_structure says whether they
    are more than pieces of one cloud: separate blobs beat the evenly spread reference, a Gaussian
    cloud and a continuum (a noisy line: one arm, no gaps) do not."""
    rng = np.random.default_rng(0)
    blobs, _ = _blobs()
    separate = cluster_structure(blobs, range(2, 6), n_null=19)
    assert separate["clustered"] and separate["silhouette"] > separate["null_high"] >= separate["null_median"]
    assert separate["p_value"] == pytest.approx(1 / 20)  # no reference reached the blobs' silhouette
    cloud = rng.normal(size=(90, 2)) * [3, 1]
    line = np.c_[np.linspace(0, 10, 90), rng.normal(0, 0.3, 90)]
    for one_piece in (cloud, line):
        found = cluster_structure(one_piece, range(2, 6), n_null=19)
        assert not found["clustered"] and found["p_value"] > 0.05
        assert choose_clusters(one_piece, range(2, 6))[1]["chosen"].any()  # which still "finds" clusters
    assert cluster_structure(blobs, range(2, 6), n_null=19) == separate  # one seed, one answer
    with pytest.raises(ValueError, match="n_null must be at least 19"):
        cluster_structure(blobs, n_null=10)  # no p-value could reach 0.05
    with pytest.raises(ValueError, match="level"):
        cluster_structure(blobs, level=1.0)


def test_cluster_structure_calls_points_clustered_only_where_the_p_value_says_so(monkeypatch):
    """The verdict follows the p-value: points beating the 95 % quantile of the reference (which
    interpolates between draws) but not 95 % of the draws themselves are not called clustered."""
    import wrenlib.latent as latent

    # the points' best silhouette, then the 19 references': above their interpolated 95 % quantile
    # (0.95), below their largest two
    silhouettes = iter([0.97] + list(np.linspace(0.0, 1.0, 19)))
    monkeypatch.setattr(latent, "choose_clusters", lambda points, ks, method, seed: (
        None, pd.DataFrame({"silhouette": [next(silhouettes)]})))
    found = cluster_structure(np.random.default_rng(0).random((30, 2)), range(2, 4), n_null=19)
    assert found["silhouette"] > found["null_high"] and found["p_value"] == pytest.approx(2 / 20)
    assert not found["clustered"]


def test_cluster_agreement_ignores_names_and_scores_random_partitions_low():
    truth = np.repeat([0, 1, 2], 20)
    renamed = np.repeat([7, 3, 5], 20)
    assert cluster_agreement(truth, renamed)["ari"] == pytest.approx(1.0)
    shuffled = cluster_agreement(truth, np.random.default_rng(0).permutation(truth))
    assert abs(shuffled["ari"]) < 0.1 and abs(shuffled["ami"]) < 0.1
    with pytest.raises(ValueError, match="one value per clip"):
        cluster_agreement(truth, truth[:-1])


def test_embedding_quality_is_one_for_the_features_themselves():
    points = np.random.default_rng(0).normal(size=(60, 2))
    assert embedding_quality(points, points) == pytest.approx(1.0)
    scrambled = points[np.random.default_rng(1).permutation(60)]
    assert embedding_quality(points, scrambled) < 0.7
    with pytest.raises(ValueError, match="one row per clip"):
        embedding_quality(points, points[:-1])
    with pytest.raises(ValueError, match="n_neighbors"):
        embedding_quality(points, points, n_neighbors=30)


def test_sweep_and_comparison_of_spaces_on_separated_groups():
    points, truth = _blobs(n_per=20)
    rng = np.random.default_rng(2)
    features = points @ rng.normal(size=(2, 8)) + rng.normal(0, 0.3, size=(60, 8))
    sweep = sweep_perplexity(features, [5, 15], truth, seed=0, k_range=range(2, 6))
    assert list(sweep["perplexity"]) == [5.0, 15.0]
    assert set(sweep.columns) >= {"ari", "ami", "trustworthiness", "n_clusters"}
    assert (sweep["ari"] > 0.9).all() and (sweep["trustworthiness"] > 0.8).all()
    spaces = compare_spaces(features, truth, perplexity=15, k_range=range(2, 6))
    assert list(spaces["space"]) == ["tsne", "pca", "features"]
    assert (spaces["ari"] > 0.9).all() and np.isnan(spaces["trustworthiness"].iloc[2])


# ---------------------------------------------------------------- consistency of explanations


def _cluster_maps(noise: float, seed: int = 0):
    """Two dialects with two clusters of six clips each; each cluster has its own map pattern."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([0, 1], 12)
    clusters = np.tile(np.repeat([0, 1], 6), 2)
    patterns = rng.random((4, 6, 8))
    maps = patterns[groups * 2 + clusters] + noise * rng.random((24, 6, 8))
    order = rng.permutation(24)  # clips in no particular order
    return maps[order], clusters[order], groups[order]


def test_correlation_matrix_matches_map_correlation():
    from wrenlib.metrics import map_correlation

    maps = np.random.default_rng(0).random((5, 4, 6))
    matrix = correlation_matrix(maps)
    i, j = np.triu_indices(5, 1)
    np.testing.assert_allclose(matrix[i, j], map_correlation(maps[i], maps[j]))
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    maps[2] = 0.0
    assert np.isnan(correlation_matrix(maps)[2]).all()


def test_cluster_consistency_finds_cluster_specific_maps():
    maps, clusters, groups = _cluster_maps(noise=0.0)
    result = cluster_consistency(maps, clusters, groups, n_permutations=200, seed=0)
    assert result["within"] == pytest.approx(1.0)
    assert result["difference"] > 0.3 and result["p_value"] <= 0.01
    assert result["p_value"] == pytest.approx(1 / 201)
    # pairs inside one group only: 2 groups x 2 clusters x C(6, 2) within, 2 groups x 6 x 6 between
    assert result["n_within_pairs"] == 60 and result["n_between_pairs"] == 72
    # the same clusters numbered per dialect or across dialects give the same answer
    renumbered = cluster_consistency(maps, clusters + 2 * groups, groups, n_permutations=200, seed=0)
    assert renumbered == result


def _difference_by_loops(similarity: np.ndarray, clusters: np.ndarray, groups: np.ndarray) -> float:
    within, between = [], []
    for i, j in itertools.combinations(range(len(similarity)), 2):
        if groups[i] == groups[j]:
            (within if clusters[i] == clusters[j] else between).append(similarity[i, j])
    return float(np.mean(within) - np.mean(between))


@pytest.mark.parametrize("data_seed", [1, 5, 8])
def test_cluster_consistency_matches_the_exact_within_group_permutation_test(data_seed):
    """Two dialects of four clips, two clusters each: all 6 x 6 relabellings inside the groups can be
    listed, so the exact p-value is known; shuffling across groups would give another one."""
    groups, clusters = np.repeat([0, 1], 4), np.tile([0, 0, 1, 1], 2)
    maps = np.random.default_rng(data_seed).random((8, 3, 4))
    similarity = correlation_matrix(maps)
    observed = _difference_by_loops(similarity, clusters, groups)
    relabellings = [np.array(order) for order in set(itertools.permutations([0, 0, 1, 1]))]
    exact = np.mean([_difference_by_loops(similarity, np.concatenate([a, b]), groups) >= observed - 1e-12
                     for a in relabellings for b in relabellings])
    result = cluster_consistency(maps, clusters, groups, n_permutations=4000, seed=0)
    assert result["difference"] == pytest.approx(observed)
    assert result["p_value"] == pytest.approx(exact, abs=0.02)


def test_cluster_consistency_of_noise_is_not_significant():
    rng = np.random.default_rng(5)
    maps = rng.random((24, 6, 8))
    clusters, groups = np.tile(np.repeat([0, 1], 6), 2), np.repeat([0, 1], 12)
    p_values = [cluster_consistency(maps, clusters, groups, n_permutations=200, seed=s)["p_value"]
                for s in range(3)]
    assert min(p_values) > 0.05  # the same for other permutation seeds: not a fragile pass
    custom = cluster_consistency(maps, clusters, groups, similarity=lambda m: -correlation_matrix(m),
                                 n_permutations=50)
    plain = cluster_consistency(maps, clusters, groups, n_permutations=50)
    assert custom["difference"] == pytest.approx(-plain["difference"])


def test_cluster_consistency_beyond_the_images_discounts_maps_that_copy_them():
    """Maps that are the images rescaled are as consistent as the images and no more: nothing is
    left beyond them. Maps with a strong pattern of their own per cluster, on images that share
    only a weak one, stay consistent beyond the images."""
    rng = np.random.default_rng(3)
    groups, clusters = np.repeat([0, 1], 16), np.tile(np.repeat([0, 1], 8), 2)
    images = 0.5 * rng.random((4, 6, 8))[groups * 2 + clusters] + rng.random((32, 6, 8))
    copies = 3.0 * images + 1.0
    raw = cluster_consistency(copies, clusters, groups, n_permutations=200, seed=0)
    assert raw["p_value"] <= 0.01  # the images cluster, so their copies do
    beyond = cluster_consistency(copies, clusters, groups, n_permutations=200, seed=0, given=images)
    assert beyond["difference"] == pytest.approx(0.0, abs=1e-9) and beyond["p_value"] > 0.5
    own = rng.random((4, 6, 8))[groups * 2 + clusters] + 0.3 * rng.random((32, 6, 8))
    beyond = cluster_consistency(own, clusters, groups, n_permutations=200, seed=0, given=images)
    assert beyond["difference"] > 0.2 and beyond["p_value"] <= 0.01
    with pytest.raises(ValueError, match="one entry per clip"):
        cluster_consistency(own, clusters, groups, given=images[:-1])
    with pytest.raises(ValueError, match="must take more than 2 values"):
        cluster_consistency(own, clusters, groups, given=np.ones_like(images))
    with pytest.raises(ValueError, match="given_degree"):
        cluster_consistency(own, clusters, groups, given=images, given_degree=0)


def test_cluster_consistency_beyond_the_images_fits_a_curve_not_a_line_nor_a_subtraction():
    """Map likeness that is a convex function of image likeness (its cube, plus noise), on
    clusters whose images are alike: a straight line reads the curve as consistency beyond the
    images, the default parabola does not. An affine relation with slope 0.4 leaves nothing
    either: the images' part is regressed out, not subtracted (which would leave 0.6 of it, negative)."""
    rng = np.random.default_rng(11)
    n = 40
    groups, clusters = np.repeat([0, 1], 20), np.tile(np.repeat([0, 1], 10), 2)
    same = clusters[:, None] == clusters[None, :]
    likeness = np.triu(np.where(same, rng.uniform(0.6, 1.0, (n, n)), rng.uniform(0.0, 0.9, (n, n))), 1)
    noise = np.triu(rng.normal(0.0, 0.02, (n, n)), 1)
    upper = [likeness, likeness ** 3 + noise, 0.2 + 0.4 * likeness + noise]
    tables = [table + table.T for table in upper]
    similarity = lambda maps: tables[int(maps[0, 0, 0])]  # each "map" names its table of pair likenesses
    images, convex, affine = (np.full((n, 1, 1), float(k)) for k in range(3))
    test = dict(similarity=similarity, n_permutations=200, seed=0)
    assert cluster_consistency(convex, clusters, groups, **test)["p_value"] <= 0.01
    line = cluster_consistency(convex, clusters, groups, given=images, given_degree=1, **test)
    curve = cluster_consistency(convex, clusters, groups, given=images, **test)
    assert line["p_value"] <= 0.01 and curve["p_value"] > 0.05 and abs(curve["difference"]) < 0.01
    raw = cluster_consistency(affine, clusters, groups, **test)
    beyond = cluster_consistency(affine, clusters, groups, given=images, given_degree=1, **test)
    assert raw["difference"] > 0.1 and abs(beyond["difference"]) < 0.01 and beyond["p_value"] > 0.05


def test_cluster_consistency_errors():
    maps, clusters, groups = _cluster_maps(noise=0.1)
    with pytest.raises(ValueError, match="one entry per clip"):
        cluster_consistency(maps, clusters[:-1], groups)
    with pytest.raises(ValueError, match=r"must be \(N, H, W\)"):
        cluster_consistency(maps[0], clusters, groups)
    with pytest.raises(ValueError, match="between-cluster mean is undefined"):
        cluster_consistency(maps, groups, groups)  # one cluster per group
    with pytest.raises(ValueError, match="within-cluster mean is undefined"):
        cluster_consistency(maps, np.arange(24), groups)  # every clip its own cluster
    with pytest.raises(ValueError, match=r"\(24, 24\) matrix"):
        cluster_consistency(maps, clusters, groups, similarity=lambda m: np.zeros((3, 3)))


def test_label_agreement_names_the_property_the_clusters_follow():
    from wrenlib.latent import label_agreement

    rng = np.random.default_rng(0)
    song_type = np.repeat(np.arange(4), 15)
    clusters = song_type.copy()
    clusters[:3] = 1  # three clips misplaced
    labels = {"song type": song_type, "noise": rng.integers(0, 4, size=60)}
    table = label_agreement(clusters, labels, n_boot=200, seed=1).set_index("label")
    assert table.loc["song type", "ari"] > 0.8 and table.loc["noise", "ari"] < 0.1
    assert table.loc["song type", "ari_low"] <= table.loc["song type", "ari"] <= table.loc["song type", "ari_high"]
    assert table.loc["noise", "ami_high"] < table.loc["song type", "ami_low"]
    assert table.loc["song type", "n_values"] == 4 and table.loc["song type", "n_clusters"] == 4


def test_label_agreement_intervals_hold_the_estimate_for_fine_labels():
    """Many small groups (a bird's handful of clips) and clusters that ignore them: a bootstrap with
    replacement would put the whole interval above the estimate (repeated clips agree with
    themselves); the half-sample interval holds it, about 0 for both measures."""
    from wrenlib.latent import label_agreement

    rng = np.random.default_rng(3)
    birds = np.repeat(np.arange(12), 6)
    clusters = rng.integers(0, 3, size=len(birds))
    row = label_agreement(clusters, {"bird": birds}, n_boot=300, seed=0).iloc[0]
    for measure in ("ari", "ami"):
        assert row[f"{measure}_low"] <= row[measure] <= row[f"{measure}_high"]
        assert abs(row[measure]) < 0.05 and row[f"{measure}_low"] < 0 < row[f"{measure}_high"]


def test_half_samples_of_birds_draw_whole_birds_and_widen_where_birds_differ():
    """A bird's clips share its voice: drawn by bird, a half-sample holds every clip of half the
    birds and none of the others, and where the clusters get some birds right and others wrong,
    the interval over birds is wider than the one over clips, which treats each clip as news."""
    from wrenlib.latent import _half_samples, label_agreement

    birds = np.repeat(np.arange(12), 6)
    for drawn in _half_samples(len(birds), 50, seed=0, groups=birds):
        assert len(np.unique(birds[drawn])) == 6 and len(drawn) == 36  # 6 whole birds of 6 clips
    rng = np.random.default_rng(5)
    song_type = np.tile(np.repeat([0, 1, 2], 2), 12)  # each bird sings every type twice
    clusters = np.where(birds < 6, song_type, rng.integers(0, 3, size=len(birds)))  # half the birds followed
    by_clip = label_agreement(clusters, {"song type": song_type}, n_boot=300, seed=0).iloc[0]
    by_bird = label_agreement(clusters, {"song type": song_type}, n_boot=300, seed=0, groups=birds).iloc[0]
    assert by_bird["ari"] == by_clip["ari"]  # the estimate is the same; only its uncertainty is not
    assert by_bird["ari_high"] - by_bird["ari_low"] > 1.3 * (by_clip["ari_high"] - by_clip["ari_low"])
    with pytest.raises(ValueError, match="groups must name the group of each of the 72 clips"):
        _half_samples(len(birds), 5, seed=0, groups=birds[:10])


def test_cluster_consistency_leaves_out_pairs_of_one_birds_clips():
    """Each bird's two clips share a map pattern and a cluster, and the clusters have no pattern of
    their own: counted, a bird's own pairs make the clusters look consistent; left out, nothing is."""
    rng = np.random.default_rng(11)
    birds = np.repeat(np.arange(24), 2)  # 24 birds, 2 clips each
    groups = (birds >= 12).astype(int)  # 12 birds per dialect
    clusters = (birds % 12 >= 6).astype(int)  # 6 birds per cluster, a bird's clips in one cluster
    maps = rng.random((24, 6, 8))[birds] + 0.3 * rng.random((48, 6, 8))
    counted = cluster_consistency(maps, clusters, groups, n_permutations=200, seed=0)
    assert counted["p_value"] <= 0.01  # the birds' own likeness, read as the clusters'
    apart = cluster_consistency(maps, clusters, groups, n_permutations=200, seed=0, units=birds)
    assert apart["p_value"] > 0.05
    # 2 groups x 2 clusters x (C(12, 2) - 6 birds' own pairs) within; between pairs never share a bird
    assert apart["n_within_pairs"] == 2 * 2 * (66 - 6) and apart["n_between_pairs"] == counted["n_between_pairs"]
    with pytest.raises(ValueError, match="units must have one entry per clip"):
        cluster_consistency(maps, clusters, groups, units=birds[:-1])


def test_a_paired_difference_decides_where_two_intervals_overlap():
    """The second partition is the first with six more clips mislabelled: each one's own interval
    over half-samples overlaps the other's, but drawn on the same clips the first is better in
    nearly every draw, so the paired difference's interval lies above 0."""
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2], 20)
    first = truth.copy()
    wrong = rng.choice(60, 8, replace=False)
    first[wrong] = (first[wrong] + 1) % 3
    second = first.copy()
    more = rng.choice(np.setdiff1d(np.arange(60), wrong), 6, replace=False)
    second[more] = (second[more] + 1) % 3
    a, b = (label_agreement(p, {"song type": truth}).iloc[0] for p in (first, second))
    assert a["ari_low"] < b["ari_high"]  # the separate intervals overlap: they decide nothing
    paired = agreement_difference(first, second, truth)
    assert paired["difference"] == pytest.approx(a["ari"] - b["ari"])
    assert 0 < paired["low"] < paired["difference"] < paired["high"]
    swapped = agreement_difference(second, first, truth)  # the same draws, the sign turned
    assert swapped["low"] == pytest.approx(-paired["high"]) and swapped["high"] == pytest.approx(-paired["low"])
    same = agreement_difference(first, first.copy(), truth)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}
    # the interval is the draws' 2.5th and 97.5th percentiles (a 90 % one: the 5th and 95th), draw for draw
    from wrenlib.latent import _half_samples, cluster_agreement

    drawn = [cluster_agreement(truth[d], first[d])["ari"] - cluster_agreement(truth[d], second[d])["ari"]
             for d in _half_samples(60, 200, 4)]
    for level, tails in ((0.95, (2.5, 97.5)), (0.9, (5, 95))):
        result = agreement_difference(first, second, truth, n_boot=200, seed=4, level=level)
        assert (result["low"], result["high"]) == pytest.approx(tuple(np.percentile(drawn, tails)))
    with pytest.raises(ValueError, match="one value per clip"):
        agreement_difference(first, second[:-1], truth)


# ---------------------------------------------------------------- further properties (mutation review)


def test_an_empty_layer_name_is_refused_not_read_as_the_whole_model(small_cnn):
    """"" names the model itself in ``named_modules()``: its output is the two logits, which read
    as latent features would give chapter 09 a two-unit "latent space" without a word."""
    with pytest.raises(ValueError, match="no layer named ''"):
        latent_features(small_cnn, np.zeros((2, 32, 64), np.float32), layer="")


def test_pca_may_keep_every_dimension_of_the_features():
    """n_components may go up to min(N, D): a PCA that keeps all D axes is a rotation of the
    standardised features, so it keeps every distance."""
    from scipy.spatial.distance import pdist

    from wrenlib.latent import standardise_features

    features = np.random.default_rng(0).normal(size=(30, 4))
    full = embed(features, "pca", n_components=4)
    assert full.shape == (30, 4)
    np.testing.assert_allclose(pdist(full), pdist(standardise_features(features)), atol=1e-8)
    with pytest.raises(ValueError, match="n_components"):
        embed(features, "pca", n_components=5)


def test_two_points_get_a_perplexity():
    """The smallest set t-SNE takes, two points, gets (N - 1) / 3 rather than an error."""
    assert fitting_perplexity(2) == pytest.approx(1 / 3)


def test_choose_clusters_reads_k_range_in_any_order():
    """The table runs over k in increasing order whatever order k_range is given in (so ties go to
    the smaller k as documented), the same k is chosen, and the size check uses the largest k."""
    points, _ = _blobs(n_per=10)
    forward, table = choose_clusters(points, range(2, 6))
    backward, reversed_table = choose_clusters(points, [5, 3, 4, 2, 3])
    assert list(reversed_table["k"]) == [2, 3, 4, 5]
    pd.testing.assert_frame_equal(reversed_table, table)
    np.testing.assert_array_equal(backward, forward)
    with pytest.raises(ValueError, match="too few for 8 clusters"):
        choose_clusters(points[:8], [8, 2])


def _fake_silhouettes(monkeypatch, first, references):
    """choose_clusters stand-in: the points' table first, then one table per reference draw."""
    import wrenlib.latent as latent

    tables = iter([first] + [[value] for value in references])
    monkeypatch.setattr(latent, "choose_clusters", lambda points, ks, method, seed: (
        None, pd.DataFrame({"silhouette": next(tables)})))


def test_cluster_structure_counts_references_that_tie_with_the_points(monkeypatch):
    """A reference that reaches the points' silhouette exactly is "at least as extreme": evenly
    spread points that do as well as the clips leave no evidence of clusters (p = 1, not 1 / 20)."""
    _fake_silhouettes(monkeypatch, [0.5], [0.5] * 19)
    found = cluster_structure(np.random.default_rng(0).random((30, 2)), range(2, 4), n_null=19)
    assert found["p_value"] == pytest.approx(1.0) and not found["clustered"]


def test_cluster_structure_compares_the_best_silhouette_over_k(monkeypatch):
    """The points' statistic is their best silhouette over k_range, as the references' is: not the
    first k's, which would compare different things."""
    _fake_silhouettes(monkeypatch, [0.1, 0.9], [0.5] * 19)
    found = cluster_structure(np.random.default_rng(0).random((30, 2)), range(2, 4), n_null=19)
    assert found["silhouette"] == pytest.approx(0.9) and found["p_value"] == pytest.approx(1 / 20)


def test_cluster_structure_calls_a_p_value_at_one_minus_level_clustered_at_any_level(monkeypatch):
    """p at most 1 - level is clustered, also where 1 - level is not exact in floating point
    (1 - 0.9 = 0.0999...): with 9 references and none reaching the points, p = 0.1 is clustered."""
    for level, n_null in ((0.9, 9), (0.8, 4)):
        _fake_silhouettes(monkeypatch, [0.9], [0.1] * n_null)
        found = cluster_structure(np.random.default_rng(0).random((30, 2)), range(2, 4), n_null=n_null, level=level)
        assert found["p_value"] == pytest.approx(1 / (1 + n_null)) and found["clustered"], level


def test_cluster_structure_does_not_depend_on_where_the_points_lie():
    """The reference is spread over the points' own extent along their principal axes: moving the
    points elsewhere (here a diagonal continuum, moved off its axis) changes neither the
    reference nor the verdict."""
    rng = np.random.default_rng(0)
    line = np.c_[np.linspace(0, 10, 40), rng.normal(0, 0.3, 40)] @ np.array([[1.0, 1.0], [-1.0, 1.0]]) / np.sqrt(2)
    here = cluster_structure(line, range(2, 4), n_null=19)
    there = cluster_structure(line + [50.0, 80.0], range(2, 4), n_null=19)
    assert there["null_median"] == pytest.approx(here["null_median"], rel=1e-6)
    assert there["null_high"] == pytest.approx(here["null_high"], rel=1e-6)
    assert there["p_value"] == here["p_value"] and there["clustered"] == here["clustered"]


def test_agreement_counts_name_the_labels_and_the_clusters_apart():
    """n_true counts the known labels and n_clusters the clusters (label_agreement: n_values and
    n_clusters); two song types cut into four clusters must not read as four types."""
    truth, clusters = np.repeat([0, 1], 10), np.repeat([0, 1, 2, 3], 5)
    agreement = cluster_agreement(truth, clusters)
    assert agreement["n_true"] == 2 and agreement["n_clusters"] == 4
    row = label_agreement(clusters, {"song type": truth}, n_boot=20).iloc[0]
    assert row["n_values"] == 2 and row["n_clusters"] == 4


def test_half_samples_of_birds_work_whatever_the_birds_are_called():
    """Birds named by strings or by numbers other than 0..n-1 are drawn whole all the same: half of
    them, each with all its clips."""
    from wrenlib.latent import _half_samples

    for birds in (np.repeat([f"bird {i}" for i in range(12)], 6), np.repeat(np.arange(100, 112), 6),
                  np.repeat(np.arange(11, -1, -1) * 3, 6)):
        for drawn in _half_samples(len(birds), 20, seed=0, groups=birds):
            assert len(drawn) == 36 and len(np.unique(birds[drawn])) == 6
            assert all(np.sum(birds[drawn] == bird) == 6 for bird in np.unique(birds[drawn]))


def test_label_agreement_intervals_are_the_central_95_percent_of_the_half_samples():
    """The reported interval is a 95 % one: the 2.5th and 97.5th percentiles of the half-sample
    draws (a 90 % interval would understate the uncertainty of which property the clusters follow)."""
    from wrenlib.latent import _half_samples

    rng = np.random.default_rng(2)
    truth = np.repeat([0, 1, 2], 12)
    clusters = np.where(rng.random(36) < 0.7, truth, rng.integers(0, 3, 36))
    drawn = [cluster_agreement(truth[d], clusters[d]) for d in _half_samples(36, 100, 3)]
    row = label_agreement(clusters, {"song type": truth}, n_boot=100, seed=3).iloc[0]
    for measure in ("ari", "ami"):
        low, high = np.percentile([d[measure] for d in drawn], [2.5, 97.5])
        assert (row[f"{measure}_low"], row[f"{measure}_high"]) == pytest.approx((low, high))


def test_sweep_and_spaces_do_not_depend_on_the_units_scales():
    """Chapter 09 standardises the latent features: a unit on a scale 1000 times the others' must
    change neither the clusters found in the feature space nor any trustworthiness, which are
    measured against the standardised features the embeddings were made from."""
    points, truth = _blobs(n_per=12)
    rng = np.random.default_rng(2)
    features = points @ rng.normal(size=(2, 6)) + rng.normal(0, 0.3, size=(36, 6))
    features[:, 5] = rng.normal(0, 1, 36)  # a unit that knows nothing of the groups
    rescaled = features * np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1000.0])
    sweep, sweep_rescaled = (sweep_perplexity(f, [8], truth, k_range=range(2, 5)) for f in (features, rescaled))
    assert sweep_rescaled["trustworthiness"].iloc[0] == pytest.approx(sweep["trustworthiness"].iloc[0], abs=1e-3)
    spaces, spaces_rescaled = (compare_spaces(f, truth, perplexity=8, k_range=range(2, 5)).set_index("space")
                               for f in (features, rescaled))
    for space in ("tsne", "pca"):
        assert spaces_rescaled.loc[space, "trustworthiness"] == pytest.approx(spaces.loc[space, "trustworthiness"],
                                                                             abs=1e-3)
    assert spaces_rescaled.loc["features", "ari"] == pytest.approx(spaces.loc["features", "ari"])
    assert spaces.loc["features", "ari"] > 0.9


def test_cluster_consistency_leaves_out_the_pairs_of_an_all_zero_map():
    """A clip whose map is all zero has no correlation with any other: its pairs are left out, and
    the means and pair counts are those of the clips without it (not NaN)."""
    maps, clusters, groups = _cluster_maps(noise=0.3)
    blank = np.concatenate([maps, np.zeros((1, *maps.shape[1:]))])
    with_blank = cluster_consistency(blank, np.r_[clusters, 0], np.r_[groups, 0], n_permutations=50)
    without = cluster_consistency(maps, clusters, groups, n_permutations=50)
    for key in ("within", "between", "difference", "n_within_pairs", "n_between_pairs"):
        assert with_blank[key] == pytest.approx(without[key]), key
    assert 0 < with_blank["p_value"] <= 1


def test_cluster_consistency_beyond_the_images_leaves_out_pairs_of_a_blank_image():
    """An all-zero image has no similarity to regress on: its pairs are left out of the fit and of
    the test, which then answers as without that clip (not NaN)."""
    rng = np.random.default_rng(3)
    groups, clusters = np.repeat([0, 1], 8), np.tile(np.repeat([0, 1], 4), 2)
    images = 0.5 * rng.random((4, 6, 8))[groups * 2 + clusters] + rng.random((16, 6, 8))
    maps = rng.random((4, 6, 8))[groups * 2 + clusters] + 0.5 * rng.random((16, 6, 8))
    extra_map = rng.random((1, 6, 8))
    blank = cluster_consistency(np.concatenate([maps, extra_map]), np.r_[clusters, 0], np.r_[groups, 0],
                                n_permutations=50, given=np.concatenate([images, np.zeros((1, 6, 8))]))
    without = cluster_consistency(maps, clusters, groups, n_permutations=50, given=images)
    for key in ("within", "between", "difference", "n_within_pairs", "n_between_pairs"):
        assert blank[key] == pytest.approx(without[key]), key


def test_a_shuffle_without_a_within_cluster_pair_has_no_statistic_and_is_not_counted():
    """Where units leave some relabellings with no within-cluster pair, those relabellings have no
    statistic. One dialect of four clips by two birds, two clusters: of the six relabellings two
    leave no pair, two give the observed split and two the other, so the exact test over the four
    defined ones gives p = 2 / 4. Counting the undefined ones as not exceeding gave 2 / 6, a p too
    small that calls consistency too easily; counting them as exceeding would give 4 / 6."""
    rng = np.random.default_rng(0)
    maps = rng.random((2, 6, 8))[[0, 0, 1, 1]] + 0.05 * rng.random((4, 6, 8))
    result = cluster_consistency(maps, [0, 0, 1, 1], [0, 0, 0, 0], n_permutations=3000, seed=0,
                                 units=["a", "b", "a", "b"])
    assert result["n_within_pairs"] == 2 and result["p_value"] == pytest.approx(0.5, abs=0.04)
    assert result["n_shuffles"] == pytest.approx(2000, abs=120)
    assert cluster_consistency(maps, [0, 0, 1, 1], [0, 0, 0, 0], n_permutations=600, seed=0)["n_shuffles"] == 600


def test_consistency_p_text_takes_its_floor_from_the_shuffles_with_a_statistic():
    """Of 1000 shuffles drawn only 40 had a statistic: the smallest p they can show is 1 / 41, so the
    text says "p ≤ 0.025" where the floor of all 1000 draws would claim "p ≤ 0.001"; with none, p
    has no meaning and the text says so rather than quote p = 1."""
    assert consistency_p_text({"p_value": 1 / 41, "n_shuffles": 40}) == "p ≤ 0.025"
    assert consistency_p_text({"p_value": 1 / 1001, "n_shuffles": 1000}) == "p ≤ 0.001"
    assert consistency_p_text({"p_value": 0.5, "n_shuffles": 40}) == "p = 0.50"
    assert consistency_p_text({"p_value": 1.0, "n_shuffles": 0}).startswith("p undefined")
    rng = np.random.default_rng(0)
    maps = rng.random((2, 6, 8))[[0, 0, 1, 1]] + 0.05 * rng.random((4, 6, 8))
    result = cluster_consistency(maps, [0, 0, 1, 1], [0, 0, 0, 0], n_permutations=300, seed=0,
                                 units=["a", "b", "a", "b"])  # about 200 of the 300 shuffles have a statistic
    assert consistency_p_text(result) == f"p = {result['p_value']:.3f}" and result["n_shuffles"] < 300
