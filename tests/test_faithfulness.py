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


# ---------------------------------------------------------------- found unguarded by a mutation review


def test_the_model_device_comes_from_its_weights_or_else_its_buffers():
    """``_model_device``: an explicit device wins; else the device of the model's parameters or,
    for a model without any (a fixed preprocessing), of its buffers; else the CPU."""
    only_buffer = nn.Module()
    only_buffer.register_buffer("level", torch.zeros(1, device="meta"))
    assert faithfulness._model_device(only_buffer, None) == torch.device("meta")
    assert faithfulness._model_device(only_buffer, "cpu") == torch.device("cpu")
    assert faithfulness._model_device(BoxEvidence(), None) == torch.device("cpu")


def test_ties_follow_the_shuffle_of_tie_seed_within_every_map():
    """Pixels of equal map value go in the order of ``torch.randperm`` under :data:`TIE_SEED`
    (the documented shuffle), the same order in every map and within every group of tied values:
    a constant map removes pixel ``shuffle[k]`` at step k, and a two-level map removes its high
    pixels first, each group in the shuffle's order."""
    n = 6 * 10
    shuffle = torch.randperm(n, generator=torch.Generator().manual_seed(faithfulness.TIE_SEED))
    ranks = faithfulness._pixel_ranks(torch.zeros(3, 6, 10))
    assert torch.equal(ranks[:, shuffle], torch.arange(n).expand(3, n))
    levels = torch.zeros(1, 6, 10)
    levels.view(-1)[::3] = 1.0  # every third pixel high
    ranks = faithfulness._pixel_ranks(levels)[0]
    high = levels.view(-1)[shuffle] == 1
    assert torch.equal(ranks[shuffle[high]], torch.arange(int(high.sum())))
    assert torch.equal(ranks[shuffle[~high]], torch.arange(int(high.sum()), n))


def test_perturbed_images_reject_bad_fractions_and_modes():
    """``perturbed_images`` takes only a 1-d sequence of shares in [0, 1] (no share below 0 or
    above 1, no NaN, no table of them) and only the two curve modes; an empty sequence gives
    (N, 0, H, W) frames."""
    image = np.random.default_rng(0).random((2, 4, 8)).astype(np.float32)
    for fractions in ([-0.1, 0.5], [0.5, 1.5], [0.0, np.nan], [[0.0, 0.5]]):
        with pytest.raises(ValueError, match=r"shares in \[0, 1\]"):
            perturbed_images(image, image, fractions)
    with pytest.raises(ValueError, match="mode must be"):
        perturbed_images(image, image, [0.5], mode="erase")
    empty = perturbed_images(image, image, [])
    assert empty.shape == (2, 0, 4, 8) and empty.dtype == np.float32


def test_shares_of_pixels_round_to_the_nearest_whole_pixel():
    """A share of the pixels is rounded to the nearest whole number of pixels, neither down nor
    up: of 32 pixels, 0.1 is 3.2 pixels (3 go) and 0.11 is 3.52 (4 go)."""
    ranking = np.random.default_rng(2).permutation(32).reshape(1, 4, 8).astype(np.float32)
    image = (ranking >= 16).astype(np.float32)  # the 16 top-ranked pixels lit, the background 0
    inserted = perturbed_images(image, ranking, [0.1, 0.11, 0.5], mode="insertion")[0]
    deleted = perturbed_images(image, ranking, [0.1, 0.11, 0.5])[0]
    assert inserted.reshape(3, -1).sum(axis=1).tolist() == [3, 4, 16]
    assert deleted.reshape(3, -1).sum(axis=1).tolist() == [13, 12, 0]


def test_curve_settings_must_be_whole_steps_and_a_share_of_the_pixels():
    """``steps`` and ``batch_size`` must be whole numbers (2.5 steps is not rounded to 2), and
    ``up_to`` a share in (0, 1]: a curve cannot run past all the pixels."""
    images = _box_images(2)
    for options in ({"steps": 2.5}, {"batch_size": 2.5}, {"batch_size": 0}):
        with pytest.raises(ValueError, match="whole numbers >= 1"):
            deletion_curve(BoxEvidence(), images, images, **options)
    with pytest.raises(ValueError, match="up_to"):
        deletion_curve(BoxEvidence(), images, images, up_to=1.5)
    assert deletion_curve(BoxEvidence(), images, images, steps=2.0)[1].shape == (2, 3)  # a whole float is fine


class _DroppedBox(BoxEvidence):
    """BoxEvidence whose logits pass a dropout layer: random in training mode, the identity in
    eval mode."""

    def __init__(self):
        super().__init__()
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(super().forward(x))


def test_curves_evaluate_the_model_in_eval_mode():
    """A model left in training mode is scored in eval mode: dropout does not make the curve
    random, and it equals the curve of the box model without dropout."""
    images = _box_images(2)
    maps = random_maps(images.shape, seed=4)
    model = _DroppedBox().train()
    torch.manual_seed(0)
    first = deletion_curve(model, images, maps, steps=5, targets=1)[1]
    np.testing.assert_allclose(first, deletion_curve(BoxEvidence(), images, maps, steps=5, targets=1)[1], rtol=1e-6)
    np.testing.assert_array_equal(first, deletion_curve(model.train(), images, maps, steps=5, targets=1)[1])


def test_each_image_is_scored_for_its_own_target():
    """``targets`` (N,) gives each image its own class: images asked for class 0 follow 1 minus
    their class-1 curve, the others their class-1 curve (with two classes), in one call."""
    images = _box_images(4)
    maps = random_maps(images.shape, seed=5)
    for mode in ("deletion", "insertion"):
        _, class_one = deletion_curve(BoxEvidence(), images, maps, targets=1, steps=4, mode=mode)
        _, mixed = deletion_curve(BoxEvidence(), images, maps, targets=np.array([0, 1, 0, 1]), steps=4,
                                  batch_size=7, mode=mode)
        np.testing.assert_allclose(mixed[[1, 3]], class_one[[1, 3]], atol=1e-6)
        np.testing.assert_allclose(mixed[[0, 2]], 1 - class_one[[0, 2]], atol=1e-6)


def test_a_curve_area_needs_distinct_fractions_and_one_score_per_fraction():
    """``curve_auc`` refuses a repeated fraction (a step of zero width) and scores whose columns do
    not match the fractions, with a message naming the shapes."""
    with pytest.raises(ValueError, match="increase strictly"):
        curve_auc([0.0, 0.5, 0.5, 1.0], np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"scores must be \(N, 3\) for 3 fractions, got shape \(2, 4\)"):
        curve_auc([0.0, 0.5, 1.0], np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"scores must be \(N, 3\)"):
        curve_auc([0.0, 0.5, 1.0], np.zeros(3))


def test_faithfulness_scores_default_to_ten_steps_over_the_top_tenth_and_pass_the_targets_on():
    """Chapters 10 and 12 call ``faithfulness_scores`` with its defaults: 10 steps over the top 10 %
    of the pixels (the song is a few per cent of a spectrogram). Its ``targets`` reach both
    curves: asked for class 0, the curves are those of class 0, not of the predicted class 1."""
    from wrenlib.faithfulness import faithfulness_scores

    model, images = BoxEvidence(), _box_images(2)
    maps = {"random": random_maps(images.shape, seed=6)}
    fractions, curves, _ = faithfulness_scores(model, images, maps)
    np.testing.assert_allclose(fractions, np.linspace(0, 0.1, 11))
    _, other, table = faithfulness_scores(model, images, maps, targets=0, steps=4, up_to=0.5)
    for mode in ("deletion", "insertion"):
        _, expected = deletion_curve(model, images, maps["random"], targets=0, steps=4, up_to=0.5, mode=mode)
        np.testing.assert_allclose(other[("random", mode)], expected)
    np.testing.assert_allclose(table["insertion AUC"],
                               curve_auc(np.linspace(0, 0.5, 5), other[("random", "insertion")]))


def test_random_maps_are_float32_noise_in_the_unit_interval_that_follows_the_seed():
    """``random_maps``: float32 maps in [0, 1) of the asked (N, H, W) shape, the same for one seed
    and different for another; a shape that is not (N, H, W) is refused."""
    maps = random_maps((2, 4, 8), seed=3)
    assert maps.shape == (2, 4, 8) and maps.dtype == np.float32 and maps.min() >= 0 and maps.max() < 1
    np.testing.assert_array_equal(maps, random_maps((2, 4, 8), seed=3))
    assert not np.array_equal(maps, random_maps((2, 4, 8), seed=4))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        random_maps((4, 8))


def _odd_layers_model() -> nn.Module:
    """A conv, a batch norm without weights (it has reset_parameters but nothing to re-initialise),
    one with weights, and a linear layer: 0, 1, 2, 4 in named_modules."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2, affine=False), nn.BatchNorm2d(2),
                         nn.Flatten(), nn.Linear(2 * 4 * 8, 2))


def test_only_layers_with_weights_of_their_own_are_randomised_and_others_keep_their_names():
    """A layer with ``reset_parameters`` but no weights of its own (a batch norm without affine
    weights) is not a layer of the cascade; a layer that is neither dense nor conv keeps its
    module name as its label."""
    model = _odd_layers_model()
    assert randomisable_layers(model) == ["4", "2", "0"]
    assert randomisable_layer_labels(model) == ["dense 1 (output)", "2", "conv 1"]


def test_each_layer_is_reset_under_the_seed_plus_its_place_and_the_callers_random_state_is_kept(small_cnn):
    """The k-th layer of the cascade is re-initialised by its own ``reset_parameters()`` under
    torch seed ``seed + k``, inside ``seeded``: the caller's next random numbers are those it
    would have drawn without the cascade."""
    import copy

    names = randomisable_layers(small_cnn)
    torch.manual_seed(11)
    expected_draw = torch.rand(3)
    torch.manual_seed(11)
    cascade = list(randomised_models(small_cnn, seed=5))
    assert torch.equal(torch.rand(3), expected_draw)
    last = cascade[-1][1]
    for place, name in enumerate(names):
        fresh = copy.deepcopy(small_cnn.get_submodule(name))
        torch.manual_seed(5 + place)
        fresh.reset_parameters()
        for weight in ("weight", "bias"):
            assert torch.equal(last.get_submodule(name).get_parameter(weight), fresh.get_parameter(weight)), name


def test_the_copies_of_a_model_in_training_mode_are_in_eval_mode_and_the_model_stays_as_it_was(small_cnn):
    """Every randomised copy is in eval mode even when the caller's model is in training mode,
    which itself stays in training mode."""
    small_cnn.train()
    copies = [network for _, network in randomised_models(small_cnn)]
    assert not any(network.training or any(m.training for m in network.modules()) for network in copies)
    assert small_cnn.training


class _ArmedLinear(nn.Linear):
    """A linear layer whose re-initialisation fails once armed: a layer the cascade must not reach."""

    armed = False

    def reset_parameters(self):
        if self.armed:
            raise AssertionError("the cascade went deeper than asked")
        super().reset_parameters()


def test_randomisation_maps_stops_the_cascade_at_the_deepest_depth_asked():
    """The cascade is not run past the deepest depth wanted: with depths (1,) only the top layer is
    re-initialised, never the bottom one; and the copies follow ``seed``, as
    :func:`randomised_models` with that seed makes them."""
    bottom = _ArmedLinear(4, 4)
    model = nn.Sequential(bottom, nn.ReLU(), nn.Linear(4, 2))
    bottom.armed = True
    rows = randomisation_maps(model, lambda network: {"w": network[2].weight.detach().clone()}, depths=[1], seed=7)
    assert [depth for depth, _, _ in rows] == [0, 1]
    bottom.armed = False
    copy_at_one = next(iter(randomised_models(model, seed=7)))[1]
    assert torch.equal(rows[1][2]["w"], copy_at_one[2].weight)
    other_seed = randomisation_maps(model, lambda network: {"w": network[2].weight.detach().clone()}, depths=[1])
    assert not torch.equal(other_seed[1][2]["w"], rows[1][2]["w"])


def _recording_explain(calls):
    """A stand-in for wrenlib.explain.explain that records its options and maps each image by itself."""

    def explain(model, images, method, targets=None, settings=None, batch_size=16, references=None, **_):
        x = np.asarray(images, dtype=np.float32)
        calls.append({"targets": None if targets is None else np.asarray(targets).tolist(), "settings": settings,
                      "references": references, "n": len(x)})
        chosen = np.zeros(len(x), np.int64) if targets is None else np.asarray(targets)
        return Explanation(method, x + 0.01 * np.arange(x[0].size).reshape(x.shape[1:]), chosen, {})

    return explain


def test_randomisation_test_passes_its_settings_references_and_depths_on(small_cnn, monkeypatch):
    """``randomisation_test`` explains every network with the caller's ``settings`` and
    ``references`` and the original model's classes, at the ``depths`` asked only."""
    calls = []
    monkeypatch.setattr(faithfulness, "explain", _recording_explain(calls))
    images = _box_images(2)
    references, settings = np.zeros((1, 32, 64), np.float32), object()
    table = randomisation_test(small_cnn, images, "deeplift", settings=settings, references=references,
                               targets=[1, 0], depths=[2])
    assert table["n_randomised"].tolist() == [2, 2] and table["target"].tolist() == [1, 0]
    assert len(calls) == 2
    for call in calls:
        assert call["settings"] is settings and call["references"] is references and call["targets"] == [1, 0]


def test_noise_stability_explains_the_noisy_copies_for_the_clean_images_classes(small_cnn, monkeypatch):
    """The noisy copies are explained for the classes of their clean image (not their own
    predictions), with the caller's settings and references, like the clean images."""
    calls = []
    monkeypatch.setattr(faithfulness, "explain", _recording_explain(calls))
    images = _box_images(2)
    references, settings = np.zeros((1, 32, 64), np.float32), object()
    noise_stability(small_cnn, images, "deeplift", n_repeats=3, targets=[1, 0], settings=settings,
                    references=references)
    assert [call["n"] for call in calls] == [2, 6]
    assert calls[1]["targets"] == [1, 0] * 3
    for call in calls:
        assert call["settings"] is settings and call["references"] is references


def test_ssim_scales_each_map_to_the_unit_range_and_ignores_the_region():
    """``ssim`` is skimage's SSIM of the two maps, each scaled to [0, 1] by its own minimum and
    maximum, with ``data_range=1``; a region restricts the other measures only, never SSIM."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(7)
    first = rng.normal(size=(2, 16, 24))
    second = first + rng.normal(scale=0.8, size=first.shape)
    unit = lambda m: (m - m.min()) / (m.max() - m.min())
    expected = [structural_similarity(unit(a), unit(b), data_range=1.0) for a, b in zip(first, second)]
    found = map_similarity(first, 5 * second - 3)["ssim"]
    np.testing.assert_allclose(found, expected, rtol=1e-9)
    assert 0.1 < found.min() and found.max() < 0.9
    region = np.zeros(first.shape, bool)
    region[:, 4:10, 5:15] = True
    np.testing.assert_allclose(map_similarity(first, second, within=region)["ssim"], expected, rtol=1e-9)


def test_within_a_region_pearson_and_spearman_look_only_inside_and_spearman_ranks():
    """Within a region, Pearson is computed on the region's pixels alone (maps that agree inside
    and disagree outside score 1), and Spearman ranks them: a monotone but non-linear change
    inside keeps Spearman at 1 while Pearson falls below it."""
    rng = np.random.default_rng(8)
    first = rng.random((2, 8, 12))
    region = np.zeros(first.shape, bool)
    region[:, 2:6, 3:9] = True
    second = rng.random(first.shape)
    second[region] = 4 * first[region] + 1
    linear = map_similarity(first, second, within=region)
    np.testing.assert_allclose(linear["pearson"], 1.0)
    assert (map_similarity(first, second)["pearson"] < 0.9).all()
    second[region] = np.exp(8 * first[region])
    curved = map_similarity(first, second, within=region)
    np.testing.assert_allclose(curved["spearman"], 1.0)
    np.testing.assert_allclose(curved["spearman_abs"], 1.0)
    assert (curved["pearson"] < 0.95).all()


def test_spearman_averages_tied_ranks_as_scipy_does():
    """Ties (a map's many zeros) get their average rank, as in ``scipy.stats.spearmanr``, over the
    whole map and within a region."""
    rng = np.random.default_rng(9)
    first = np.where(rng.random((2, 8, 12)) < 0.6, 0.0, rng.random((2, 8, 12)))
    second = np.where(rng.random((2, 8, 12)) < 0.6, 0.0, first + rng.random((2, 8, 12)))
    found = map_similarity(first, second)
    region = np.ones(first.shape, bool)
    region[:, :2] = False
    inside = map_similarity(first, second, within=region)
    for i in range(2):
        assert found["spearman"][i] == pytest.approx(scipy.stats.spearmanr(first[i].ravel(), second[i].ravel())[0])
        expected = scipy.stats.spearmanr(first[i][region[i]], second[i][region[i]])[0]
        assert inside["spearman"][i] == pytest.approx(expected)


def test_map_similarity_refuses_nan_and_maps_that_are_not_stacks():
    """Maps with NaN or infinite values, and maps that are not (N, H, W), are refused."""
    maps = np.random.default_rng(0).random((2, 4, 5))
    broken = maps.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        map_similarity(maps, broken)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        map_similarity(maps[0], maps[1])


def test_seed_stability_takes_each_images_own_region():
    """``within`` holds one region per image, repeated for every pair of seeds: image 0's maps
    agree only inside its region, image 1's only inside another one, and each scores 1."""
    rng = np.random.default_rng(10)
    first, second, third = rng.random((3, 2, 8, 12))
    region = np.zeros((2, 8, 12), dtype=bool)
    region[0, :4] = True
    region[1, 4:] = True
    second[region] = 2 * first[region]
    third[region] = 3 * first[region] + 1
    table = seed_stability([first, second, third], within=region)
    np.testing.assert_allclose(table["spearman"], 1.0)
    np.testing.assert_allclose(table["pearson"], 1.0)


def test_noisy_copies_check_their_settings_and_follow_the_seed():
    """``noisy_copies`` refuses a NaN sigma and a number of copies that is not a whole number
    >= 1, and its noise is repeatable with its seed and differs for another seed."""
    images = _box_images(2)
    for options in ({"sigma": np.nan}, {"sigma": 0.1, "n_repeats": 0}, {"sigma": 0.1, "n_repeats": 1.5}):
        with pytest.raises(ValueError, match="sigma must be"):
            noisy_copies(images, **options)
    np.testing.assert_array_equal(noisy_copies(images, 0.1, seed=3), noisy_copies(images, 0.1, seed=3))
    assert not np.array_equal(noisy_copies(images, 0.1, seed=3), noisy_copies(images, 0.1, seed=4))


def test_seed_stability_names_maps_of_different_shapes_before_pairing_them():
    """Models' maps of different shapes are refused with a message naming every shape, even where
    the pairs' stacks would happen to line up (1 + 1 + 3 images against 3 + 1 + 1)."""
    maps = np.random.default_rng(5).random((3, 4, 5))
    with pytest.raises(ValueError, match=r"every model's maps must be \(N, H, W\) of one shape"):
        seed_stability([maps[:1], maps, maps[:1]])
    with pytest.raises(ValueError, match=r"every model's maps"):
        seed_stability([maps, maps[:, :2]])


class _StubClips:
    """Two clips of 32 x 64, one on black and one on white: what chapter 10's preparations read of
    a dataset once its fingerprint, its clips and the explainers are stubbed."""

    backgrounds = np.array(["black", "white"])
    labels = np.array([0, 1])

    def images(self, indices):
        return _box_images(2, seed=7)[np.asarray(indices)]


def test_the_chapter_10_caches_are_keyed_by_the_depths_and_the_noise(isolated_artifacts, monkeypatch, small_cnn):
    """The cascade's cache is keyed by the profile's randomisation depths (other depths make the
    cascade again, not load the rows of the old ones) and the stability maps' by the input noise's
    sigma (another STABILITY_NOISE_SIGMA explains the new noisy copies). The explainers are
    stand-ins that map each image by itself."""
    from types import SimpleNamespace

    from wrenlib import explain as explain_module
    from wrenlib import profiles
    from wrenlib.faithfulness import sanity_cascade, stability_maps

    tiny = profiles.PROFILES["quick"].with_overrides(name="tiny", image_height_px=32, image_width_px=64,
                                                     explain_clips=2, sanity_clips=2, randomisation_depths=(1, 3),
                                                     stability_seeds=1)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    monkeypatch.setattr(faithfulness, "sanity_clips", lambda dataset, profile, seed=0: np.array([0, 1]))
    monkeypatch.setattr(explain_module, "dataset_fingerprint", lambda dataset: "two stub clips")
    monkeypatch.setattr(explain_module, "explain_dataset", lambda model, dataset, clips, method, *args, **kwargs:
                        SimpleNamespace(targets=np.array([1, 1]), maps=dataset.images(clips)))
    monkeypatch.setattr(explain_module, "explain_methods", lambda network, images, profile, dataset, methods=(
        "gradcam", "deeplift", "lime", "shap"), **kwargs: {m: np.asarray(images, np.float32) for m in methods})
    stub = _StubClips()
    _, rows = sanity_cascade("tiny", device="cpu", model=small_cnn, dataset=stub)
    assert [depth for depth, _, _ in rows] == [0, 1, 3]
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny.with_overrides(randomisation_depths=(1, 2)))
    _, rows = sanity_cascade("tiny", device="cpu", model=small_cnn, dataset=stub)
    assert [depth for depth, _, _ in rows] == [0, 1, 2]

    first = stability_maps("tiny", device="cpu", model=small_cnn, dataset=stub)
    np.testing.assert_array_equal(first["input noise"]["gradcam"], first["noisy"])
    monkeypatch.setattr(faithfulness, "STABILITY_NOISE_SIGMA", 0.2)
    second = stability_maps("tiny", device="cpu", model=small_cnn, dataset=stub)
    assert not np.array_equal(second["noisy"], first["noisy"])
    np.testing.assert_array_equal(second["input noise"]["gradcam"], second["noisy"])
