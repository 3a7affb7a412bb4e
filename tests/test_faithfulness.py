"""Sanity and faithfulness (chapter 10): deletion and insertion curves on a model whose only
evidence is a known box, the cascading model randomisation, map similarity and stability."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from scipy import ndimage
from torch import nn

from wrenlib import faithfulness
from wrenlib.explain import Explanation, background_levels
from wrenlib.faithfulness import (
    SIMILARITY_MEASURES,
    curve_auc,
    deletion_curve,
    map_similarity,
    noise_stability,
    noisy_copies,
    perturbed_images,
    random_maps,
    randomisable_layer_labels,
    randomisable_layers,
    randomisation_maps,
    randomisation_test,
    randomised_models,
    seed_stability,
)
from wrenlib.model import DialectCNN, ModelConfig

BOX = (slice(8, 16), slice(24, 40))  # rows x columns of the only evidence the box model sees


class BoxEvidence(nn.Module):
    """Class 1's logit grows with how far the pixels inside BOX lie from the image's background
    level; class 0's logit is 0. Nothing outside the box matters, on black or white."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distance = (x - background_levels(x).view(-1, 1, 1, 1)).abs()[:, 0, BOX[0], BOX[1]].mean(dim=(1, 2))
        return torch.stack([torch.zeros_like(distance), 12.0 * (distance - 0.25)], dim=1)


def _box_images(n: int, seed: int = 0) -> np.ndarray:
    """Speckle everywhere and a lit box; every other image on a white background."""
    rng = np.random.default_rng(seed)
    levels = (rng.random((n, 32, 64)) < 0.1) * rng.random((n, 32, 64))
    levels[:, BOX[0], BOX[1]] = 0.7 + 0.3 * rng.random((n, 8, 16))
    levels[1::2] = 1 - levels[1::2]
    return levels.astype(np.float32)


def _probabilities(model: nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(images)[:, None]), dim=1).numpy()


# ---------------------------------------------------------------- deletion and insertion curves


def test_the_perfect_map_beats_random_which_beats_the_inverted_map():
    model, images = BoxEvidence(), _box_images(4)
    perfect = np.zeros(images.shape, np.float32)
    perfect[:, BOX[0], BOX[1]] = 1.0
    maps = {"perfect": perfect, "random": random_maps(images.shape, seed=1), "inverted": 1 - perfect}
    areas = {}
    for mode in ("deletion", "insertion"):
        for name, chosen in maps.items():
            fractions, scores = deletion_curve(model, images, chosen, steps=20, mode=mode)
            areas[mode, name] = curve_auc(fractions, scores)
    assert np.all(areas["deletion", "perfect"] < areas["deletion", "random"])
    assert np.all(areas["deletion", "random"] < areas["deletion", "inverted"])
    assert np.all(areas["insertion", "perfect"] > areas["insertion", "random"])
    assert np.all(areas["insertion", "random"] > areas["insertion", "inverted"])
    assert np.all(areas["deletion", "perfect"] < 0.15) and np.all(areas["deletion", "inverted"] > 0.8)


def test_curves_start_on_the_image_and_end_on_its_background():
    model, images = BoxEvidence(), _box_images(4)
    maps = random_maps(images.shape, seed=2)
    fractions, deletion = deletion_curve(model, images, maps, steps=4)
    _, insertion = deletion_curve(model, images, maps, steps=4, mode="insertion")
    np.testing.assert_allclose(fractions, [0, 0.25, 0.5, 0.75, 1])
    empty = np.broadcast_to(np.median(images.reshape(4, -1), axis=1)[:, None, None], images.shape)
    target = _probabilities(model, images).argmax(1)
    assert target.tolist() == [1, 1, 1, 1]
    np.testing.assert_allclose(deletion[:, 0], _probabilities(model, images)[:, 1], rtol=1e-6)
    np.testing.assert_allclose(deletion[:, -1], _probabilities(model, np.ascontiguousarray(empty))[:, 1], rtol=1e-6)
    np.testing.assert_allclose(insertion[:, [0, -1]], deletion[:, [-1, 0]], rtol=1e-6)
    frames = perturbed_images(images, maps, fractions)
    assert frames.shape == (4, 5, 32, 64)
    np.testing.assert_array_equal(frames[:, 0], images)
    np.testing.assert_array_equal(frames[:, -1], empty)  # fraction 1: all background (0 or 1)
    assert set(np.unique(frames[1::2, -1])) == {1.0}
    _, other_class = deletion_curve(model, images, maps, targets=0, steps=4)
    np.testing.assert_allclose(other_class, 1 - deletion, atol=1e-6)


def test_pixels_go_in_the_map_order_and_ties_in_a_fixed_scattered_order():
    image = np.random.default_rng(4).random((1, 4, 8)).astype(np.float32)
    level = np.sort(image.ravel())[15]  # torch's median of 32 values: the lower middle one
    ranking = np.random.default_rng(3).permutation(32).reshape(1, 4, 8).astype(np.float32)
    frames = perturbed_images(image, ranking, [0.0, 0.25, 1.0], mode="insertion")[0]
    top = ranking[0] >= 24  # the 8 highest-ranked pixels are restored first, the rest stay background
    np.testing.assert_array_equal(frames[1][top], image[0][top])
    np.testing.assert_array_equal(frames[1][~top], level)
    np.testing.assert_array_equal(frames[0], level)
    np.testing.assert_array_equal(frames[2], image[0])
    ranks = faithfulness._pixel_ranks(torch.zeros(2, 4, 8))
    assert torch.equal(ranks[0], ranks[1]) and sorted(ranks[0].tolist()) == list(range(32))
    assert not torch.equal(ranks[0], torch.arange(32))  # ties: a fixed scattered order, not raster order
    tied = torch.tensor([[2.0, 1.0, 1.0, 1.0, 3.0, 1.0]])
    assert faithfulness._pixel_ranks(tied)[0, [4, 0]].tolist() == [0, 1]  # ranked values come first


def test_curves_do_not_depend_on_the_batch(small_cnn):
    images = _box_images(4, seed=5)
    maps = random_maps(images.shape, seed=3)
    small = deletion_curve(BoxEvidence(), images, maps, steps=5, batch_size=3, mode="insertion")[1]
    large = deletion_curve(BoxEvidence(), images, maps, steps=5, batch_size=64, mode="insertion")[1]
    np.testing.assert_array_equal(small, large)
    small = deletion_curve(small_cnn, images, maps, steps=5, batch_size=3)[1]
    large = deletion_curve(small_cnn, images, maps, steps=5, batch_size=64)[1]
    np.testing.assert_allclose(small, large, rtol=0, atol=1e-6)  # oneDNN's sums differ by batch in the 7th digit


def test_curve_input_is_checked():
    images = _box_images(2)
    with pytest.raises(ValueError, match="mode must be"):
        deletion_curve(BoxEvidence(), images, images, mode="erase")
    with pytest.raises(ValueError, match="like the images"):
        deletion_curve(BoxEvidence(), images, images[:, :16])
    with pytest.raises(ValueError, match="NaN"):
        deletion_curve(BoxEvidence(), images, np.full(images.shape, np.nan))
    with pytest.raises(ValueError, match="steps"):
        deletion_curve(BoxEvidence(), images, images, steps=0)
    with pytest.raises(ValueError, match="up_to"):
        deletion_curve(BoxEvidence(), images, images, up_to=0)
    with pytest.raises(ValueError, match="increase"):
        curve_auc([0.0, 1.0, 0.5], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least two fractions"):
        curve_auc([0.0], [[0.5]])
    np.testing.assert_allclose(curve_auc([0, 0.5, 1], [[1, 1, 1], [1, 0, 0]]), [1.0, 0.25])


# ---------------------------------------------------------------- cascading randomisation


def test_randomised_models_reset_from_the_top_and_leave_the_model_alone(small_cnn):
    before = {name: tensor.clone() for name, tensor in small_cnn.state_dict().items()}
    names = randomisable_layers(small_cnn)
    assert names == ["classifier.4", "classifier.1", "features.1.0", "features.0.0"]
    cascade = list(randomised_models(small_cnn, seed=0))
    assert [name for name, _ in cascade] == names
    for name, tensor in small_cnn.state_dict().items():
        assert torch.equal(tensor, before[name]), f"{name} of the original model changed"
    for k, (_, copy) in enumerate(cascade):
        assert copy is not small_cnn and not copy.training
        for place, layer in enumerate(names):
            for weight in ("weight", "bias"):
                same = torch.equal(copy.get_submodule(layer).get_parameter(weight),
                                   small_cnn.get_submodule(layer).get_parameter(weight))
                assert same == (place > k), f"copy {k}: {layer}.{weight} should be {'kept' if place > k else 'reset'}"
        assert torch.equal(copy.standardise.std, small_cnn.standardise.std)  # 0.2, not the default 1
    again = list(randomised_models(small_cnn, seed=0))
    other = list(randomised_models(small_cnn, seed=1))
    last = cascade[-1][1].features[0][0].weight
    assert torch.equal(again[-1][1].features[0][0].weight, last)
    assert not torch.equal(other[-1][1].features[0][0].weight, last)
    with pytest.raises(ValueError, match="no layer"):
        randomised_models(nn.ReLU())


def test_a_map_that_ignores_the_model_passes_every_randomisation(small_cnn, monkeypatch):
    """An edge detector is the paper's worry made explicit: it looks plausible and knows nothing."""

    asked = []

    def edge_detector(model, images, method, targets=None, **_options):
        x = np.asarray(images, dtype=np.float32)
        if targets is None:
            targets = _probabilities(model, x).argmax(1)
        asked.append(np.asarray(targets).tolist())
        edges = np.hypot(ndimage.sobel(x, axis=1), ndimage.sobel(x, axis=2)).astype(np.float32)
        return Explanation(method, edges, np.asarray(targets), {})

    monkeypatch.setattr(faithfulness, "explain", edge_detector)
    images = _box_images(3)
    table = randomisation_test(small_cnn, images, "gradcam")
    assert len(table) == 4 * 3 and table["layer"].unique().tolist() == randomisable_layers(small_cnn)
    np.testing.assert_allclose(table[list(SIMILARITY_MEASURES)].to_numpy(), 1.0, atol=1e-9)
    predicted = _probabilities(small_cnn, images).argmax(1).tolist()
    assert asked == [predicted] * 5  # the randomised models explain the original model's classes


def test_randomisation_maps_explains_only_the_depths_asked_and_keeps_the_trained_model(small_cnn):
    before = {name: tensor.clone() for name, tensor in small_cnn.state_dict().items()}
    seen = []

    def explainer(network):
        seen.append(network)
        return {"weights": np.array([float(p.detach().abs().sum()) for p in network.parameters()])}

    rows = randomisation_maps(small_cnn, explainer, depths=[1, 3])
    layers = randomisable_layers(small_cnn)
    assert [(depth, layer) for depth, layer, _ in rows] == [(0, "none"), (1, layers[0]), (3, layers[2])]
    # the trained model is explained last (a job beside the book's cascade may be caching its maps)
    assert seen[-1] is small_cnn and len(seen) == 3 and all(network is not small_cnn for network in seen[:-1])
    # the copy at depth 1 differs from the trained model in the top layer only; depth 3 in three
    trained, top, three = (row[2]["weights"] for row in rows)
    changed = lambda maps: {name for (name, _), a, b in zip(small_cnn.named_parameters(), trained, maps) if a != b}
    assert changed(top) == {f"{layers[0]}.weight", f"{layers[0]}.bias"}
    assert changed(three) == {f"{name}.{kind}" for name in layers[:3] for kind in ("weight", "bias")}
    assert all(torch.equal(before[name], tensor) for name, tensor in small_cnn.state_dict().items())
    with pytest.raises(ValueError, match="depths must lie in 1..4"):
        randomisation_maps(small_cnn, explainer, depths=[0])
    with pytest.raises(ValueError, match="depths must lie in 1..4"):
        randomisation_maps(small_cnn, explainer, depths=[5])


def test_deeplift_maps_change_once_the_classifier_is_randomised(small_cnn):
    images = (np.random.default_rng(0).random((4, 32, 64)) ** 3).astype(np.float32)  # song in most pixels
    table = randomisation_test(small_cnn, images, "deeplift", targets=[0, 1, 0, 1])
    assert table.columns.tolist() == ["layer", "n_randomised", "image", "target", *SIMILARITY_MEASURES]
    assert table["target"].tolist() == [0, 1, 0, 1] * 4  # always the original model's classes
    means = table.groupby("n_randomised")[list(SIMILARITY_MEASURES)].mean()
    assert means.loc[2, "spearman_abs"] < 0.8  # both linear layers reset
    assert means.loc[4, "spearman_abs"] < 0.8 and abs(means.loc[4, "spearman"]) < 0.3


# ---------------------------------------------------------------- similarity and stability


def test_map_similarity_of_copies_negations_and_constants():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 16, 24))
    same = map_similarity(maps, 3 * maps)
    for name in SIMILARITY_MEASURES:
        np.testing.assert_allclose(same[name], 1.0, atol=1e-9, err_msg=name)
    shifted = map_similarity(maps, maps + 2)  # all but the absolute ranks ignore an offset
    for name in ("spearman", "ssim", "pearson"):
        np.testing.assert_allclose(shifted[name], 1.0, atol=1e-9, err_msg=name)
    flipped = map_similarity(maps, -maps)
    np.testing.assert_allclose(flipped["spearman"], -1.0)
    np.testing.assert_allclose(flipped["pearson"], -1.0)
    np.testing.assert_allclose(flipped["spearman_abs"], 1.0)  # magnitudes agree
    other = rng.normal(size=(3, 16, 24))
    found = map_similarity(maps, other)
    for i in range(3):
        expected = scipy.stats.spearmanr(np.abs(maps[i]).ravel(), np.abs(other[i]).ravel())[0]
        assert found["spearman_abs"][i] == pytest.approx(expected)
        assert found["spearman"][i] == pytest.approx(scipy.stats.spearmanr(maps[i].ravel(), other[i].ravel())[0])
    constant = map_similarity(np.ones((1, 16, 24)), maps[:1])
    assert all(np.isnan(constant[name][0]) for name in SIMILARITY_MEASURES)
    with pytest.raises(ValueError, match="one shape"):
        map_similarity(maps, maps[:, :8])


def test_noise_touches_only_the_song():
    images = _box_images(2)
    copies = noisy_copies(images, sigma=0.2, n_repeats=2, seed=0)
    assert copies.shape == (2, 2, 32, 64) and copies.min() >= 0 and copies.max() <= 1
    background = images == np.median(images.reshape(2, -1), axis=1)[:, None, None]
    np.testing.assert_array_equal(copies[:, background], np.broadcast_to(images[background], (2, background.sum())))
    assert (copies[:, ~background] != images[~background]).mean() > 0.9
    np.testing.assert_array_equal(noisy_copies(images, 0.0)[0], images)


def test_deeplift_is_stable_without_noise_and_moves_with_strong_noise(small_cnn):
    images = (np.random.default_rng(1).random((3, 32, 64)) ** 3).astype(np.float32)
    still = noise_stability(small_cnn, images, "deeplift", sigma=0.0, n_repeats=2)
    np.testing.assert_allclose(still[list(SIMILARITY_MEASURES)].to_numpy(), 1.0, atol=1e-5)
    shaken = noise_stability(small_cnn, images, "deeplift", sigma=0.3, n_repeats=2)
    assert shaken["image"].tolist() == [0, 1, 2] and len(shaken) == 3
    assert np.all(shaken["spearman_abs"] < 0.7) and np.all(shaken["pearson"] < 0.7)


def test_seed_stability_averages_every_pair_of_seeds():
    maps = np.random.default_rng(2).normal(size=(2, 16, 24))
    table = seed_stability([maps, maps, -maps])  # pairs: (a, a) 1, (a, -a) -1, (a, -a) -1
    assert table["n_pairs"].tolist() == [3, 3]
    np.testing.assert_allclose(table["spearman"], -1 / 3)
    np.testing.assert_allclose(table["spearman_abs"], 1.0)
    with pytest.raises(ValueError, match="at least two"):
        seed_stability([maps])
    with pytest.raises(ValueError, match="one shape"):
        seed_stability([maps, maps[:1]])


def test_similarity_within_a_region_ignores_the_empty_pixels():
    from wrenlib.faithfulness import map_similarity

    rng = np.random.default_rng(0)
    first = np.zeros((2, 8, 8))
    second = np.zeros((2, 8, 8))
    song = np.zeros((2, 8, 8), bool)
    song[:, 2:4, 2:6] = True
    first[song] = rng.random(song.sum())
    second[song] = rng.random(song.sum())  # unrelated values on the song, the same zeros elsewhere
    everywhere = map_similarity(first, second)
    on_song = map_similarity(first, second, within=song)
    assert np.all(everywhere["spearman_abs"] > 0.5)  # the shared zeros make unrelated maps look alike
    assert np.all(np.abs(on_song["spearman_abs"]) < 0.6)
    same = map_similarity(first, first, within=song)
    np.testing.assert_allclose(same["spearman"], 1.0)
    np.testing.assert_allclose(same["pearson"], 1.0)
    tiny = np.zeros((2, 8, 8), bool)
    tiny[:, 0, 0] = True
    assert np.isnan(map_similarity(first, second, within=tiny)["spearman"]).all()
    with pytest.raises(ValueError, match="within must be"):
        map_similarity(first, second, within=song[:, :4])


def test_layer_labels_count_dense_and_conv_layers_from_the_top(small_cnn):
    assert randomisable_layer_labels(small_cnn) == ["dense 2 (output)", "dense 1", "conv 2", "conv 1"]
    paper = DialectCNN(ModelConfig(32, 64))
    assert randomisable_layer_labels(paper) == ["dense 3 (output)", "dense 2", "dense 1",
                                                 "conv 5", "conv 4", "conv 3", "conv 2", "conv 1"]


def test_seed_stability_within_a_region_ignores_the_pixels_outside_it():
    rng = np.random.default_rng(3)
    first, second = rng.random((2, 8, 12)), rng.random((2, 8, 12))
    region = np.zeros((2, 8, 12), dtype=bool)
    region[:, 2:6, 3:9] = True
    second[region] = first[region] * 2 + 1  # the same ranking inside the region, noise outside
    inside = seed_stability([first, second], within=region)
    everywhere = seed_stability([first, second])
    np.testing.assert_allclose(inside["spearman"], 1.0)
    assert (everywhere["spearman"] < 0.9).all()


def test_a_partial_curve_stops_at_its_share_and_its_area_is_the_mean_score():
    images = _box_images(2)
    maps = np.zeros(images.shape, dtype=np.float32)
    maps[:, BOX[0], BOX[1]] = 1.0  # the box (128 of 2048 pixels, 6.25 %) ranked first
    fractions, scores = deletion_curve(BoxEvidence(), images, maps, steps=4, up_to=0.0625)
    np.testing.assert_allclose(fractions, [0, 0.015625, 0.03125, 0.046875, 0.0625])
    _, whole = deletion_curve(BoxEvidence(), images, maps, steps=16)  # the same pixel counts at steps 0..1
    np.testing.assert_allclose(scores[:, [0, 4]], whole[:, [0, 1]], rtol=1e-6)
    assert (scores[:, -1] < scores[:, 0]).all()  # the box is gone at the end of the short curve
    np.testing.assert_allclose(curve_auc(fractions, scores), scores[:, 1:-1].mean(1) * 0.75 + scores[:, [0, -1]].mean(1) * 0.25)
    np.testing.assert_allclose(curve_auc(np.array([0.0, 0.5, 1.0]), np.array([[1.0, 0.0, 1.0]])), [0.5])


def test_faithfulness_scores_rank_the_box_map_first_and_match_the_single_curves():
    from wrenlib.faithfulness import faithfulness_scores

    model, images = BoxEvidence(), _box_images(4)
    perfect = np.zeros(images.shape, np.float32)
    perfect[:, BOX[0], BOX[1]] = 1.0
    maps = {"perfect": perfect, "random": random_maps(images.shape, seed=1)}
    fractions, curves, table = faithfulness_scores(model, images, maps, steps=5, up_to=0.2)
    assert len(table) == 2 * 4 and table["position"].tolist() == [0, 1, 2, 3] * 2
    _, single = deletion_curve(model, images, perfect, steps=5, up_to=0.2)
    np.testing.assert_allclose(curves[("perfect", "deletion")], single)
    np.testing.assert_allclose(table.loc[table["map"] == "perfect", "deletion AUC"], curve_auc(fractions, single))
    means = table.groupby("map")[["deletion AUC", "insertion - deletion"]].mean()
    assert means.loc["perfect", "deletion AUC"] < means.loc["random", "deletion AUC"]
    assert means.loc["perfect", "insertion - deletion"] > means.loc["random", "insertion - deletion"]


def test_the_sanity_cascade_explains_the_first_clips_of_each_dialect_and_is_cached(isolated_artifacts, monkeypatch):
    """Chapter 10's randomisation test as a cached preparation: the maps are those of
    randomisation_maps with the four methods, for the classes the trained model predicts, on the
    first sanity_clips // 2 explained test clips of each dialect; a second call loads them."""
    from wrenlib import explain as explain_module
    from wrenlib import profiles
    from wrenlib.explain import METHODS, explain_methods, explained_clips
    from wrenlib.faithfulness import sanity_cascade, sanity_positions
    from wrenlib.training import load_or_train_model

    tiny = profiles.PROFILES["quick"].with_overrides(
        name="tiny", individuals_per_dialect=5, clips_per_individual=4, image_height_px=32, image_width_px=64,
        max_epochs=1, patience=1, explain_clips=6, lime_samples=16, shap_background=2, sanity_clips=2,
        randomisation_depths=(1, 3))
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    clips, rows = sanity_cascade("tiny", device="cpu")
    model, _, images = load_or_train_model("tiny", device="cpu", progress=False)
    test = explained_clips(images, 6)
    assert images.labels[clips].tolist() == [0, 1]
    assert clips.tolist() == [int(test[images.labels[test] == label][0]) for label in (0, 1)]
    assert test[sanity_positions(images.labels[test], 1)].tolist() == clips.tolist()
    assert [(depth, bool(layer)) for depth, layer, _ in rows] == [(0, True), (1, True), (3, True)]
    pictures = images.images(clips)
    predicted = explain_module.predicted_classes(model, torch.from_numpy(pictures)[:, None])

    def explainer(network):
        return explain_methods(network, pictures, "tiny", images, targets=predicted, device="cpu")

    direct = randomisation_maps(model, explainer, depths=(1, 3))
    for (depth, layer, maps), (_, direct_layer, expected) in zip(rows, direct):
        assert layer == direct_layer and sorted(maps) == sorted(METHODS)
        for method in METHODS:
            np.testing.assert_allclose(maps[method], expected[method], atol=1e-6, err_msg=f"{method} at depth {depth}")
    assert not np.allclose(rows[2][2]["gradcam"], rows[0][2]["gradcam"])  # the randomised model's maps differ

    calls, real_explain = [], explain_module.explain

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real_explain(*args, **kwargs)

    monkeypatch.setattr(explain_module, "explain", counting)
    _, again = sanity_cascade("tiny", device="cpu")
    assert calls == []  # loaded
    for (_, _, first), (_, _, second) in zip(rows, again):
        for method in METHODS:
            np.testing.assert_array_equal(first[method], second[method])
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny.with_overrides(lime_samples=8))
    networks = []
    monkeypatch.setattr(explain_module, "explain", lambda *args, **kwargs: (
        networks.append((args[2], explain_module.model_fingerprint(args[0]))), counting(*args, **kwargs))[1])
    _, fewer = sanity_cascade("tiny", device="cpu")
    assert calls.count("lime") == 3  # other settings, other maps: the trained model's and two randomised
    # the trained model's LIME maps come last: the explained test clips' job beside may have cached them by then
    lime_networks = [fingerprint for method, fingerprint in networks if method == "lime"]
    trained = explain_module.model_fingerprint(model)
    assert lime_networks[-1] == trained and trained not in lime_networks[:-1]
    assert not np.array_equal(fewer[1][2]["lime"], rows[1][2]["lime"])
    with pytest.raises(ValueError, match="both the model and its dataset"):
        sanity_cascade("tiny", device="cpu", model=model)
    assert not list((isolated_artifacts / "tiny" / "sanity").glob("*.parts"))  # pieces go once the whole is saved


def test_a_cascade_cut_short_goes_on_from_its_last_finished_network(isolated_artifacts, monkeypatch):
    """The randomised networks' maps are kept one network at a time: a run stopped while it
    explains the second network keeps the first, the next run explains only the rest, and the
    cascade is the uninterrupted one's."""
    from wrenlib import explain as explain_module
    from wrenlib import profiles
    from wrenlib.faithfulness import sanity_cascade

    tiny = profiles.PROFILES["quick"].with_overrides(
        name="tiny", individuals_per_dialect=5, clips_per_individual=4, image_height_px=32, image_width_px=64,
        max_epochs=1, patience=1, explain_clips=6, lime_samples=16, shap_background=2, sanity_clips=2,
        randomisation_depths=(1, 3))
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    real, calls = explain_module.explain_methods, []

    def stopped_at_the_second_network(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a time limit
        return real(*args, **kwargs)

    monkeypatch.setattr(explain_module, "explain_methods", stopped_at_the_second_network)
    with pytest.raises(KeyboardInterrupt):
        sanity_cascade("tiny", device="cpu")
    assert len(list((isolated_artifacts / "tiny" / "sanity").glob("*.parts/*.npz"))) == 1
    calls.clear()
    monkeypatch.setattr(explain_module, "explain_methods", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    _, resumed = sanity_cascade("tiny", device="cpu")
    assert len(calls) == 1  # only the second randomised network
    monkeypatch.setenv("WRENBOOK_ARTIFACTS", str(isolated_artifacts.parent / "elsewhere"))
    _, whole = sanity_cascade("tiny", device="cpu")  # from nothing, uninterrupted (the same CNN, retrained)
    for (depth, layer, maps), (_, whole_layer, expected) in zip(resumed, whole):
        assert layer == whole_layer
        for method, values in maps.items():
            np.testing.assert_array_equal(values, expected[method], err_msg=f"{method} at depth {depth}")


def test_the_stability_maps_are_chapter_10s_three_checks_and_are_cached(isolated_artifacts, monkeypatch):
    """Chapter 10's stability checks as a cached preparation: on the sanity clips, for the trained
    model's predicted classes, the four methods' maps of the noisy copies (LIME on the clean
    images' samples), LIME's and SHAP's with the next seed, and each other CNN's; a second call
    loads them and leaves no pieces behind."""
    from wrenlib import explain as explain_module
    from wrenlib import profiles
    from wrenlib.explain import (METHODS, explain, explain_methods, make_settings, method_references,
                                 predicted_classes, settings_for_profile)
    from wrenlib.faithfulness import STABILITY_NOISE_SIGMA, noisy_copies, sanity_clips, stability_maps
    from wrenlib.training import load_or_train_model

    tiny = profiles.PROFILES["quick"].with_overrides(
        name="tiny", individuals_per_dialect=5, clips_per_individual=4, image_height_px=32, image_width_px=64,
        max_epochs=1, patience=1, explain_clips=6, lime_samples=16, shap_background=2, sanity_clips=2,
        stability_seeds=2)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    found = stability_maps("tiny", device="cpu")
    model, _, images = load_or_train_model("tiny", device="cpu", progress=False)
    other, _, _ = load_or_train_model("tiny", device="cpu", init_seed=1, progress=False)
    clips = sanity_clips(images, "tiny")
    pictures = images.images(clips)
    targets = predicted_classes(model, torch.from_numpy(pictures)[:, None])
    noisy = noisy_copies(pictures, sigma=STABILITY_NOISE_SIGMA, n_repeats=1)[0]
    assert found["clips"].tolist() == clips.tolist() and np.array_equal(found["noisy"], noisy)
    expected = {"input noise": explain_methods(model, noisy, "tiny", images, targets=targets, device="cpu",
                                               seed_images=pictures),
                "explainer's seed": {m: explain(model, pictures, m, targets=targets, settings=settings, device="cpu",
                                                references=method_references(images, m, settings)).maps
                                     for m in ("lime", "shap")
                                     for settings in [make_settings(m, settings_for_profile(m, "tiny"), seed=1)]}}
    for check, maps in expected.items():
        assert sorted(found[check]) == sorted(maps)
        for method, values in maps.items():
            np.testing.assert_allclose(found[check][method], values, atol=1e-6, err_msg=f"{method}, {check}")
    assert len(found["training seed"]) == 1 and sorted(found["training seed"][0]) == sorted(METHODS)
    by_other = explain_methods(other, pictures, "tiny", images, targets=targets, device="cpu")
    for method in METHODS:
        np.testing.assert_allclose(found["training seed"][0][method], by_other[method], atol=1e-6, err_msg=method)
    assert not np.allclose(found["training seed"][0]["gradcam"], explain_methods(
        model, pictures, "tiny", images, methods=("gradcam",), targets=targets, device="cpu")["gradcam"])

    calls, real = [], explain_module.explain
    monkeypatch.setattr(explain_module, "explain", lambda *args, **kwargs: calls.append(args[2]) or real(*args, **kwargs))
    again = stability_maps("tiny", device="cpu", model=model, dataset=images)
    assert calls == []  # loaded
    np.testing.assert_array_equal(again["input noise"]["lime"], found["input noise"]["lime"])
    assert not list((isolated_artifacts / "tiny" / "sanity").glob("*.parts"))
    with pytest.raises(ValueError, match="both the model and its dataset"):
        stability_maps("tiny", device="cpu", model=model)


def test_the_absolute_rank_measure_ignores_sign_flips_within_a_region_too():
    """Within a region, ``spearman_abs`` ranks the magnitudes, as over the whole map: a map and its
    negation agree perfectly (1), while the signed rank measure says they are opposite (-1)."""
    rng = np.random.default_rng(4)
    maps = rng.normal(size=(2, 8, 12))
    region = np.zeros((2, 8, 12), dtype=bool)
    region[:, 2:6, 3:9] = True
    flipped = map_similarity(maps, -maps, within=region)
    np.testing.assert_allclose(flipped["spearman_abs"], 1.0)
    np.testing.assert_allclose(flipped["spearman"], -1.0)
    np.testing.assert_allclose(flipped["pearson"], -1.0)


def test_seed_stability_leaves_out_pairs_with_a_constant_map_instead_of_losing_the_image():
    """A seed whose map of an image is constant (nothing to rank) makes that image's pairs with it
    undefined; the image's stability is then the mean over its other pairs, not NaN. Image 0: seed
    c's map is constant, so only the pair (a, b) counts; image 1 averages all three pairs."""
    rng = np.random.default_rng(6)
    a, b, c = rng.random((3, 2, 8, 12))
    c[0] = 0.5
    table = seed_stability([a, b, c])
    assert table["n_pairs"].tolist() == [3, 3]
    pair = {name: map_similarity(a[:1], b[:1])[name][0] for name in SIMILARITY_MEASURES}
    everything = {name: np.mean([map_similarity(x[1:], y[1:])[name][0] for x, y in ((a, b), (a, c), (b, c))])
                  for name in SIMILARITY_MEASURES}
    for name in SIMILARITY_MEASURES:
        assert np.isfinite(table[name][0]), name
        assert table[name][0] == pytest.approx(pair[name]), name
        assert table[name][1] == pytest.approx(everything[name]), name
