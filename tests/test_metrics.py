"""The map scores of chapters 04-08 on inputs whose answers are known by hand: perfect, inverted
and constant maps, ties, tolerance, undefined cases, threshold shares and confidence intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wrenlib.metrics import (
    background_share,
    dilate_masks,
    map_correlation,
    mask_area,
    mask_auc,
    mean_with_interval,
    pointing_game,
    region_share,
    relevance_mass,
    relevance_rank_accuracy,
    summarise_scores,
    threshold_shares,
)


def _corner_mask(n: int = 1, size: int = 4) -> np.ndarray:
    """A 2 x 2 block in the top-left corner of a size x size image: area 4 / size**2."""
    masks = np.zeros((n, size, size), dtype=bool)
    masks[:, :2, :2] = True
    return masks


SCORES_BY_RANK = {"rank": relevance_rank_accuracy, "pointing": pointing_game}


# ---------------------------------------------------------------- perfect, inverted, constant


def test_a_perfect_map_scores_one_on_every_score():
    masks = _corner_mask(2)
    perfect = masks.astype(float)
    assert relevance_rank_accuracy(perfect, masks).tolist() == [1.0, 1.0]
    assert pointing_game(perfect, masks).tolist() == [1.0, 1.0]
    assert mask_auc(perfect, masks).tolist() == [1.0, 1.0]
    assert relevance_mass(perfect, masks).tolist() == [1.0, 1.0]


def test_an_inverted_map_scores_zero():
    masks = _corner_mask()
    inverted = 1.0 - masks
    assert relevance_rank_accuracy(inverted, masks).tolist() == [0.0]
    assert pointing_game(inverted, masks).tolist() == [0.0]
    assert mask_auc(inverted, masks).tolist() == [0.0]


@pytest.mark.parametrize("value", [0.0, 0.7])
def test_a_constant_map_scores_the_area_share_and_half_the_auc(value):
    masks = _corner_mask(size=4)  # area 4 / 16
    constant = np.full(masks.shape, value)
    assert relevance_rank_accuracy(constant, masks) == pytest.approx([0.25])
    assert pointing_game(constant, masks) == pytest.approx([0.25])  # no free hit (Quantus's corner case)
    assert mask_auc(constant, masks) == pytest.approx([0.5])
    assert mask_area(masks) == pytest.approx([0.25])


# ---------------------------------------------------------------- ties and tolerance


def test_ties_at_the_maximum_split_fractionally():
    masks = _corner_mask()
    maps = np.zeros(masks.shape)
    maps[0, 0, 0] = maps[0, 3, 3] = 1.0  # one peak inside, one outside
    assert pointing_game(maps, masks) == pytest.approx([0.5])


def test_ties_at_the_kth_value_share_the_places_left():
    masks = _corner_mask()  # k = 4
    maps = np.zeros(masks.shape)
    maps[0, 0, 0] = maps[0, 0, 1] = 1.0  # two sure hits
    maps[0, 1, 0] = maps[0, 1, 1] = maps[0, 3, 2] = maps[0, 3, 3] = 0.5  # 4 tied for 2 places, 2 inside
    assert relevance_rank_accuracy(maps, masks) == pytest.approx([(2 + 2 * 2 / 4) / 4])


def test_rank_scores_do_not_depend_on_the_pixel_order():
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 3, size=(3, 5, 6)).astype(float)  # many ties
    masks = rng.random((3, 5, 6)) < 0.3
    order = rng.permutation(30)
    shuffled_maps = maps.reshape(3, -1)[:, order].reshape(3, 5, 6)
    shuffled_masks = masks.reshape(3, -1)[:, order].reshape(3, 5, 6)
    for score in SCORES_BY_RANK.values():
        np.testing.assert_allclose(score(shuffled_maps, shuffled_masks), score(maps, masks))


def test_tolerance_turns_a_near_miss_into_a_hit():
    masks = np.zeros((2, 11, 11), dtype=bool)
    masks[:, 5, 5] = True
    maps = np.zeros(masks.shape)
    maps[0, 5, 7] = 1.0  # 2 px to the right
    maps[1, 6, 6] = 1.0  # one diagonal step: sqrt(2) px away
    assert pointing_game(maps, masks).tolist() == [0.0, 0.0]
    assert pointing_game(maps, masks, tolerance_px=1).tolist() == [0.0, 0.0]  # a disk, not a square
    assert pointing_game(maps, masks, tolerance_px=2).tolist() == [1.0, 1.0]
    assert dilate_masks(masks, 1)[0].sum() == 5  # the centre and its four neighbours
    assert not dilate_masks(np.stack([masks[0], np.zeros((11, 11), bool)]), 3)[1].any()  # images stay apart
    with pytest.raises(ValueError, match="whole number of pixels"):
        pointing_game(maps, masks, tolerance_px=-1)


# ---------------------------------------------------------------- hand-computed values, undefined cases


def test_mask_auc_counts_the_ordered_pairs():
    masks = np.array([[[True, True], [False, False]]])
    maps = np.array([[[0.9, 0.2], [0.5, 0.1]]])  # pairs (in, out): 0.9>0.5, 0.9>0.1, 0.2<0.5, 0.2>0.1
    assert mask_auc(maps, masks) == pytest.approx([0.75])


def test_mask_auc_is_sklearns_roc_auc_with_ties():
    """mask_auc reads the Mann-Whitney U statistic; it must be sklearn's ROC AUC to rounding, on maps
    with many ties (LIME's constant cells, Grad-CAM's zeros) as on continuous ones."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    masks = rng.random((3, 24, 40)) < 0.2
    maps = np.stack([rng.random((24, 40)), np.repeat(rng.random(12), 80).reshape(24, 40),
                     np.where(rng.random((24, 40)) < 0.7, 0.0, rng.random((24, 40))) + 0.3 * masks[2]])
    expected = [roc_auc_score(m.ravel(), x.ravel()) for x, m in zip(maps, masks)]
    np.testing.assert_allclose(mask_auc(maps, masks), expected, rtol=1e-12)
    assert abs(expected[2] - 0.5) > 0.1  # one map that does find its mask


def test_undefined_scores_are_nan():
    empty = np.zeros((1, 4, 4), dtype=bool)
    full = np.ones((1, 4, 4), dtype=bool)
    some_map = np.random.default_rng(1).random((1, 4, 4))
    assert np.isnan(relevance_rank_accuracy(some_map, empty)).all()
    assert np.isnan(pointing_game(some_map, empty)).all()
    assert np.isnan(mask_auc(some_map, empty)).all()
    assert np.isnan(mask_auc(some_map, full)).all()
    all_zero = np.zeros((1, 4, 4))
    for share in (relevance_mass, region_share, background_share):
        assert np.isnan(share(all_zero, _corner_mask())).all()


def test_shares_of_positive_attribution():
    masks = _corner_mask()
    maps = np.full(masks.shape, -1.0)  # negative evidence is not counted
    maps[0, 0, 0] = 3.0
    maps[0, 3, 3] = 1.0
    assert region_share(maps, masks) == pytest.approx([0.75])
    empty = ~masks
    assert background_share(maps, empty) == pytest.approx([0.25])
    rng = np.random.default_rng(2)
    raw, regions = rng.normal(size=(4, 6, 7)), rng.random((4, 6, 7)) < 0.2
    positive = np.clip(raw, 0, None)
    expected = (positive * regions).sum(axis=(1, 2)) / positive.sum(axis=(1, 2))
    np.testing.assert_allclose(relevance_mass(raw, regions), expected)
    np.testing.assert_allclose(region_share(raw, regions), relevance_mass(raw, regions))


def test_shape_errors_name_the_shapes():
    maps, masks = np.zeros((2, 4, 4)), np.zeros((2, 4, 5), dtype=bool)
    for score in (relevance_rank_accuracy, pointing_game, mask_auc, relevance_mass):
        with pytest.raises(ValueError, match=r"\(2, 4, 4\) and \(2, 4, 5\)"):
            score(maps, masks)
    with pytest.raises(ValueError, match=r"maps and empty .*\(2, 4, 4\) and \(2, 4, 5\)"):
        background_share(maps, masks)
    with pytest.raises(ValueError, match=r"maps and region .*\(4, 4\) and \(4, 4\)"):
        region_share(maps[0], masks[0, :, :4])
    with pytest.raises(ValueError, match="must be finite"):
        pointing_game(np.full((1, 4, 4), np.nan), _corner_mask())
    assert np.isnan(map_correlation(np.ones((1, 4, 4)), maps[:1])).all()


# ---------------------------------------------------------------- threshold shares


def test_threshold_shares_on_a_ramp():
    ramp = (np.arange(10) / 10 + 0.05).reshape(1, 2, 5)  # 0.05, 0.15, ..., 0.95
    shares = threshold_shares(np.concatenate([ramp, np.zeros_like(ramp)]))
    assert shares.shape == (2, 6)
    np.testing.assert_allclose(shares[0], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(shares[1], 0.0)
    assert threshold_shares(ramp, thresholds=(0.0, 1.0)).tolist() == [[1.0, 0.0]]


def test_threshold_shares_want_normalised_maps():
    with pytest.raises(ValueError, match=r"normalised to \[0, 1\].*-1 to 1"):
        threshold_shares(np.linspace(-1, 1, 8).reshape(1, 2, 4))
    with pytest.raises(ValueError, match=r"\(N, H, W\), got shape \(2, 4\)"):
        threshold_shares(np.zeros((2, 4)))


# ---------------------------------------------------------------- means with intervals


def test_interval_contains_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(3)
    few, many = rng.random(20), rng.random(2000)
    mean, low, high = mean_with_interval(np.append(few, np.nan), n_boot=500)
    assert mean == pytest.approx(few.mean()) and low < mean < high
    mean_many, low_many, high_many = mean_with_interval(many, n_boot=500)
    assert low_many < mean_many < high_many
    assert high_many - low_many < (high - low) / 3
    assert mean_with_interval(few, n_boot=500, seed=7) == mean_with_interval(few, n_boot=500, seed=7)
    assert np.isnan(mean_with_interval([np.nan])).all()
    assert mean_with_interval([0.4])[0] == 0.4 and np.isnan(mean_with_interval([0.4])[1:]).all()
    with pytest.raises(ValueError, match="1 of the 3 values are infinite"):  # not a mean of inf
        mean_with_interval([0.1, 0.2, np.inf])
    assert mean_with_interval([0.5, 0.5, 0.5], n_boot=50) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="confidence"):
        mean_with_interval(few, confidence=95)


def test_a_t_interval_is_wider_than_a_bootstrap_on_a_handful_of_values_and_stays_inside_the_bounds():
    from scipy import stats

    four = np.array([0.2, 0.9, 0.5, 0.7])  # chapter 10's stability: a handful of sanity clips
    _, boot_low, boot_high = mean_with_interval(four, n_boot=2000, method="bootstrap")
    mean, low, high = mean_with_interval(four)  # Student's t: the default
    expected = stats.ttest_1samp(four, 0).confidence_interval(0.95)
    assert (low, high) == pytest.approx((expected.low, expected.high))
    assert high - low > 1.5 * (boot_high - boot_low)  # the percentile bootstrap is too narrow with four
    near_one = np.array([0.99, 0.6, 1.0, 0.98])  # correlations: the mean cannot pass 1
    _, _, unbounded = mean_with_interval(near_one, method="t")
    _, low_b, high_b = mean_with_interval(near_one, method="t", bounds=(-1, 1))
    assert unbounded > 1 and high_b == 1.0 and low_b < near_one.mean()
    assert mean_with_interval([0.5, 0.5, 0.5], method="t") == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="method must be one of t, bootstrap, proportion"):
        mean_with_interval(four, method="wald")
    table = pd.DataFrame({"map": ["a"] * 4, "score": four})
    summary = summarise_scores(table, ["map"], ["score"], method="t")
    assert (summary.loc[0, "ci_low"], summary.loc[0, "ci_high"]) == pytest.approx((low, high))


def test_summarise_scores_per_method_and_dialect():
    table = pd.DataFrame({"method": ["gradcam"] * 4 + ["deeplift"] * 4,
                          "dialect": ["Eastern", "Eastern", "Mexican", "Mexican"] * 2,
                          "pointing": [1.0, 0.0, np.nan, 1.0, 1.0, 1.0, 0.0, 0.0],
                          "all_zero": [False, False, True, False, False, False, False, False]})
    summary = summarise_scores(table, ["method", "dialect"], ["pointing", "all_zero"], n_boot=200)
    assert list(summary.columns) == ["method", "dialect", "score", "mean", "ci_low", "ci_high", "n", "n_undefined"]
    assert len(summary) == 8
    row = summary.set_index(["method", "dialect", "score"]).loc[("gradcam", "Mexican", "pointing")]
    assert (row["mean"], row["n"], row["n_undefined"]) == (1.0, 1, 1)
    share = summary.set_index(["method", "dialect", "score"]).loc[("gradcam", "Mexican", "all_zero")]
    assert share["mean"] == 0.5
    assert (summary["ci_low"].fillna(0) <= summary["mean"]).all()
    overall = summarise_scores(table, [], ["pointing"], n_boot=200)
    assert overall["n"].tolist() == [7]
    with pytest.raises(ValueError, match=r"\['dialekt'\] are not in the table"):
        summarise_scores(table, ["dialekt"], ["pointing"])


def test_interval_table_prints_mean_and_interval_per_group():
    from wrenlib.metrics import interval_table, summarise_scores

    table = pd.DataFrame({"map": ["a", "a", "b", "b"], "x": [0.1, 0.3, 0.5, 0.5], "y": [1.0, 1.0, 0.0, 0.0]})
    printed = interval_table(summarise_scores(table, ["map"], ["x", "y"], n_boot=200, method="bootstrap"), "map")
    assert printed.loc["b", "x"] == "0.50 [0.50, 0.50]" and printed.loc["a", "y"] == "1.00 [1.00, 1.00]"
    assert printed.loc["a", "x"].startswith("0.20 [0.10, ")
    # a group with undefined values (a constant map's correlation) says how many clips its cell is over
    table.loc[len(table)] = {"map": "a", "x": np.nan, "y": 1.0}
    printed = interval_table(summarise_scores(table, ["map"], ["x", "y"], n_boot=200), "map")
    assert printed.loc["a", "x"].endswith("] (2 of 3)") and printed.loc["a", "y"] == "1.00 [1.00, 1.00]"
    # a column named a proportion (hits) gets Wilson's interval: 3 of 3 hits, [0.44, 1]
    printed = interval_table(summarise_scores(table, ["map"], ["x", "y"], proportions=["y"]), "map")
    assert printed.loc["a", "y"] == "1.00 [0.44, 1.00]" and printed.loc["a", "x"].endswith("] (2 of 3)")
    assert printed.loc["b", "x"] == "0.50 [0.50, 0.50]"


def test_a_paired_difference_the_same_on_every_clip_up_to_rounding_is_not_a_t_test():
    """Clip means of discrete scores: 2/3 - 1/3 and 1/3 - 0 differ in their last bit. A t-test
    reads that bit as a spread near 1e-17 and called three clips a win at p ~ 1e-33; the exact
    sign-flip test gives 2 / 2^3 = 0.25, undecided. A difference of 0 up to rounding is no
    difference (p = 1), while a spread that is real, however small next to 1, still gets the t-test."""
    from wrenlib.metrics import paired_comparison

    def table(first: list[list[float]], second: list[list[float]]) -> pd.DataFrame:
        rows = [{"map": name, "clip": clip, "score": value} for name, scores in (("A", first), ("B", second))
                for clip, values in enumerate(scores) for value in values]
        return pd.DataFrame(rows)

    thirds = table([[1, 1, 0], [1, 1, 1], [1, 0, 0]], [[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    result = paired_comparison(thirds, "A", "B")
    assert result["p_value"] == 0.25 and result["result"] == "undecided"
    assert result["low"] == result["high"] == pytest.approx(1 / 3)
    none = paired_comparison(table([[0.1 + 0.2]] * 6, [[0.3]] * 6), "A", "B")  # 0.30000000000000004 - 0.3
    assert none["p_value"] == 1.0 and none["result"] == "undecided" and none["low"] == 0.0
    real = paired_comparison(table([[0.1 + 1e-6], [0.1 - 1e-6], [0.1 + 2e-6], [0.1]], [[0.0]] * 4), "A", "B")
    assert real["p_value"] < 1e-6 and real["result"] == "won" and real["low"] < 0.1 < real["high"]


def test_a_paired_comparison_is_scipys_t_interval_of_the_per_clip_differences():
    from scipy.stats import ttest_rel

    from wrenlib.metrics import paired_comparison

    a, b = np.array([0.9, 0.8, 0.85, 0.95]), np.array([0.5, 0.6, 0.4, 0.55])
    table = pd.DataFrame({"map": ["A"] * 4 + ["B"] * 4, "clip": [1, 2, 3, 4] * 2, "score": [*a, *b]})
    result = paired_comparison(table, "A", "B")
    interval = ttest_rel(a, b).confidence_interval(0.95)
    assert result["result"] == "won" and result["n"] == 4
    assert result["low"] == pytest.approx(interval.low) and result["high"] == pytest.approx(interval.high)
    assert result["p_value"] == pytest.approx(ttest_rel(a, b).pvalue)
    # the same difference on every clip has no spread for a t-test: the exact sign-flip test decides,
    # which needs enough clips (all n on one side: 2 of the 2^n sign flips), and never a difference of 0
    shifted = table.assign(score=np.where(table["map"] == "A", np.tile(b, 2) + 0.1, table["score"]))
    assert paired_comparison(shifted, "A", "B")["p_value"] == 0.125  # 4 clips: 2 / 16
    assert paired_comparison(shifted, "A", "B")["result"] == "undecided"
    seven = pd.DataFrame({"map": ["A"] * 7 + ["B"] * 7, "clip": list(range(7)) * 2,
                          "score": [*(np.arange(7) / 10 - 0.2), *(np.arange(7) / 10)]})
    assert paired_comparison(seven, "A", "B")["p_value"] == 2 / 128
    assert paired_comparison(seven, "A", "B")["result"] == "lost"  # every clip 0.2 lower: 7 clips are evidence
    same = paired_comparison(table.assign(score=np.tile(b, 2)), "A", "B")
    assert same["p_value"] == 1.0 and same["result"] == "undecided"
    assert paired_comparison(table, "B", "A")["result"] == "lost"
    # the same means, but clips that disagree: two clips each way is no decision, where unpaired
    # bootstrap intervals of four values each could come out apart
    mixed = pd.DataFrame({"map": ["A"] * 4 + ["B"] * 4, "clip": [1, 2, 3, 4] * 2,
                          "score": [0.9, 0.2, 0.9, 0.2, 0.1, 0.8, 0.1, 0.8]})
    assert paired_comparison(mixed, "A", "B")["result"] == "undecided"
    # two rows of one clip (e.g. two seed pairs) count as that clip's mean
    doubled = pd.concat([table, table.assign(score=table["score"] + 0.01)])
    assert paired_comparison(doubled, "A", "B")["n"] == 4
    # a bird's clips scored 0, 0 and 1 count as the bird's mean, 1/3 (its median, 0, would be another answer)
    birds = pd.DataFrame({"map": ["A"] * 6 + ["B"] * 6, "bird": [1, 1, 1, 2, 2, 2] * 2,
                          "score": [0, 0, 1, 0.5, 0.5, 0.5, 0, 0, 0, 0, 0, 0]})
    assert paired_comparison(birds, "A", "B", unit="bird")["difference"] == pytest.approx((1 / 3 + 0.5) / 2)
    with pytest.raises(ValueError, match="at least 2 clips"):
        paired_comparison(table[table["clip"] == 1], "A", "B")


def test_a_map_wins_against_a_group_only_by_beating_every_member():
    from wrenlib.metrics import against_each

    clips = [1, 2, 3, 4]
    scores = {"A": [0.9, 0.8, 0.85, 0.95], "B": [0.5, 0.6, 0.4, 0.55],  # A beats B on every clip
              "C": [0.92, 0.81, 0.86, 0.97],  # C is a shade above A on every clip
              "D": [0.9, 0.2, 0.9, 0.2]}  # D disagrees with A clip by clip
    table = pd.DataFrame([{"map": name, "clip": clip, "score": value}
                          for name, values in scores.items() for clip, value in zip(clips, values)])
    assert against_each(table, "A", ["B"]) == "won"
    assert against_each(table, "A", ["B", "D"]) == "undecided"  # beating one of two is no win
    assert against_each(table, "A", ["B", "C"]) == "lost"  # beaten by one member
    assert against_each(table, "C", ["A", "B"]) == "won"
    assert against_each(table.rename(columns={"score": "AUC"}), "A", ["B"], score="AUC") == "won"
    with pytest.raises(ValueError, match="at least one map"):
        against_each(table, "A", [])


def test_holm_adjusts_each_p_value_by_the_tests_not_yet_passed():
    from wrenlib.metrics import holm_adjusted

    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; never below the one before
    np.testing.assert_allclose(holm_adjusted([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_adjusted([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm_adjusted([0.02]), [0.02])  # a family of one is the test itself
    with pytest.raises(ValueError, match="p-values must lie in"):
        holm_adjusted([0.1, float("nan")])


def test_a_claims_comparisons_are_decided_together():
    """A and C each set against B and D on eight clips. A beats D at p = 0.029 on its own; in a
    family of four, of which C against D decides nothing, Holm's adjustment doubles that p, and
    the comparison is no longer decided."""
    from wrenlib.metrics import comparison_table, decide_family, outcomes_per_map, paired_comparisons

    rng = np.random.default_rng(4)
    base = rng.random(8)
    a = base + 0.5 + rng.normal(0, 0.02, 8)
    d = a - np.array([0.05, -0.005, 0.04, 0.02, 0.03, -0.01, 0.06, 0.01])  # a shade below A
    c = d + np.array([0.03, -0.04, 0.02, -0.01, 0.0, 0.02, -0.03, 0.01])  # D's level, clip by clip either way
    table = pd.DataFrame([{"map": name, "clip": clip, "score": value}
                          for name, values in {"A": a, "B": base, "C": c, "D": d}.items()
                          for clip, value in enumerate(values)])
    family = paired_comparisons(table, {"A": ("B", "D"), "C": ("B", "D")})
    assert list(family["against"]) == ["B", "D", "B", "D"] and (family["n"] == 8).all()
    decided = decide_family(family).set_index(["map", "against"])
    alone = family.set_index(["map", "against"])
    assert alone.loc[("A", "D"), "result"] == "won" and alone.loc[("A", "D"), "p_value"] == pytest.approx(0.0294, abs=1e-4)
    assert decided.loc[("A", "D"), "p_holm"] == pytest.approx(2 * alone.loc[("A", "D"), "p_value"])
    assert decided.loc[("A", "D"), "result"] == "undecided"  # with the family: not decided
    assert decided.loc[("A", "B"), "result"] == decided.loc[("C", "B"), "result"] == "won"
    assert (decided["p_holm"] >= decided["p_value"]).all()
    shown = comparison_table({"a claim": decided.reset_index()}).loc[("a claim", "A", "D")]
    assert shown["comparison"] == "not told apart" and shown["p"] == "0.029" and shown["p (Holm)"] == "0.059"
    assert shown["clips"] == 8
    outcomes = outcomes_per_map(decided.reset_index())
    assert outcomes["A"] == "undecided" and outcomes["C"] == "undecided"  # each beat B, not D
    with pytest.raises(ValueError, match="at least one map"):
        paired_comparisons(table, {"A": ()})


def test_a_correlations_interval_stays_inside_minus_one_to_one():
    from scipy import stats

    from wrenlib.metrics import correlation_with_interval

    values = np.array([0.99, 0.7, 0.95, 0.85])
    centre, low, high = correlation_with_interval(values)
    assert -1 < low < centre < high < 1  # the plain t-interval of these four passes 1
    z = np.arctanh(values)
    expected = stats.ttest_1samp(z, 0).confidence_interval(0.95)
    assert low == pytest.approx(np.tanh(expected.low)) and high == pytest.approx(np.tanh(expected.high))
    assert centre == pytest.approx(np.tanh(z.mean()))
    assert correlation_with_interval([0.5, 0.5, np.nan]) == (pytest.approx(0.5),) * 3
    with pytest.raises(ValueError, match="at least 2"):
        correlation_with_interval([0.5])
    with pytest.raises(ValueError, match="Fisher z"):
        correlation_with_interval([1.0, 0.5])


def test_a_permutation_p_value_at_its_floor_is_printed_as_a_bound():
    from wrenlib.metrics import permutation_p_text

    assert permutation_p_text(1 / 1001, 1000) == "p ≤ 0.001"
    assert permutation_p_text(1 / 41, 40) == "p ≤ 0.025"  # the floor 0.0244 rounded up, never down
    assert permutation_p_text(2 / 41, 40) == "p = 0.049" and permutation_p_text(0.37, 40) == "p = 0.37"
    # never rounded onto the other side of 0.05: what counts as significant reads as below it
    assert permutation_p_text(0.04995, 1000) == "p = 0.04995" and permutation_p_text(0.0504, 1000) == "p = 0.050"
    assert permutation_p_text(3 / 61, 60) == "p = 0.049"  # 0.0492 would read 0.05
    assert permutation_p_text(0.0123, 1000) == "p = 0.012"
    with pytest.raises(ValueError, match="whole number"):
        permutation_p_text(0.5, 0)


def test_a_gap_between_the_dialects_is_named_only_where_there_is_one():
    from wrenlib.metrics import dialect_gap_text

    rng = np.random.default_rng(0)
    birds = np.repeat(np.arange(12), 4)  # 12 birds of 4 clips, 6 per dialect
    dialects = np.where(birds < 6, "Eastern", "Mexican")
    # every Eastern bird far above every Mexican one: a gap, with evidence over the birds
    apart = np.where(birds < 6, 0.9, 0.3) + rng.normal(0, 0.02, 48)
    gap = dialect_gap_text(apart, dialects, birds)
    assert gap.startswith("The median over all clips hides a gap") and "for the 24 clips predicted Eastern" in gap
    assert "Mann-Whitney p = 0.0022" in gap  # 6 against 6 birds, fully apart: the exact test's smallest p
    # half the Eastern birds far above the Mexican ones, half a shade below: the clips' medians lie 1.9
    # times apart, but over the birds the dialects are not told apart — not established
    split = np.where(birds < 3, 0.9, np.where(birds < 6, 0.25, 0.3)) + rng.normal(0, 0.01, 48)
    shaky = dialect_gap_text(split, dialects, birds)
    assert "hides a gap" not in shaky and "not established" in shaky
    close = dialect_gap_text(np.where(birds < 6, 0.50, 0.45), dialects, birds)
    assert close.startswith("The two dialects' medians lie within a factor of 1.5")
    assert "alike" not in close
    assert dialect_gap_text(np.where(birds < 6, 0.5, np.nan), dialects, birds) == ""
    few = dialect_gap_text([0.9, 0.9, 0.1, 0.1], ["Eastern"] * 2 + ["Mexican"] * 2, [1, 1, 2, 2])
    assert "too few birds" in few


def test_a_difference_of_shares_reads_in_signed_points():
    from wrenlib.metrics import points_text

    assert points_text(0.354, 0.264, 0.444) == "+35.4 points [+26.4, +44.4]"
    assert points_text(-0.156, -0.213, -0.099, decimals=0) == "-16 points [-21, -10]"


def test_listing_joins_names_as_prose():
    from wrenlib.metrics import listing

    assert listing([]) == "" and listing(["SHAP"]) == "SHAP"
    assert listing(["DeepLIFT", "SHAP"]) == "DeepLIFT and SHAP"
    assert listing(["0", "0.25", "0.5"]) == "0, 0.25 and 0.5"
    assert listing(["LIME", "SHAP"], bold=True) == "**LIME** and **SHAP**"


def test_share_text_never_shows_a_nonzero_share_as_zero():
    from wrenlib.metrics import share_text

    assert share_text(0) == "0%"
    assert share_text(1e-7) == "< 0.01%" and share_text(-1e-7) == "> -0.01%"
    assert share_text(0.0123) == "1.23%" and share_text(0.5, decimals=0) == "50%"
    assert share_text(0.004, decimals=0) == "< 1%"
    assert share_text(0.005, decimals=0) == "< 1%" and share_text(-0.005, decimals=0) == "> -1%"  # rounds to 0
    assert share_text(float("nan")) == "–"


def test_a_claims_verdict_is_symmetric_in_wins_and_losses():
    from wrenlib.metrics import comparison_verdict

    assert comparison_verdict(1, 0) == "confirmed" and comparison_verdict(0, 1) == "refuted"
    assert comparison_verdict(3, 1) == comparison_verdict(1, 3) == "qualified"
    assert comparison_verdict(0, 0) == "undecided"
    with pytest.raises(ValueError, match="counts"):
        comparison_verdict(-1, 0)


def test_a_ratio_of_means_has_an_interval_over_clips_with_their_pairs_kept():
    from wrenlib.metrics import ratio_of_means_with_interval

    rng = np.random.default_rng(0)
    shared = rng.uniform(0.05, 0.15, 40)
    mass = 3 * shared * rng.uniform(0.8, 1.2, 40)  # three times as much on the diagnostic elements, per clip
    ratio, low, high = ratio_of_means_with_interval(mass, shared)
    assert ratio == pytest.approx(mass.mean() / shared.mean()) and 2.7 < low < ratio < high < 3.3
    # the pairs stay together: shuffling one side against the other widens the interval
    _, wide_low, wide_high = ratio_of_means_with_interval(mass, rng.permutation(shared))
    assert wide_high - wide_low > high - low
    assert ratio_of_means_with_interval(mass, shared) == (ratio, low, high)  # repeatable
    with_nan = ratio_of_means_with_interval(np.append(mass, np.nan), np.append(shared, 1.0))
    assert with_nan[0] == pytest.approx(ratio)  # a clip with an undefined score is left out
    assert np.isnan(ratio_of_means_with_interval(mass, np.zeros(40))[0])
    # 3 of 12 clips with relevance on the shared elements: (9/12)^12 = 3 % of resamples draw none of
    # them, an infinite ratio, more than the 2.5 % tail: the interval is unbounded above, not NaN
    sparse = np.zeros(12)
    sparse[:3] = rng.uniform(0.5, 1.5, 3)
    ratio, low, high = ratio_of_means_with_interval(rng.random(12), sparse)
    assert np.isfinite(ratio) and np.isfinite(low) and low < ratio and high == np.inf


def test_bootstraps_are_seeded_with_the_keyword_the_installed_scipy_knows(monkeypatch):
    import scipy.stats

    from wrenlib.metrics import bootstrap_seeding

    assert set(bootstrap_seeding(0)) <= {"rng", "random_state"}
    monkeypatch.setattr(scipy.stats, "bootstrap", lambda data, statistic, random_state=None: None)  # SciPy < 1.15
    assert set(bootstrap_seeding(0)) == {"random_state"}


def test_an_interval_lies_above_below_or_around_a_value():
    from wrenlib.metrics import interval_side

    assert interval_side(0.1, 0.3) == "above" and interval_side(-0.3, -0.1) == "below"
    assert interval_side(-0.1, 0.1) == "within" and interval_side(2.0, 3.0, 2.5) == "within"
    assert interval_side(2.6, 3.0, 2.5) == "above" and interval_side(float("nan"), float("nan")) == "within"


def test_a_share_of_hits_gets_a_proportions_interval_even_when_every_clip_missed():
    """The pointing game scores hits: 0 hits of 16 is no proof that the method never hits (an
    interval of [0, 0] said so), and Wilson's interval reaches 19 %. Only a score named a proportion
    gets it: a correlation of 1 on every clip is no share of hits, and has no spread."""
    from scipy.stats import binomtest

    from wrenlib.metrics import wilson_interval

    mean, low, high = mean_with_interval(np.zeros(16), method="proportion")
    assert (mean, low) == (0.0, 0.0) and high == pytest.approx(binomtest(0, 16).proportion_ci(method="wilson").high)
    assert 0.18 < high < 0.2
    hits = np.array([1.0] * 5 + [0.0] * 11)
    interval = binomtest(5, 16).proportion_ci(0.9, method="wilson")
    assert mean_with_interval(hits, confidence=0.9, method="proportion")[1:] == pytest.approx((interval.low, interval.high))
    assert wilson_interval(5 / 16, 16, 0.9) == pytest.approx((interval.low, interval.high))
    tied = wilson_interval(5.5 / 16, 16)  # a tie shares a hit: between the intervals of 5 and 6 hits
    assert wilson_interval(5 / 16, 16)[0] < tied[0] < wilson_interval(6 / 16, 16)[0]
    assert mean_with_interval(np.ones(4), bounds=(-1, 1)) == (1.0, 1.0, 1.0)  # a constant correlation
    assert mean_with_interval(np.zeros(5)) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"a proportion lies in \[0, 1\]"):
        mean_with_interval([0.5, 1.5], method="proportion")


def test_a_family_calls_a_comparison_lost_only_where_its_adjusted_p_is_small():
    from wrenlib.metrics import decide_family

    family = pd.DataFrame({"map": ["A", "B", "C"], "against": ["X"] * 3, "difference": [-0.2, 0.3, -0.4],
                           "p_value": [0.1, 0.001, 0.002]})
    decided = decide_family(family).set_index("map")
    assert decided.loc["A", "result"] == "undecided"  # below 0, but p_holm = 0.1: no evidence
    assert decided.loc["B", "result"] == "won" and decided.loc["C", "result"] == "lost"
    assert decide_family(family.assign(p_value=0.05 / 3)).set_index("map")["result"].tolist() == ["undecided"] * 3


def test_a_constant_map_has_no_correlation_whatever_its_size():
    """A constant map's correlation is undefined (NaN, counted as such), not a rounding error near 0:
    with 23 pixels of 0.1, the mean differs from 0.1 by ~1e-17, which a check of the spread alone misses."""
    rng = np.random.default_rng(0)
    constant, other = np.full((1, 1, 23), 0.1), rng.random((1, 1, 23))
    assert np.isnan(map_correlation(constant, other)).all() and np.isnan(map_correlation(other, constant)).all()
    assert np.isfinite(map_correlation(other, rng.random((1, 1, 23)))).all()


def test_mask_auc_within_the_song_sets_the_evidence_against_the_other_song_only():
    """Most of a spectrogram is empty page: a map that marks every song element equally tells
    song from page (mask AUC near 1) and the diagnostic elements from the shared ones not at all
    (0.5 within the song); the score within the song asks the second question."""
    masks = np.zeros((1, 10, 10), dtype=bool)
    masks[0, :2, :2] = True  # the diagnostic element
    song = masks.copy()
    song[0, 5:7, 5:7] = True  # a shared element
    marks_all_song = song.astype(float)
    assert mask_auc(marks_all_song, masks)[0] > 0.9
    assert mask_auc(marks_all_song, masks, within=song)[0] == 0.5
    assert mask_auc(masks.astype(float), masks, within=song)[0] == 1.0
    assert np.isnan(mask_auc(marks_all_song, masks, within=masks)[0])  # no shared pixel to set against
    with pytest.raises(ValueError, match="within must both be"):
        mask_auc(marks_all_song, masks, within=song[:, :5])


def test_maps_summed_to_one_weigh_the_same_in_an_average():
    """Chapter 08's other scale: scaled to its maximum, a map high on many pixels outweighs one high
    on a few in their average; summed to 1, each carries the same total."""
    from wrenlib.ensembles import average_ensemble
    from wrenlib.explain import normalise_maps

    broad = np.ones((1, 4, 5))  # high everywhere
    sharp = np.zeros((1, 4, 5))
    sharp[0, 0, 0] = 3.0  # high on one pixel
    summed = normalise_maps(np.concatenate([broad, sharp, -sharp]), scale="sum")
    assert summed.reshape(3, -1).sum(axis=1).tolist() == pytest.approx([1.0, 1.0, 0.0])  # negative only: all zero
    by_max = average_ensemble({"broad": normalise_maps(broad), "sharp": normalise_maps(sharp)})
    by_sum = average_ensemble({"broad": summed[:1], "sharp": summed[1:2]})
    assert by_max.sum() > 10 * by_max[0, 0, 0] and by_sum[0, 0, 0] > 0.5 * by_sum.sum()


def test_per_map_scores_taken_in_passes_are_the_scores_of_one_pass(monkeypatch):
    """The full profile scores hundreds of 480 x 960 maps; the per-map scores take them a few at a
    time so that their float64 copies stay small. Each map's value depends on that map alone, so the
    passes must give exactly what one pass gives, and a shape error still names the full shapes."""
    from wrenlib import metrics

    rng = np.random.default_rng(2)
    maps, other = rng.random((11, 6, 8)) ** 3, rng.random((11, 6, 8))
    maps[3] = 0.0  # an all-zero map: NaN shares
    masks = rng.random((11, 6, 8)) < 0.2
    masks[5] = False  # an empty mask: NaN rank accuracy and pointing game
    song = masks | (rng.random((11, 6, 8)) < 0.3)
    scores = {"correlation": lambda: metrics.map_correlation(maps, other),
              "share": lambda: metrics.region_share(maps, masks), "mass": lambda: metrics.relevance_mass(maps, masks),
              "rank": lambda: metrics.relevance_rank_accuracy(maps, masks),
              "pointing": lambda: metrics.pointing_game(maps, masks, 1),
              "auc": lambda: metrics.mask_auc(maps, masks, within=song),
              "background": lambda: metrics.background_share(maps, ~song)}
    whole = {name: score() for name, score in scores.items()}
    monkeypatch.setattr(metrics, "MAPS_PER_PASS", 4)  # 11 maps: passes of 4, 4 and 3
    for name, score in scores.items():
        np.testing.assert_array_equal(score(), whole[name], err_msg=name)
        assert score().shape == (11,)
    with pytest.raises(ValueError, match=r"got \(11, 6, 8\) and \(10, 6, 8\)"):
        metrics.relevance_mass(maps, masks[:10])
    with pytest.raises(ValueError, match="maps must have one shape"):
        metrics.map_correlation(maps, other[:, :5])


# ---------------------------------------------------------------- guards a mutation review found missing


def test_a_last_pass_of_one_map_is_scored_too(monkeypatch):
    """Nine maps in passes of four leave one map for a third pass: it must be scored, not dropped
    (a pass loop that stopped a map early lost it without changing the shape of a 4-4-3 split)."""
    from wrenlib import metrics

    rng = np.random.default_rng(5)
    maps, masks = rng.random((9, 5, 6)), rng.random((9, 5, 6)) < 0.3
    whole = metrics.relevance_mass(maps, masks)
    monkeypatch.setattr(metrics, "MAPS_PER_PASS", 4)
    np.testing.assert_array_equal(metrics.relevance_mass(maps, masks), whole)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rank_scores_refuse_maps_with_nan_or_infinite_values(bad):
    """A rank, a maximum or a Mann-Whitney U of a map holding NaN or +-inf means nothing: every rank
    score raises, naming the map, for infinite values as for NaN."""
    masks = _corner_mask(2)
    maps = np.random.default_rng(0).random(masks.shape)
    maps[1, 3, 3] = bad
    for score in (relevance_rank_accuracy, pointing_game, mask_auc):
        with pytest.raises(ValueError, match=r"must be finite; maps \[1\]"):
            score(maps, masks)


def test_normalised_maps_lie_in_zero_to_one_and_are_finite():
    """Threshold shares (Figure 6) are only comparable on maps normalised to [0, 1]: a map above 1
    or holding NaN is refused; one a float32 rounding above 1 is accepted."""
    from wrenlib.metrics import check_normalised_maps

    with pytest.raises(ValueError, match=r"normalised to \[0, 1\].*0 to 1\.5"):
        threshold_shares(np.linspace(0, 1.5, 8).reshape(1, 2, 4))
    with pytest.raises(ValueError, match="NaN or infinite"):
        threshold_shares(np.array([[[0.5, np.nan]]]))
    assert check_normalised_maps(np.array([[[0.0, 1.0 + 1e-7]]])).dtype == np.float32


def test_rank_accuracy_of_a_mask_covering_the_whole_image_is_one():
    """k = every pixel: all of the map's top k lie in the mask (the k-th largest value is the
    smallest, not one past the end)."""
    maps = np.random.default_rng(1).random((2, 3, 4))
    assert relevance_rank_accuracy(maps, np.ones(maps.shape, dtype=bool)).tolist() == [1.0, 1.0]


def test_dilation_takes_whole_radii_and_image_stacks_and_returns_new_masks():
    """dilate_masks: a radius of 1.5 px is an error (not silently 1), masks must be (N, H, W), and
    radius 0 returns a copy, so that changing the result leaves the caller's masks alone."""
    masks = _corner_mask()
    with pytest.raises(ValueError, match="whole number of pixels"):
        dilate_masks(masks, 1.5)
    with pytest.raises(ValueError, match=r"\(N, H, W\), got shape \(4, 4\)"):
        dilate_masks(masks[0], 1)
    same = dilate_masks(masks, 0)
    assert (same == masks).all() and not np.shares_memory(same, masks)


def test_threshold_shares_count_strictly_above_and_want_real_thresholds():
    """Pixels exactly at a threshold are not above it; thresholds must be a non-empty sequence of
    finite numbers."""
    maps = np.array([[[0.5, 0.5, 0.75, 0.25]]])  # values exact in float32
    assert threshold_shares(maps, thresholds=(0.5, 0.25)).tolist() == [[0.25, 0.75]]
    # values not exact in float32: a pixel stored as 0.4 is not above 0.4, as one stored as 0.7 is not
    # above 0.7 (float32's 0.4 is 0.4000000060 and its 0.7 is 0.6999999881: in float64 only 0.4 counted)
    stored = np.array([[[0.4, 0.7, 0.9, 0.1]]], dtype=np.float32)
    assert threshold_shares(stored, thresholds=(0.4, 0.7, 0.9)).tolist() == [[0.5, 0.25, 0.0]]
    for bad in [(), (0.5, np.nan)]:
        with pytest.raises(ValueError, match="non-empty sequence of finite numbers"):
            threshold_shares(maps, thresholds=bad)


def test_bootstraps_are_seeded_with_rng_where_scipy_takes_it(monkeypatch):
    """SciPy 1.15 and later take ``rng`` (``random_state`` is deprecated there), seeded from ``seed``."""
    import scipy.stats

    from wrenlib.metrics import bootstrap_seeding

    monkeypatch.setattr(scipy.stats, "bootstrap", lambda data, statistic, rng=None: None)
    seeding = bootstrap_seeding(3)
    assert set(seeding) == {"rng"}
    assert seeding["rng"].random() == np.random.default_rng(3).random()


def test_a_bootstrap_interval_is_scipys_percentile_bootstrap_at_the_level_resamples_and_seed_given():
    """mean_with_interval(method="bootstrap") and summarise_scores pass confidence, n_boot and seed
    on to ``scipy.stats.bootstrap``'s percentile interval (none of them fixed, no BCa)."""
    from scipy import stats

    from wrenlib.metrics import bootstrap_seeding

    values = np.random.default_rng(6).beta(0.5, 3, 12)
    for confidence, n_boot, seed in [(0.8, 300, 5), (0.95, 150, 9)]:
        expected = stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                                   method="percentile", **bootstrap_seeding(seed)).confidence_interval
        got = mean_with_interval(values, confidence=confidence, n_boot=n_boot, seed=seed, method="bootstrap")
        assert got[1:] == pytest.approx((expected.low, expected.high), rel=1e-12)
        summary = summarise_scores(pd.DataFrame({"x": values}), [], ["x"], confidence=confidence, n_boot=n_boot,
                                   seed=seed, method="bootstrap")
        assert (summary.loc[0, "ci_low"], summary.loc[0, "ci_high"]) == pytest.approx(got[1:], rel=1e-12)


def test_mean_with_interval_checks_its_arguments_and_cuts_both_ends_to_the_bounds():
    """n_boot must be >= 1 whatever the method; a proportion below 0 is no share of hits; the low end
    is cut to the bounds as the high one is (correlations near -1)."""
    from wrenlib.metrics import wilson_interval

    with pytest.raises(ValueError, match="n_boot must be at least 1"):
        mean_with_interval([0.1, 0.2, 0.4], n_boot=0)
    with pytest.raises(ValueError, match=r"a proportion lies in \[0, 1\]"):
        mean_with_interval([-0.5, 1.0], method="proportion")
    for share in (-0.1, 1.2):
        with pytest.raises(ValueError, match=r"a proportion lies in \[0, 1\]"):
            wilson_interval(share, 10)
    near_minus_one = np.array([-0.99, -0.6, -1.0, -0.98])
    _, low, high = mean_with_interval(near_minus_one, bounds=(-1, 1))
    assert low == -1.0 and near_minus_one.mean() < high < 0


def test_a_ratio_of_means_is_scipys_paired_bootstrap_and_handles_its_edge_cases():
    """ratio_of_means_with_interval: the paired percentile bootstrap of ``scipy.stats.bootstrap`` at
    the confidence, resamples and seed given; mismatched lengths are an error; a NaN in either score
    leaves its clip out; one clip has no interval; a constant numerator over a varying denominator
    still has one; two constant scores have none (the ratio itself)."""
    from scipy import stats

    from wrenlib.metrics import bootstrap_seeding, ratio_of_means_with_interval

    rng = np.random.default_rng(7)
    top, bottom = rng.uniform(0.2, 0.6, 15), rng.uniform(0.1, 0.3, 15)
    result = stats.bootstrap((top, bottom), lambda a, b, axis=-1: a.mean(axis=axis) / b.mean(axis=axis),
                             paired=True, vectorized=True, n_resamples=400, confidence_level=0.8, method="percentile",
                             **bootstrap_seeding(4)).confidence_interval
    ratio, low, high = ratio_of_means_with_interval(top, bottom, confidence=0.8, n_boot=400, seed=4)
    assert ratio == pytest.approx(top.mean() / bottom.mean())
    assert (low, high) == pytest.approx((result.low, result.high), rel=1e-12)
    with pytest.raises(ValueError, match="same clips, got 1 and 3"):
        ratio_of_means_with_interval([0.5], [0.1, 0.2, 0.3])
    assert ratio_of_means_with_interval(np.append(top, 5.0), np.append(bottom, np.nan)) == \
        ratio_of_means_with_interval(top, bottom)
    assert np.isnan(ratio_of_means_with_interval([0.5], [0.2])).all()
    ratio, low, high = ratio_of_means_with_interval(np.full(15, 0.3), bottom)
    assert low < ratio < high
    assert ratio_of_means_with_interval(np.full(5, 0.3), np.full(5, 0.1)) == (ratio_of_means_with_interval(
        [0.3, 0.3], [0.1, 0.1])[0],) * 3


def test_an_unbounded_ratio_interval_is_the_resamples_own_quantiles_without_the_undefined_ones():
    """Where resamples divide by 0 the interval is read off the resamples themselves (the
    ``inverted_cdf`` quantiles at (1 - confidence) / 2 and its complement): each end is a resample's
    ratio, the smallest one with at least that share of the defined resamples at or below it, and
    resamples of 0 / 0 (NaN) are left out rather than making the interval NaN."""
    import warnings

    from scipy import stats

    from wrenlib.metrics import bootstrap_seeding, ratio_of_means_with_interval

    rng = np.random.default_rng(8)
    bottom = np.zeros(12)
    bottom[:3] = rng.uniform(0.5, 1.5, 3)
    for top in (rng.random(12), np.where(bottom > 0, rng.random(12), 0.0)):  # x / 0 = inf; then 0 / 0 = NaN
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SciPy warns of the resamples without a finite ratio
            draws = stats.bootstrap((top, bottom), lambda a, b, axis=-1: a.mean(axis=axis) / b.mean(axis=axis),
                                    paired=True, vectorized=True, n_resamples=2000, method="percentile",
                                    **bootstrap_seeding(0)).bootstrap_distribution
        assert not np.isfinite(draws).all()  # the case in hand: some resamples have no finite ratio
        defined = draws[~np.isnan(draws)]
        _, low, high = ratio_of_means_with_interval(top, bottom)
        assert low in defined and high in defined
        # counted in whole resamples, where (1 - 0.95) / 2 = 0.025000000000000022 would make the 50th
        # of 2000 too few by a rounding error and take the 51st
        below, above = round(0.025 * len(defined), 9), round(0.975 * len(defined), 9)
        assert np.sum(defined < low) < below <= np.sum(defined <= low)
        assert np.sum(defined < high) < above <= np.sum(defined <= high)
        if len(defined) == 2000:  # the first case, with no 0 / 0: its low end is the 50th resample
            assert len(defined) == 2000 and low == np.sort(defined)[49] < np.sort(defined)[50]


def test_summarise_scores_keeps_every_group_in_order_and_refuses_text():
    """Groups come out sorted, a group whose key is missing (NaN) is kept, the confidence and bounds
    reach each group's interval, and a score column of text is an error, not NaN scores."""
    table = pd.DataFrame({"map": ["b", "b", "a", "a", None, None], "x": [0.9, 0.99, 0.4, 0.6, 0.5, 0.7]})
    summary = summarise_scores(table, ["map"], ["x"], confidence=0.8, bounds=(0, 1))
    assert summary["map"].iloc[:2].tolist() == ["a", "b"] and summary["map"].isna().iloc[2]
    assert (summary["ci_low"].iloc[0], summary["ci_high"].iloc[0]) == pytest.approx(
        mean_with_interval([0.4, 0.6], confidence=0.8)[1:])
    assert summary["ci_high"].iloc[1] == 1.0  # the t-interval of 0.9 and 0.99 passes 1
    with pytest.raises(ValueError):
        summarise_scores(table.assign(x=["0.1", "high", "0.3", "0.2", "0.4", "0.5"]), ["map"], ["x"])


def test_a_paired_comparison_decides_at_its_confidence_on_the_mean_difference_of_matched_clips():
    """The interval is ttest_rel's at the confidence given; a same-difference comparison is decided
    by the sign-flip p strictly below 1 - confidence (p = 0.125 at 87.5 % is not enough, 2/128 at
    99 % neither); ``difference`` is the mean of the clips' differences; a clip scored under only one
    map is left out."""
    from scipy.stats import ttest_rel

    from wrenlib.metrics import paired_comparison, paired_comparisons

    a, b = np.array([0.9, 0.8, 0.85, 0.95]), np.array([0.5, 0.6, 0.4, 0.55])
    table = pd.DataFrame({"map": ["A"] * 4 + ["B"] * 4, "clip": [1, 2, 3, 4] * 2, "score": [*a, *b]})
    result = paired_comparison(table, "A", "B", confidence=0.8)
    interval = ttest_rel(a, b).confidence_interval(0.8)
    assert (result["low"], result["high"]) == pytest.approx((interval.low, interval.high))
    family = paired_comparisons(table, {"A": ["B"]}, confidence=0.8)
    assert (family.loc[0, "low"], family.loc[0, "high"]) == pytest.approx((interval.low, interval.high))
    assert result["difference"] == pytest.approx(np.mean(a - b))  # 0.3625; the median would be 0.4
    shifted = table.assign(score=np.where(table["map"] == "A", np.tile(b, 2) + 0.1, table["score"]))
    assert paired_comparison(shifted, "A", "B", confidence=0.875)["result"] == "undecided"  # p = 0.125
    assert paired_comparison(shifted, "A", "B", confidence=0.8)["result"] == "won"
    seven = pd.DataFrame({"map": ["A"] * 7 + ["B"] * 7, "clip": list(range(7)) * 2,
                          "score": [*(np.arange(7) / 10 - 0.2), *(np.arange(7) / 10)]})
    assert paired_comparison(seven, "A", "B")["result"] == "lost"
    assert paired_comparison(seven, "A", "B", confidence=0.99)["result"] == "undecided"  # 2/128 > 1 %
    extra = pd.concat([table, pd.DataFrame({"map": ["A"], "clip": [5], "score": [0.0]})])
    assert paired_comparison(extra, "A", "B") == paired_comparison(table, "A", "B")


def test_holm_caps_at_one_and_refuses_p_values_outside_zero_to_one():
    """An adjusted p above 1 (0.6 x 2) reads 1; a p-value below 0 or above 1 is an error."""
    from wrenlib.metrics import holm_adjusted

    np.testing.assert_allclose(holm_adjusted([0.6, 0.9]), [1.0, 1.0])
    for bad in ([0.1, 1.5], [-0.1, 0.2]):
        with pytest.raises(ValueError, match="p-values must lie in"):
            holm_adjusted(bad)


def test_a_family_needs_a_real_alpha_a_direction_and_leaves_its_input_alone():
    """decide_family: alpha must lie in (0, 1); a difference of exactly 0 is neither won nor lost,
    whatever its p; the comparisons passed in are not changed (no p_holm added to them)."""
    from wrenlib.metrics import decide_family

    family = pd.DataFrame({"map": ["A", "B"], "against": ["X", "X"], "difference": [0.0, 0.3],
                           "p_value": [0.001, 0.001], "result": ["won", "won"]})
    before = family.copy()
    decided = decide_family(family)
    assert decided["result"].tolist() == ["undecided", "won"]
    pd.testing.assert_frame_equal(family, before)
    for alpha in (0, 1, 5):
        with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1"):
            decide_family(family, alpha)


def test_a_comparison_table_reads_signed_differences_intervals_and_words():
    """The quoted cells: the signed difference and its interval at ``decimals`` (3 by default), the
    result in words ("beats", "is beaten"), and the index levels named (``name``, map, against)."""
    from wrenlib.metrics import comparison_table

    decided = pd.DataFrame({"map": ["A", "A"], "against": ["B", "C"], "difference": [0.1234, -0.2],
                            "low": [0.05, -0.3], "high": [0.2, -0.1], "n": [8, 8], "p_value": [0.01, 0.02],
                            "p_holm": [0.02, 0.02], "result": ["won", "lost"]})
    shown = comparison_table({"claim 1": decided})
    assert shown.index.names == ["claim", "map", "against"]
    column = "difference [95 % t-interval, unadjusted]"
    assert shown.loc[("claim 1", "A", "B"), column] == "+0.123 [+0.050, +0.200]"
    assert shown.loc[("claim 1", "A", "C"), column] == "-0.200 [-0.300, -0.100]"
    assert shown["comparison"].tolist() == ["beats", "is beaten"]


def test_outcomes_keep_the_maps_order_and_against_each_uses_its_alpha():
    """outcomes_per_map lists maps as the comparisons name them (not sorted); against_each decides
    at the ``alpha`` it is given."""
    from wrenlib.metrics import against_each, outcomes_per_map

    decided = pd.DataFrame({"map": ["Z", "A"], "result": ["won", "lost"]})
    assert outcomes_per_map(decided).index.tolist() == ["Z", "A"]
    clips = [1, 2, 3, 4]
    scores = {"A": [0.9, 0.8, 0.85, 0.95], "B": [0.5, 0.6, 0.4, 0.55]}  # p = 0.0097
    table = pd.DataFrame([{"map": name, "clip": clip, "score": value}
                          for name, values in scores.items() for clip, value in zip(clips, values)])
    assert against_each(table, "A", ["B"]) == "won"
    assert against_each(table, "A", ["B"], alpha=0.005) == "undecided"


def test_a_correlations_interval_is_at_the_confidence_given():
    """correlation_with_interval(confidence=0.8) is the 80 % t-interval on Fisher's z scale."""
    from scipy import stats

    from wrenlib.metrics import correlation_with_interval

    values = np.array([0.99, 0.7, 0.95, 0.85])
    expected = stats.ttest_1samp(np.arctanh(values), 0).confidence_interval(0.8)
    _, low, high = correlation_with_interval(values, confidence=0.8)
    assert (low, high) == pytest.approx((np.tanh(expected.low), np.tanh(expected.high)))


def test_permutation_p_text_at_its_edges():
    """Whole draws only; a p a rounding above its floor still reads as the bound; a floor that is a
    round number is not rounded up a step (5e-05 with 19,999 draws, 0.01 with 99); three decimals
    from exactly 100 draws."""
    from wrenlib.metrics import permutation_p_text

    with pytest.raises(ValueError, match="whole number"):
        permutation_p_text(0.5, 10.5)
    assert permutation_p_text(1 / 1001 * (1 + 1e-12), 1000) == "p ≤ 0.001"
    assert permutation_p_text(1 / 20000, 19999) == "p ≤ 5e-05"
    assert permutation_p_text(1 / 100, 99) == "p ≤ 0.01"
    assert permutation_p_text(0.0123, 100) == "p = 0.012" and permutation_p_text(0.0123, 99) == "p = 0.01"


def test_an_interval_ending_on_the_value_holds_it():
    """"above" needs the low end strictly above the value, "below" the high end strictly below:
    an interval that touches the value is "within"."""
    from wrenlib.metrics import interval_side

    assert interval_side(0.0, 0.3) == "within" and interval_side(-0.3, 0.0) == "within"
    assert interval_side(2.5, 3.0, 2.5) == "within" and interval_side(2.0, 2.5, 2.5) == "within"


def test_a_verdict_refuses_negative_losses():
    from wrenlib.metrics import comparison_verdict

    with pytest.raises(ValueError, match="counts"):
        comparison_verdict(0, -1)


def test_a_dialect_gap_sentence_in_full():
    """The sentence quotes each dialect's clip median to one decimal of a percent and the birds'
    Mann-Whitney p; p = 0.026 is a gap at the default alpha 0.05 and not established at 0.01."""
    from wrenlib.metrics import dialect_gap_text

    values = [0.20, 0.35, 0.45, 0.50, 0.55, 0.60, 0.05, 0.10, 0.15, 0.25, 0.30, 0.40]  # one clip per bird
    dialects, birds = ["Eastern"] * 6 + ["Mexican"] * 6, list(range(12))
    each = "47.5% for the 6 clips predicted Eastern and 20.0% for the 6 clips predicted Mexican"
    assert dialect_gap_text(values, dialects, birds) == (
        f"The median over all clips hides a gap between the dialects: {each} (the birds' means, "
        "Mann-Whitney p = 0.026).")
    assert dialect_gap_text(values, dialects, birds, alpha=0.01) == (
        f"The dialects' medians differ, {each}, but over the birds the gap is not established "
        "(Mann-Whitney p = 0.026).")


def test_a_dialect_gap_is_tested_on_each_birds_mean_at_its_ratio_and_for_two_dialects_only():
    """A bird's clips 0, 0 and 0.9 count as its mean, 0.3 (its median, 0, would put it below the
    other dialect's birds); medians exactly ``ratio`` apart are a gap to test, not "within"; three
    dialects get no two-group test."""
    from scipy import stats

    from wrenlib.metrics import dialect_gap_text

    east = [[0.0, 0.0, 0.9 + 0.003 * i] for i in range(3)] + [[0.2 + 0.001 * i] * 3 for i in range(3)]
    mexican = [[0.1 + 0.001 * i] * 3 for i in range(6)]
    values = np.concatenate(east + mexican)
    birds, dialects = np.repeat(np.arange(12), 3), np.repeat(["Eastern", "Mexican"], 18)
    p_value = stats.mannwhitneyu([np.mean(clips) for clips in east], [np.mean(clips) for clips in mexican]).pvalue
    text = dialect_gap_text(values, dialects, birds)
    assert p_value < 0.05 and text.startswith("The median over all clips hides a gap")
    assert f"Mann-Whitney p = {p_value:.2g}" in text
    at_ratio = dialect_gap_text(np.where(birds < 6, 0.75, 0.5), dialects, birds)  # 0.75 / 0.5 = 1.5
    assert "within a factor" not in at_ratio and "Mann-Whitney" in at_ratio
    three = dialect_gap_text(np.repeat([0.9, 0.5, 0.1], 12), np.repeat(["Eastern", "Mexican", "Western"], 12),
                             np.repeat(np.arange(12), 3))
    assert "Mann-Whitney" not in three and "Eastern" in three and "Western" in three
    assert three.endswith("(the test compares two dialects, not 3).")  # not "too few birds": 12 each
    alike = dialect_gap_text(np.repeat([0.5, 0.6, 0.55], 12), np.repeat(["Eastern", "Mexican", "Western"], 12),
                             np.repeat(np.arange(12), 3))
    assert alike.startswith("The dialects' medians lie within a factor of 1.5")  # not "the two dialects'"


def test_an_undefined_auc_is_nan_without_a_warning():
    """A mask covering the whole image (or none of it) leaves no pair to rank: NaN, and no test is
    run on an empty sample (SciPy's warnings would clutter every chapter that scores such a clip)."""
    import warnings

    some_map = np.random.default_rng(1).random((2, 4, 4))
    masks = np.stack([np.ones((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(mask_auc(some_map, masks)).all()
