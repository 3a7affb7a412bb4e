"""Ensembles of normalised maps (chapter 08): known averages and maxima, weights, the adaptive
rules' limits, and clear errors for maps that are not normalised."""

from __future__ import annotations

import numpy as np
import pytest

from wrenlib.ensembles import (
    adaptive_ensemble,
    adaptive_weights,
    agreement_weights,
    average_ensemble,
    book_ensembles,
    choose_temperature,
    ensemble_maps,
    max_ensemble,
)
from wrenlib.explain import normalise_maps
from wrenlib.metrics import map_correlation, mask_auc


def _constant(value: float, n: int = 2) -> np.ndarray:
    return np.full((n, 3, 4), value, dtype=np.float32)


@pytest.fixture(scope="module")
def two_agree_one_noisy() -> dict[str, np.ndarray]:
    """Methods a and b see the same blob (plus a little noise); c mostly sees noise."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:24, :32]
    centres = rng.uniform([4, 4], [20, 28], size=(6, 2))
    blobs = np.exp(-((rows - centres[:, :1, None]) ** 2 + (cols - centres[:, 1:, None]) ** 2) / 18.0)
    noisy = {"a": blobs + 0.1 * rng.random(blobs.shape), "b": blobs + 0.1 * rng.random(blobs.shape),
             "c": 0.3 * blobs + rng.random(blobs.shape)}
    return {name: normalise_maps(maps) for name, maps in noisy.items()}


def test_average_of_known_maps_and_weight_normalisation():
    maps = {"gradcam": _constant(0.2), "deeplift": _constant(0.6)}
    np.testing.assert_allclose(average_ensemble(maps), 0.4, rtol=1e-6)
    np.testing.assert_allclose(average_ensemble(maps, {"gradcam": 3, "deeplift": 1}), 0.3, rtol=1e-6)
    np.testing.assert_allclose(average_ensemble(maps, {"gradcam": 3, "deeplift": 1}),
                               average_ensemble(maps, {"gradcam": 0.75, "deeplift": 0.25}))
    assert average_ensemble(maps).dtype == np.float32 and average_ensemble(maps).shape == (2, 3, 4)


def test_max_ensemble_takes_each_pixels_largest_value():
    first, second = _constant(0.2), _constant(0.6)
    first[:, 0, 0] = 0.9
    out = max_ensemble({"gradcam": first, "deeplift": second})
    assert out[:, 0, 0].tolist() == pytest.approx([0.9, 0.9])
    assert out[:, 1:, :].max() == pytest.approx(0.6) and out[:, 1:, :].min() == pytest.approx(0.6)


def test_the_dispatcher_names_the_ensembles(two_agree_one_noisy):
    maps = two_agree_one_noisy
    np.testing.assert_array_equal(ensemble_maps(maps, "average"), average_ensemble(maps))
    np.testing.assert_array_equal(ensemble_maps(maps, "max"), max_ensemble(maps))
    np.testing.assert_array_equal(ensemble_maps(maps, "adaptive", temperature=0.5),
                                  adaptive_ensemble(maps, temperature=0.5))
    with pytest.raises(ValueError, match="unknown ensemble kind 'median'; choose one of average, max, adaptive"):
        ensemble_maps(maps, "median")


# ---------------------------------------------------------------- the adaptive ensemble


def test_agreement_weights_trust_the_methods_that_agree(two_agree_one_noisy):
    maps = two_agree_one_noisy
    weights = agreement_weights(maps)
    assert weights.shape == (6, 3)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert (weights[:, 2] < weights[:, :2].min(axis=1)).all()
    assert (weights[:, 2] > 0).all()  # c still agrees a little: its weight is small, not zero
    pair = (maps["a"] + maps["b"]) / 2
    adaptive, plain = adaptive_ensemble(maps), average_ensemble(maps)
    assert (map_correlation(adaptive, pair) > map_correlation(plain, pair)).all()


def test_temperature_moves_between_the_average_and_the_best_agreeing_method(two_agree_one_noisy):
    maps = two_agree_one_noisy
    np.testing.assert_allclose(adaptive_ensemble(maps, temperature=1e6), average_ensemble(maps), atol=1e-4)
    np.testing.assert_allclose(adaptive_ensemble(maps, temperature=np.inf), average_ensemble(maps), atol=1e-6)
    best = agreement_weights(maps).argmax(axis=1)
    picked = np.stack([maps["abc"[m]][i] for i, m in enumerate(best)])
    # a and b agree almost equally (weights 0.4389 / 0.4385 on image 2): it takes a small temperature
    np.testing.assert_allclose(adaptive_ensemble(maps, temperature=1e-5), picked, atol=1e-4)
    np.testing.assert_allclose(adaptive_weights(maps, temperature=1e-5).max(axis=1), 1.0, atol=1e-4)
    sharper = adaptive_weights(maps, temperature=0.5)
    assert (sharper[:, 2] < agreement_weights(maps)[:, 2]).all()


def test_two_methods_always_agree_equally_and_an_all_zero_map_gets_no_weight():
    rng = np.random.default_rng(1)
    a, b = normalise_maps(rng.random((3, 5, 5))), normalise_maps(rng.random((3, 5, 5)))
    np.testing.assert_allclose(agreement_weights({"a": a, "b": b}), 0.5)
    related = normalise_maps(a + 0.2 * rng.random(a.shape))
    weights = agreement_weights({"a": a, "related": related, "silent": np.zeros_like(a)})
    np.testing.assert_allclose(weights, [[0.5, 0.5, 0.0]] * 3)


def test_the_faithfulness_rule_follows_the_scores(two_agree_one_noisy):
    maps = two_agree_one_noisy
    scores = np.zeros((6, 3))
    scores[:, 2] = 2.0  # c is the most faithful everywhere
    scores[0] = [1.0, 0.0, -np.inf]  # except on image 0, where c is left out
    weights = adaptive_weights(maps, rule="faithfulness", scores=scores)
    np.testing.assert_allclose(weights[1], np.exp([0, 0, 2]) / np.exp([0, 0, 2]).sum())
    np.testing.assert_allclose(weights[0], [np.e / (np.e + 1), 1 / (np.e + 1), 0.0])
    out = adaptive_ensemble(maps, rule="faithfulness", scores=scores, temperature=1e-3)
    np.testing.assert_allclose(out[0], maps["a"][0], atol=1e-6)
    np.testing.assert_allclose(out[1:], maps["c"][1:], atol=1e-6)


# ---------------------------------------------------------------- clear errors


def test_invalid_inputs_raise_clear_errors():
    good = {"gradcam": _constant(0.2), "deeplift": _constant(0.6)}
    with pytest.raises(ValueError, match=r"the maps of 'deeplift' must be normalised to \[0, 1\].*-1 to 2"):
        average_ensemble({"gradcam": _constant(0.2), "deeplift": np.linspace(-1, 2, 24).reshape(2, 3, 4)})
    with pytest.raises(ValueError, match=r"one shape.*'gradcam': \(2, 3, 4\), 'deeplift': \(1, 3, 4\)"):
        max_ensemble({"gradcam": _constant(0.2), "deeplift": _constant(0.2, n=1)})
    with pytest.raises(ValueError, match=r"\(N, H, W\), got shape \(3, 4\)"):
        max_ensemble({"gradcam": _constant(0.2)[0]})
    with pytest.raises(ValueError, match="non-empty dict"):
        average_ensemble({})
    with pytest.raises(ValueError, match="non-negative"):
        average_ensemble(good, {"gradcam": -1, "deeplift": 2})
    with pytest.raises(ValueError, match="sum to zero"):
        average_ensemble(good, {"gradcam": 0, "deeplift": 0})
    with pytest.raises(ValueError, match=r"exactly the methods \['gradcam', 'deeplift'\]"):
        average_ensemble(good, {"gradcam": 1})
    with pytest.raises(ValueError, match="at least two methods"):
        agreement_weights({"gradcam": _constant(0.2)})
    with pytest.raises(ValueError, match="temperature must be positive"):
        adaptive_ensemble(good, temperature=0)
    with pytest.raises(ValueError, match="unknown adaptive rule 'oracle'"):
        adaptive_ensemble(good, rule="oracle")
    with pytest.raises(ValueError, match="needs scores="):
        adaptive_ensemble(good, rule="faithfulness")
    with pytest.raises(ValueError, match=r"scores must be \(N, M\) = \(2, 2\).*got shape \(2, 3\)"):
        adaptive_ensemble(good, rule="faithfulness", scores=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        adaptive_ensemble(good, rule="faithfulness", scores=np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match=r"every method is excluded \(-inf\) for images \[1\]"):
        adaptive_ensemble(good, rule="faithfulness", scores=np.array([[0.0, 0.0], [-np.inf, -np.inf]]))
    with pytest.raises(ValueError, match="scores go with rule='faithfulness'"):
        adaptive_ensemble(good, scores=np.zeros((2, 2)))


def test_book_ensembles_are_the_papers_pair_plus_two_of_all_methods(two_agree_one_noisy):
    maps = {"Grad-CAM": two_agree_one_noisy["a"], "DeepLIFT": two_agree_one_noisy["c"],
            "LIME": two_agree_one_noisy["b"]}
    made = book_ensembles(maps, temperature=0.5)
    assert list(made) == ["average (GC+DL)", "max (GC+DL)", "average (all 3)", "adaptive (all 3)"]
    np.testing.assert_allclose(made["average (GC+DL)"], 0.5 * maps["Grad-CAM"] + 0.5 * maps["DeepLIFT"], atol=1e-6)
    np.testing.assert_array_equal(made["max (GC+DL)"], np.maximum(maps["Grad-CAM"], maps["DeepLIFT"]))
    np.testing.assert_allclose(made["average (all 3)"], sum(maps.values()) / 3, atol=1e-6)
    np.testing.assert_allclose(made["adaptive (all 3)"], adaptive_ensemble(maps, temperature=0.5))
    with pytest.raises(ValueError, match="missing DeepLIFT"):
        book_ensembles({"Grad-CAM": maps["Grad-CAM"], "LIME": maps["LIME"]}, 1.0)


def test_the_chosen_temperature_scores_best_on_the_clips_it_was_chosen_on(two_agree_one_noisy):
    blob = two_agree_one_noisy["a"] > 0.5  # where methods a and b put their evidence
    temperatures = (0.25, 1.0, float("inf"))
    best, table = choose_temperature(two_agree_one_noisy, blob, temperatures)
    assert table["temperature"].tolist() == list(temperatures)
    expected = [np.nanmean(mask_auc(adaptive_ensemble(two_agree_one_noisy, temperature=t), blob)) for t in temperatures]
    np.testing.assert_allclose(table["validation mask AUC"], expected)
    assert best == temperatures[int(np.argmax(expected))]
    # the noisy method c agrees least, so the sharpest temperature trusts a and b most
    assert table["validation mask AUC"].iloc[0] >= table["validation mask AUC"].iloc[-1]


def test_a_method_that_disagrees_with_the_rest_gets_no_weight_not_a_positive_one(two_agree_one_noisy):
    """Negative agreement is clipped to 0, not turned into trust by its magnitude: beside three
    methods that see the same blob, the inverted map ``1 - a`` (anti-correlated with all of them)
    gets weight 0, and the adaptive ensemble is the weighted mean of the three alone."""
    maps = two_agree_one_noisy
    third = normalise_maps(maps["a"] + maps["b"] + 0.05 * np.random.default_rng(3).random(maps["a"].shape))
    methods = {"a": maps["a"], "b": maps["b"], "third": third, "inverted": 1 - maps["a"]}
    assert (map_correlation(methods["inverted"], methods["b"]) < -0.5).all()
    weights = agreement_weights(methods)
    np.testing.assert_allclose(weights[:, 3], 0.0)
    assert (weights[:, :3] > 0.2).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    expected = sum(weights[:, m, None, None] * methods[name] for m, name in enumerate(["a", "b", "third"]))
    np.testing.assert_allclose(adaptive_ensemble(methods), expected, atol=1e-6)


# ---------------------------------------------------------------- found unguarded by a mutation review


def test_maps_by_method_must_be_a_dict():
    """The methods' maps come as a dict from name to maps; a list of arrays is refused with the
    same message, not taken apart array by array."""
    with pytest.raises(ValueError, match="non-empty dict"):
        average_ensemble([_constant(0.2), _constant(0.6)])


def test_an_ensemble_never_leaves_the_unit_range():
    """The ensembles are clipped to [0, 1]: maps a rounding error above 1 (which the range check
    lets through, up to 1 + 1e-6) average to 1 at most, for the mask scores that read them as
    shares."""
    above = np.full((2, 3, 4), 1 + 5e-7, dtype=np.float32)
    assert above.max() > 1
    maps = {"a": above, "b": above, "c": above}
    for weights in (None, {"a": 1, "b": 1, "c": 1}, {"a": 0.1, "b": 0.7, "c": 0.2}):
        assert average_ensemble(maps, weights).max() <= 1.0
    assert adaptive_ensemble(maps, rule="faithfulness", scores=np.zeros((2, 3))).max() <= 1.0
    assert max_ensemble(maps).max() <= 1.0
    single = max_ensemble({"a": above})  # one method: the maximum is a new array, not the caller's maps
    assert single is not above and above.max() > 1


def test_weights_must_name_no_other_method_and_be_finite():
    """Weights naming a method that has no maps, or an infinite or NaN weight, are refused (an
    infinite weight would otherwise normalise to NaN)."""
    good = {"gradcam": _constant(0.2), "deeplift": _constant(0.6)}
    with pytest.raises(ValueError, match="exactly the methods"):
        average_ensemble(good, {"gradcam": 1, "deeplift": 1, "lime": 1})
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match="finite and non-negative"):
            average_ensemble(good, {"gradcam": 1, "deeplift": bad})


def test_agreement_weights_are_uniform_when_no_method_agrees_with_any_other():
    """Where every method's agreement is 0 (their correlations are all 0 or below), the weights
    are uniform, 1/M each, not 0: the ensemble is then the plain average."""
    rows = np.zeros((1, 4, 4))
    a, b, c = rows.copy(), rows.copy(), rows.copy()
    a[0, 0] = 1.0  # three maps on disjoint pixels: every pair anti-correlated
    b[0, 1] = 1.0
    c[0, 2] = 1.0
    maps = {"a": a, "b": b, "c": c}
    assert (map_correlation(a, b) < 0).all()
    np.testing.assert_allclose(agreement_weights(maps), 1 / 3)
    np.testing.assert_allclose(adaptive_ensemble(maps, temperature=0.25), average_ensemble(maps), atol=1e-7)


def test_a_method_without_agreement_keeps_weight_zero_at_an_infinite_temperature():
    """A method whose agreement is 0 keeps weight 0 at every temperature, infinity included, where
    the rest share the weight equally; and a method the faithfulness rule leaves out (-inf) stays
    out at an infinite temperature too."""
    rng = np.random.default_rng(1)
    a = normalise_maps(rng.random((3, 5, 5)))
    related = normalise_maps(a + 0.2 * rng.random(a.shape))
    maps = {"a": a, "related": related, "silent": np.zeros_like(a)}
    np.testing.assert_allclose(adaptive_weights(maps, temperature=np.inf), [[0.5, 0.5, 0.0]] * 3)
    scores = np.array([[0.0, 1.0, -np.inf]] * 3)
    np.testing.assert_allclose(adaptive_weights(maps, rule="faithfulness", scores=scores, temperature=np.inf),
                               [[0.5, 0.5, 0.0]] * 3)


def test_a_nan_temperature_and_infinite_scores_are_refused():
    """A NaN temperature is not positive and is refused; a score of +inf (only -inf has a meaning:
    leave the method out) is refused too."""
    good = {"gradcam": _constant(0.2), "deeplift": _constant(0.6)}
    with pytest.raises(ValueError, match="temperature must be positive"):
        adaptive_ensemble(good, temperature=np.nan)
    with pytest.raises(ValueError, match=r"NaN or \+inf"):
        adaptive_ensemble(good, rule="faithfulness", scores=np.array([[0.0, np.inf], [0.0, 0.0]]))


def test_the_temperature_is_chosen_on_the_clips_that_have_a_mask_score():
    """A validation clip whose mask is empty has no mask AUC (NaN); the choice averages over the
    other clips instead of losing every candidate to NaN."""
    rng = np.random.default_rng(2)
    rows, cols = np.mgrid[:12, :16]
    blob = np.exp(-((rows - 6.0) ** 2 + (cols - 8.0) ** 2) / 8.0)[None].repeat(3, axis=0)
    maps = {"a": normalise_maps(blob + 0.05 * rng.random(blob.shape)),
            "b": normalise_maps(blob + 0.05 * rng.random(blob.shape)),
            "c": normalise_maps(0.2 * blob + rng.random(blob.shape))}
    masks = blob > 0.5
    masks[2] = False  # nothing to find on clip 2
    best, table = choose_temperature(maps, masks, (0.25, 1.0, float("inf")))
    assert np.isfinite(table["validation mask AUC"]).all()
    assert best == 0.25  # the sharpest trusts a and b, which see the blob


def test_the_book_names_its_ensembles_of_all_four_methods_in_words():
    """With the book's four methods the ensembles of all of them are named "average (all four)" and
    "adaptive (all four)", the names chapters 08-11 look them up by."""
    rng = np.random.default_rng(3)
    maps = {name: normalise_maps(rng.random((2, 4, 5))) for name in ("Grad-CAM", "DeepLIFT", "LIME", "SHAP")}
    assert list(book_ensembles(maps, temperature=1.0)) == ["average (GC+DL)", "max (GC+DL)", "average (all four)",
                                                           "adaptive (all four)"]
