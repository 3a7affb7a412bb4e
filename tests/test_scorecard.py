"""The replication scorecard: statuses follow their rules, missing chapters are named, and every
row's keys are ones the chapters record."""

from __future__ import annotations

import pytest

from wrenlib.scorecard import PAPER_RESULTS, STATUSES, open_questions, scorecard, status_counts_text

RESULTS = {
    "test_accuracy": 0.95, "test_accuracy_ci_low": 0.91, "test_accuracy_ci_high": 0.97,
    "background_mixed_generalises_best": True, "background_mixed_on_black": 0.9, "background_mixed_on_white": 0.9,
    "background_black_on_white": 0.5, "background_white_on_black": 0.5,
    "background_mixed_in_domain_difference": {"black": -0.007, "white": -0.041},
    "background_mixed_works_on_both": True, "background_mixed_clearly_worse_in_domain": [],
    "deeplift_constant_baselines_identical": True, "deeplift_white_fixed_centre_empty_share": 0.86,
    "lime_empty_top5_share_grid": 0.1, "lime_empty_feature_share_grid": 0.8, "lime_empty_top5_less_all_ci_grid": [-0.8, -0.6], "shap_cost_ratio_paper_size_vs_quick_size": 3.6,
    "cost_forward_equivalents_shap": 100.0, "max_ensemble_larger_share_at_every_threshold": True,
    "cost_forward_equivalents_gradcam": 2.0, "cost_forward_equivalents_deeplift": 19.0,
    "shap_four_references_agreement": 0.7, "shap_four_references_agreement_ci": [0.6, 0.8],
    "verdict_claim1": "qualified", "verdict_claim1_model": "confirmed", "verdict_claim2": "refuted",
    "verdict_claim1_song_auc": "refuted", "verdict_claim2_song_auc": "undecided", "verdict_claim2_summed_maps": "undecided",
    "latent_tsne_clusters_per_dialect": {"Eastern": 3, "Mexican": 2}, "latent_clusters_follow": "song type",
    "latent_tsne_clustered_per_dialect": {"Eastern": True, "Mexican": True},
    "latent_tsne_cluster_p_values": {"Eastern": 0.024, "Mexican": 0.024}, "latent_tsne_cluster_null_draws": 40,
    "verdict_claim3": "confirmed", "verdict_claim3_tsne_vs_pca": "confirmed", "verdict_claim3_consistency": "confirmed",
}


def _status(table, topic):
    return table.set_index("topic").loc[topic, "status"]


def test_statuses_follow_the_rules():
    table = scorecard(RESULTS)
    assert set(table["status"]) <= set(STATUSES) and len(table) == len(PAPER_RESULTS)
    assert _status(table, "accuracy") == "reproduced"  # 94.8 % inside [91 %, 97 %]
    # a qualified verdict holds in part: comparisons went both ways (08, 10), or one half of claim 3 holds (09)
    assert _status(table, "claim 1") == "reproduced in part" and "qualified" in table.set_index("topic").loc["claim 1", "book"]
    assert _status(table, "claim 2") == "differs"
    # the other score and scale of chapter 08 are shown beside the verdict, not counted in the status
    assert ("on the mask AUC within the song: undecided; with the members summed to 1: undecided"
            in table.set_index("topic").loc["claim 2", "book"])
    assert "within the song (chapter 08): refuted" in table.set_index("topic").loc["claim 1", "book"]
    assert _status(table, "claim 3") == "reproduced"
    assert "-4.1 points on white" in table.set_index("topic").loc["backgrounds", "book"]
    # chapter 03's "reproduced in part": the only model that works on both, but below a specialist
    part = scorecard({**RESULTS, "background_mixed_generalises_best": False,
                      "background_mixed_clearly_worse_in_domain": ["white"]}).set_index("topic").loc["backgrounds"]
    assert part["status"] == "reproduced in part" and "only one that works on both" in part["book"]
    assert "clearly below white's own model on white" in part["book"] and "reproduced in part" in part["book"]
    neither = scorecard({**RESULTS, "background_mixed_generalises_best": False, "background_mixed_works_on_both": False})
    assert "reproduced in part" not in neither.set_index("topic").loc["backgrounds", "book"]
    assert _status(neither, "backgrounds") == "differs"
    assert _status(table, "DeepLIFT reference") == "differs"  # identical references: not the paper's white
    assert _status(table, "the recordings") == "not testable"
    lower = scorecard({**RESULTS, "test_accuracy": 0.85, "test_accuracy_ci_low": 0.80, "test_accuracy_ci_high": 0.90})
    assert _status(lower, "accuracy") == "differs" and "outside" in lower.set_index("topic").loc["accuracy", "book"]
    assert "compatible with the paper's" in table.set_index("topic").loc["accuracy", "book"]
    assert _status(table, "latent space") == "reproduced"
    single = scorecard({**RESULTS, "latent_tsne_clusters_per_dialect": {"Eastern": 1, "Mexican": 3}})
    assert _status(single, "latent space") == "reproduced in part"
    # two clusters or more are always chosen: one dialect no more clustered than even spread is not "several"
    one_cloud = scorecard({**RESULTS, "latent_tsne_clustered_per_dialect": {"Eastern": True, "Mexican": False},
                           "latent_tsne_cluster_p_values": {"Eastern": 1 / 41, "Mexican": 0.4}})
    assert _status(one_cloud, "latent space") == "reproduced in part"
    text = one_cloud.set_index("topic").loc["latent space", "book"]
    # a p-value at the floor of 40 draws reads as the floor, not rounded to 0.02
    assert "no more clustered than evenly spread points, p = 0.40" in text and "p ≤ 0.025" in text
    # no dialect more clustered: the test did not reject, which shows no single cloud either
    neither_clustered = scorecard({**RESULTS, "latent_tsne_clustered_per_dialect": {"Eastern": False, "Mexican": False},
                                   "latent_tsne_cluster_p_values": {"Eastern": 0.3, "Mexican": 0.4}})
    assert _status(neither_clustered, "latent space") == "undecided"
    assert "does not show one cloud either" in neither_clustered.set_index("topic").loc["latent space", "book"]
    # the max of two maps is never below their average: the paper's heat-map finding holds for any maps
    assert _status(table, "heat-map analysis") == "holds by construction"
    # SHAP at any size costs more on a larger image: it is "expensive" only beside the other gradient
    # methods, and "needs many references" only where 4 do not give the map that 16 give
    assert _status(table, "SHAP") == "reproduced"
    assert _status(scorecard({**RESULTS, "cost_forward_equivalents_deeplift": 150.0}), "SHAP") == "differs"
    enough = scorecard({**RESULTS, "shap_four_references_agreement": 0.97, "shap_four_references_agreement_ci": [0.95, 0.99]})
    assert _status(enough, "SHAP") == "differs" and "] (above 0.9)" in enough.set_index("topic").loc["SHAP", "book"]
    # a handful of clips whose interval holds the threshold decides nothing
    unclear = scorecard({**RESULTS, "shap_four_references_agreement": 0.905, "shap_four_references_agreement_ci": [0.8, 1.0]})
    assert _status(unclear, "SHAP") == "undecided" and "an interval holding 0.9" in unclear.set_index("topic").loc["SHAP", "book"]
    # most of a spectrogram is silence: LIME marks empty regions only where its strongest features are empty
    # more often than features picked at random
    # some empty marks, fewer than at random: the observation holds, the failing it implies does not
    assert _status(table, "LIME") == "reproduced in part" and "prefers song" in table.set_index("topic").loc["LIME", "book"]
    assert "as the paper saw, but fewer than features picked at random" in table.set_index("topic").loc["LIME", "book"]
    more = {"lime_empty_feature_share_grid": 0.05, "lime_empty_top5_less_all_ci_grid": [0.02, 0.08]}
    assert _status(scorecard({**RESULTS, **more}), "LIME") == "reproduced"
    # the mean shares alone decide nothing: clip by clip, an interval holding 0 is undecided
    close = scorecard({**RESULTS, "lime_empty_top5_share_grid": 0.82, "lime_empty_top5_less_all_ci_grid": [-0.1, 0.14]})
    assert _status(close, "LIME") == "undecided" and "holding 0" in close.set_index("topic").loc["LIME", "book"]
    none_empty = scorecard({**RESULTS, "lime_empty_top5_share_grid": 0.0}).set_index("topic").loc["LIME", "book"]
    assert "marks no empty region" in none_empty
    assert _status(scorecard({**RESULTS, "lime_empty_top5_share_grid": 0.0}), "LIME") == "differs"
    # a verdict no comparison decided is an absence of evidence, not a difference
    assert _status(scorecard({**RESULTS, "verdict_claim2": "undecided"}), "claim 2") == "undecided"
    worse = scorecard({**RESULTS, "max_ensemble_larger_share_at_every_threshold": False})
    assert _status(worse, "heat-map analysis") == "differs"


def test_a_chapter_that_did_not_run_is_named_not_guessed():
    partial = {key: value for key, value in RESULTS.items() if not key.startswith("verdict_claim3")}
    row = scorecard(partial).set_index("topic").loc["claim 3"]
    assert row["status"] == "not run" and "verdict_claim3" in row["book"] and "09_subpopulations" in row["book"]


@pytest.mark.parametrize("row", PAPER_RESULTS, ids=[r.topic for r in PAPER_RESULTS])
def test_each_rule_gives_a_known_status(row):
    status, measured = row.rule(RESULTS)
    assert status in STATUSES and measured


def test_open_questions_quote_the_run_or_say_what_is_missing():
    results = {**RESULTS, "accuracy_at_0db": 0.74, "accuracy_at_30db": 0.93, "latent_song_type_ari_tsne": 0.27,
               "adaptive_minus_average_auc": 0.1, "adaptive_minus_average_auc_ci": [0.04, 0.16],
               "adaptive_against_fixed_ensembles": "won", "adaptive_temperature": 0.25,
               "adaptive_temperature_at_grid_edge": True, "adaptive_validation_clips": 8,
               "score_reference_the_image_mask_auc": 0.82, "image_against_ensembles": "won",
               "score_adaptive_all_four_mask_auc": 0.74, "score_average_gc_dl_mask_auc": 0.48,
               "score_max_gc_dl_mask_auc": 0.47,
               "confound_accuracy_confounded_100": 0.98, "confound_accuracy_flipped_100": 0.56,
               "confound_earliest_warning": "DeepLIFT, SHAP", "confound_rises_without_warning": "Grad-CAM"}
    table = open_questions(results)
    assert len(table) == 3 and "74.0 %" in table.loc[0, "book"] and "+0.100 [+0.040, +0.160]" in table.loc[2, "book"]
    assert "0.74" in table.loc[2, "book"] and "0.48" in table.loc[2, "book"] and "0.47" in table.loc[2, "book"]
    assert "98.0 %" in table.loc[0, "book"] and "56.0 %" in table.loc[0, "book"] and "DeepLIFT, SHAP" in table.loc[0, "book"]
    assert "without standing out against the image: Grad-CAM" in table.loc[0, "book"]
    # the answer is chapter 08's paired outcome, not a comparison of mean scores
    assert table.loc[2, "book"].startswith("yes: clip by clip it beats both")
    undecided = open_questions({**results, "adaptive_against_fixed_ensembles": "undecided"}).loc[2, "book"]
    assert undecided.startswith("not on this run") and "0.74" in undecided
    assert open_questions({**results, "adaptive_against_fixed_ensembles": "lost"}).loc[2, "book"].startswith("no:")
    # the answer names a temperature the grid could not go below, and an image that beats every ensemble
    assert "8 validation clips, the lowest the grid offers" in table.loc[2, "book"]
    assert "scores 0.82 and beats every ensemble clip by clip" in table.loc[2, "book"]
    weaker_image = open_questions({**results, "image_against_ensembles": "undecided"}).loc[2, "book"]
    assert "scores 0.82" in weaker_image and "beats every ensemble" not in weaker_image
    no_confound = {key: value for key, value in results.items() if not key.startswith("confound")}
    assert "confound_earliest_warning" in open_questions(no_confound).loc[0, "book"]  # names what is missing
    missing = open_questions(RESULTS)
    assert missing.loc[0, "book"].startswith("not run") and "accuracy_at_0db" in missing.loc[0, "book"]


def test_the_counts_sentence_agrees_in_number_and_names_only_the_statuses_present():
    assert status_counts_text({"reproduced": 2, "holds by construction": 1, "differs": 7, "not testable": 1}) == (
        "Of 11 results, 2 are reproduced, 1 holds by construction, 7 differ and 1 cannot be tested on public data.")
    assert status_counts_text({"reproduced": 1, "differs": 1, "undecided": 2, "not run": 1}) == (
        "Of 5 results, 1 is reproduced, 1 differs, 2 are undecided on this run and 1 was not run.")
    assert status_counts_text({"reproduced": 0, "differs": 3}) == "Of 3 results, 0 are reproduced and 3 differ."
    assert status_counts_text({"reproduced": 1, "reproduced in part": 2, "differs": 1}) == (
        "Of 4 results, 1 is reproduced, 2 are reproduced in part and 1 differs.")


def test_an_unknown_verdict_is_never_read_as_reproduced():
    """A chapter's verdict outside the known words (a typo, a new word) must not pass as the paper's
    result: the row ``differs`` and quotes the verdict, so a reader sees what the chapter wrote.
    The known verdicts map as VERDICT_STATUS says."""
    from wrenlib.scorecard import VERDICT_STATUS

    for verdict in ("confirmd", "yes", ""):
        row = scorecard({**RESULTS, "verdict_claim3": verdict}).set_index("topic").loc["claim 3"]
        assert row["status"] == "differs", verdict
        assert row["book"].startswith(f"verdict: {verdict};")
    for verdict, status in VERDICT_STATUS.items():
        assert _status(scorecard({**RESULTS, "verdict_claim3": verdict}), "claim 3") == status


def test_the_paper_accuracy_counts_as_inside_an_interval_that_ends_on_it():
    """The 95 % interval is closed: the paper's 94.8 % at either end is compatible with the run, so a
    boundary case is not reported as a difference."""
    for low, high in ((0.948, 0.97), (0.91, 0.948)):
        table = scorecard({**RESULTS, "test_accuracy_ci_low": low, "test_accuracy_ci_high": high})
        assert _status(table, "accuracy") == "reproduced", (low, high)


def test_the_accuracy_is_judged_against_the_papers_94_8_not_a_rounded_95():
    """The paper reported 94.8 %: an interval that ends at 94.9 % holds it, one that starts at 94.85 %
    does not; a threshold rounded to 95 % would turn both statuses round."""
    holds = scorecard({**RESULTS, "test_accuracy": 0.93, "test_accuracy_ci_low": 0.90, "test_accuracy_ci_high": 0.949})
    assert _status(holds, "accuracy") == "reproduced"
    above = scorecard({**RESULTS, "test_accuracy": 0.97, "test_accuracy_ci_low": 0.9485, "test_accuracy_ci_high": 0.99})
    assert _status(above, "accuracy") == "differs"


def test_a_mixed_model_that_generalises_best_is_not_described_as_reproduced_in_part():
    """Where the mixed-background model is best everywhere, the row must not carry chapter 03's
    "best everywhere does not hold" sentence, which would contradict its own status."""
    row = scorecard(RESULTS).set_index("topic").loc["backgrounds"]
    assert row["status"] == "reproduced"
    assert "does not hold" not in row["book"] and "reproduced in part" not in row["book"]


def test_a_deeplift_white_reference_that_differs_from_the_others_is_reproduced():
    """Only identical maps under every constant reference make the paper's white reference moot;
    where the references give different maps, the paper's choice stands."""
    row = scorecard({**RESULTS, "deeplift_constant_baselines_identical": False}).set_index("topic").loc[
        "DeepLIFT reference"]
    assert row["status"] == "reproduced" and "white reference used" in row["book"]


def test_shap_costing_the_same_as_another_method_is_not_expensive():
    """SHAP is "expensive" only where it costs more than every other gradient method: a cost equal to
    DeepLIFT's is no dearer, so the row differs whatever the references show."""
    tie = scorecard({**RESULTS, "cost_forward_equivalents_shap": 19.0, "cost_forward_equivalents_deeplift": 19.0})
    assert _status(tie, "SHAP") == "differs"
    assert _status(scorecard({**RESULTS, "cost_forward_equivalents_shap": 19.5,
                              "cost_forward_equivalents_deeplift": 19.0}), "SHAP") == "reproduced"


def test_a_rule_giving_an_unknown_status_is_an_error_not_a_row():
    """A rule that returns a word outside STATUSES (a typo, a verdict passed straight through) must
    stop the scorecard: the counts sentence and the table would otherwise silently miss the row."""
    from wrenlib.scorecard import PaperResult

    typo = PaperResult("typo", "a claim", "00_nowhere", (), lambda r: ("confirmed", "measured"))
    with pytest.raises(ValueError, match="unknown status 'confirmed'"):
        scorecard(RESULTS, rows=(typo,))
    fine = PaperResult("fine", "a claim", "00_nowhere", (), lambda r: ("undecided", "measured"))
    assert list(scorecard(RESULTS, rows=(fine,))["status"]) == ["undecided"]
