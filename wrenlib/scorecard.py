"""The replication scorecard (the book's last chapter): every result the paper reports, beside the
book's measurement of it, with a status decided by a rule written here.

The paper's side of each row is what the paper reported (``../shared/paper-brief.md`` in the
project's notes); the book's side is read from ``artifacts/<profile>/results.json`` when the
scorecard chapter executes, never typed in. A row whose numbers are missing — its chapter did not
run — says so instead of guessing.

Statuses (:data:`STATUSES`):

- ``reproduced`` — the book measures what the paper reported;
- ``reproduced in part`` — part of what the paper reported holds and part does not, or is not
  decided (a chapter's *qualified* verdict), and the row says which part;
- ``holds by construction`` — what the paper reported is true of any input, so it needs no data
  and shows nothing about them, and the row says why;
- ``differs`` — the book measures something else, and the row says what;
- ``undecided`` — the book's measurement cannot tell one way or the other on this run (no test
  or interval decided: no comparison told the maps apart, an interval holds the threshold, or a
  test did not reject), and the row says what it measured;
- ``not testable`` — the paper's statement cannot be checked on the book's data, and the row says
  why (its recordings are not public);
- ``not run`` — the chapter that measures it has not run in this profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .metrics import interval_side, permutation_p_text

#: A scorecard row's possible statuses, in the order the book lists them.
STATUSES = ("reproduced", "reproduced in part", "holds by construction", "differs", "undecided", "not testable",
            "not run")
# a chapter's verdict on a claim as a status: an undecided verdict (no comparison told the maps apart)
# is an absence of evidence, not a difference; a qualified one holds in part (chapters 08 and 10:
# comparisons went both ways; chapter 09: one half of the claim holds, the other is not decided or fails)
VERDICT_STATUS = {"confirmed": "reproduced", "qualified": "reproduced in part", "refuted": "differs",
                  "undecided": "undecided"}


@dataclass(frozen=True)
class PaperResult:
    """One row of the scorecard: what the paper reported and how the book checks it."""

    topic: str
    paper: str  # what the paper reported, in its words or numbers
    chapter: str  # the chapter (notebook stem) that measures it
    keys: tuple[str, ...]  # results.json keys the rule reads
    rule: Callable[[dict[str, Any]], tuple[str, str]]  # results -> (status, what the book measured)


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _accuracy(r: dict[str, Any]) -> tuple[str, str]:
    paper = 0.948
    inside = r["test_accuracy_ci_low"] <= paper <= r["test_accuracy_ci_high"]
    measured = (f"{_percent(r['test_accuracy'])} [{_percent(r['test_accuracy_ci_low'])}, "
                f"{_percent(r['test_accuracy_ci_high'])}] on surrogate songs (95 % interval over the test birds)")
    # either way the surrogate's difficulty (wren-song.md's parameters), not the paper's recordings, sets
    # the number: a match says the pipeline's accuracy is compatible with the paper's, not that its birds
    # are these
    return ("reproduced" if inside else "differs",
            measured + ("; the paper's 94.8 % lies inside the interval: the pipeline's accuracy is compatible with "
                        "the paper's, on songs whose difficulty the surrogate sets" if inside else
                        "; the paper's 94.8 % lies outside the 95 % interval — the surrogate's "
                        "difficulty, not the paper's recordings, sets this number"))


def _backgrounds(r: dict[str, Any]) -> tuple[str, str]:
    # a single-background model fails on the other background by the rendering (a white image is the
    # black one reversed): the rule also asks that mixing cost nothing clear where a specialist exists
    best = bool(r["background_mixed_generalises_best"])
    against, worse = r["background_mixed_in_domain_difference"], r["background_mixed_clearly_worse_in_domain"]
    measured = (f"mixed-trained model on black / white test images: {_percent(r['background_mixed_on_black'])} / "
                f"{_percent(r['background_mixed_on_white'])}; black-trained on white "
                f"{_percent(r['background_black_on_white'])}, white-trained on black {_percent(r['background_white_on_black'])}; "
                "beside each background's own model the mixed one scores "
                + " and ".join(f"{100 * value:+.1f} points on {shown}" for shown, value in against.items()))
    if not best and r["background_mixed_works_on_both"]:  # chapter 03's "reproduced in part": what holds, what not
        measured += (f": the mixed model is the only one that works on both backgrounds, as the paper found, but "
                     f"clearly below {' and '.join(worse)}'s own model on {' and '.join(worse)} — best everywhere "
                     "does not hold (chapter 03: reproduced in part)")
    return ("reproduced" if best else "reproduced in part" if r["background_mixed_works_on_both"] else "differs",
            measured)


def _deeplift_white(r: dict[str, Any]) -> tuple[str, str]:
    identical = bool(r["deeplift_constant_baselines_identical"])
    empty = r["deeplift_white_fixed_centre_empty_share"]
    if identical:
        return ("differs", "with the book's per-image standardisation a white, black or background reference "
                f"gives identical maps; with a fixed centre the white reference puts {_percent(empty)} of the "
                "relevance on empty pixels (the paper's risk)")
    return ("reproduced", f"white reference used; {_percent(empty)} of its relevance on empty pixels with a fixed centre")


def _lime_empty(r: dict[str, Any]) -> tuple[str, str]:
    # a spectrogram is mostly silence: LIME "marks empty regions" only where its strongest features
    # are empty more often than features picked at random are (any share above 0 is not a finding)
    # (clip by clip: the interval of the top five's empty share less the clip's own share of empty features)
    share, chance = r["lime_empty_top5_share_grid"], r["lime_empty_feature_share_grid"]
    side = interval_side(*r["lime_empty_top5_less_all_ci_grid"])
    measured = (f"{_percent(share)} of LIME's five strongest features are empty background, against "
                f"{_percent(chance)} of all its features (grid features, chapter 06; 95 % interval of the "
                "per-clip difference " + {"above": "above 0", "below": "below 0", "within": "holding 0"}[side] + "): LIME ")
    if side == "above":
        return "reproduced", measured + "prefers empty regions"
    if side == "within":
        return "undecided", measured + "marks empty regions about as often as features picked at random would"
    # below chance: that it marks some empty regions holds (what the paper saw); that this is a pull
    # towards silence, a failing of LIME's, does not
    if share > 0:
        return ("reproduced in part", measured + "marks some empty regions, as the paper saw, but fewer than features "
                "picked at random would: it prefers song, so its empty marks are not a pull towards silence")
    return "differs", measured + "marks no empty region"


#: Below this Pearson r between two maps made from disjoint sets of 4 references, 4 do not pin the
#: map down: SHAP "needs many background samples" (chapter 07).
FEW_REFERENCES_CORRELATION = 0.9


def _shap_cost(r: dict[str, Any]) -> tuple[str, str]:
    # a larger image costs more for every method, so the size ratio alone cannot fail: the test is
    # that SHAP costs more than the other gradient methods and that few references fall short. The
    # first half follows from the budget (a pass per reference: with several it is dearer than
    # DeepLIFT); the second, whether 4 references pin the map down, is the half that can fail
    ratio, cost = r["shap_cost_ratio_paper_size_vs_quick_size"], r["cost_forward_equivalents_shap"]
    others = {"Grad-CAM": r["cost_forward_equivalents_gradcam"], "DeepLIFT": r["cost_forward_equivalents_deeplift"]}
    few, (low, high) = r["shap_four_references_agreement"], r["shap_four_references_agreement_ci"]
    dearer = cost > max(others.values())
    side = interval_side(low, high, FEW_REFERENCES_CORRELATION)  # its 95 % interval against the threshold
    status = ("differs" if not dearer or side == "above" else "reproduced" if side == "below" else "undecided")
    against = {"below": "below", "above": "above", "within": "an interval holding"}[side]
    return (status,
            f"{cost:.0f} forward-pass equivalents per image at this profile's size and references ("
            + ", ".join(f"{name} {value:.0f}" for name, value in others.items())
            + f"); {ratio:.1f}x the time per image at 480 x 960. Dearer follows from the budget; the half that "
            f"can fail is whether 4 references pin the map down (r above {FEW_REFERENCES_CORRELATION}): two maps from "
            f"disjoint sets of 4 agree at r = {few:.3f} [{low:.3f}, {high:.3f}] ({against} {FEW_REFERENCES_CORRELATION})")


def _max_ensemble(r: dict[str, Any]) -> tuple[str, str]:
    larger = bool(r["max_ensemble_larger_share_at_every_threshold"])
    if larger:  # pixel by pixel, the max of two maps is never below their mean
        return ("holds by construction", "max above average at every threshold 0.4-0.9, as it must be for any two "
                "maps: their max is never below their average at any pixel (chapter 08)")
    return "differs", "not at every threshold, which the max of two maps cannot do: a fault in the measurement"


def _verdict(key: str, extra: Callable[[dict[str, Any]], str] | None = None):
    def rule(r: dict[str, Any]) -> tuple[str, str]:
        verdict = str(r[key])
        return VERDICT_STATUS.get(verdict, "differs"), f"verdict: {verdict}" + (f"; {extra(r)}" if extra else "")
    return rule


def _clusters(r: dict[str, Any]) -> tuple[str, str]:
    # a number of clusters chosen from 2 up is 2 or more in any cloud: the test is whether each
    # dialect's t-SNE points are more clustered than evenly spread ones (wrenlib.latent.cluster_structure).
    # Not more clustered is a test that did not reject, not a cloud shown to be one: undecided, not differs
    counts, clustered = r["latent_tsne_clusters_per_dialect"], r["latent_tsne_clustered_per_dialect"]
    p_values, draws = r["latent_tsne_cluster_p_values"], int(r["latent_tsne_cluster_null_draws"])
    several = [dialect for dialect in counts if bool(clustered[dialect]) and int(counts[dialect]) >= 2]
    status = ("reproduced" if len(several) == len(counts) else "reproduced in part" if several else "undecided")
    return (status,
            "t-SNE clusters per dialect (chosen without labels): "
            + ", ".join(f"{dialect} {k} ({'more clustered than' if clustered[dialect] else 'no more clustered than'} "
                        f"evenly spread points, {permutation_p_text(p_values[dialect], draws)})"
                        for dialect, k in counts.items())
            + ("" if several else "; a test that finds no more structure than in evenly spread points does not "
               "show one cloud either")
            + f"; they follow the {r['latent_clusters_follow']}")


PAPER_RESULTS: tuple[PaperResult, ...] = (
    PaperResult("accuracy", "94.8 % test accuracy (94.83 % with mixed backgrounds)", "03_training",
                ("test_accuracy", "test_accuracy_ci_low", "test_accuracy_ci_high"), _accuracy),
    PaperResult("backgrounds", "the mixed-background set generalised best", "03_training",
                ("background_mixed_generalises_best", "background_mixed_on_black", "background_mixed_on_white",
                 "background_black_on_white", "background_white_on_black", "background_mixed_in_domain_difference",
                 "background_mixed_works_on_both", "background_mixed_clearly_worse_in_domain"),
                _backgrounds),
    PaperResult("DeepLIFT reference", "DeepLIFT with a white reference image", "05_deeplift",
                ("deeplift_constant_baselines_identical", "deeplift_white_fixed_centre_empty_share"), _deeplift_white),
    PaperResult("LIME", "LIME sometimes marked empty regions", "06_lime",
                ("lime_empty_top5_share_grid", "lime_empty_feature_share_grid", "lime_empty_top5_less_all_ci_grid"),
                _lime_empty),
    PaperResult("SHAP", "SHAP needs many background samples on high-resolution images and is expensive", "07_shap",
                ("shap_cost_ratio_paper_size_vs_quick_size", "cost_forward_equivalents_shap",
                 "cost_forward_equivalents_gradcam", "cost_forward_equivalents_deeplift",
                 "shap_four_references_agreement", "shap_four_references_agreement_ci"), _shap_cost),
    PaperResult("heat-map analysis", "the max ensemble activates a larger share of the map at every threshold",
                "08_ensembles", ("max_ensemble_larger_share_at_every_threshold",), _max_ensemble),
    PaperResult("claim 1", "Grad-CAM and DeepLIFT give more consistent and meaningful explanations than LIME and SHAP",
                "08_ensembles, 10_sanity", ("verdict_claim1", "verdict_claim1_model", "verdict_claim1_song_auc"),
                _verdict("verdict_claim1", lambda r: f"from the model's side (chapter 10, shown, not counted in the status): "
                                                     f"{r['verdict_claim1_model']}; on the mask AUC within the song "
                                                     f"(chapter 08): {r['verdict_claim1_song_auc']}")),
    PaperResult("claim 2", "the average and max ensembles of Grad-CAM and DeepLIFT capture complementary regions",
                "08_ensembles", ("verdict_claim2", "verdict_claim2_song_auc", "verdict_claim2_summed_maps"),
                _verdict("verdict_claim2", lambda r: f"on the mask AUC within the song: {r['verdict_claim2_song_auc']}; "
                                                     f"with the members summed to 1: {r['verdict_claim2_summed_maps']} "
                                                     "(chapter 08; shown, not counted in the status)")),
    PaperResult("latent space", "several t-SNE clusters per class", "09_subpopulations",
                ("latent_tsne_clusters_per_dialect", "latent_tsne_clustered_per_dialect", "latent_tsne_cluster_p_values",
                 "latent_tsne_cluster_null_draws", "latent_clusters_follow"), _clusters),
    PaperResult("claim 3", "t-SNE shows sub-populations that PCA misses; explanations are consistent within them",
                "09_subpopulations", ("verdict_claim3", "verdict_claim3_tsne_vs_pca", "verdict_claim3_consistency"),
                _verdict("verdict_claim3", lambda r: f"t-SNE vs PCA {r['verdict_claim3_tsne_vs_pca']}, "
                                                     f"consistency {r['verdict_claim3_consistency']}")),
    PaperResult("the recordings", "results on the paper's own recordings of Bewick's wren", "01_wren_dialects", (),
                lambda r: ("not testable", "the paper's recordings are not public; the book runs on surrogate songs "
                           "with known evidence, and on a reader's recordings through the same pipeline")),
)


def scorecard(results: dict[str, Any], rows: tuple[PaperResult, ...] = PAPER_RESULTS) -> "pd.DataFrame":  # noqa: F821
    """The scorecard table from a profile's results (:func:`wrenlib.read_results`): one row per
    paper result with ``topic``, ``paper``, ``book`` (what the book measured), ``status`` (one of
    :data:`STATUSES`) and ``chapter``. A row whose keys are missing is ``not run``, naming them."""
    import pandas as pd

    table = []
    for row in rows:
        missing = [key for key in row.keys if key not in results]
        if missing:
            status, measured = "not run", f"missing from results.json: {', '.join(missing)} (chapter {row.chapter})"
        else:
            status, measured = row.rule(results)
        if status not in STATUSES:
            raise ValueError(f"scorecard row {row.topic!r} gave an unknown status {status!r}")
        table.append({"topic": row.topic, "paper": row.paper, "book": measured, "status": status,
                      "chapter": row.chapter})
    return pd.DataFrame(table)


# chapter 08's paired outcome (wrenlib.metrics.against_each) of the adaptive ensemble against both fixed ones
_AGAINST_FIXED = {"won": "yes: clip by clip it beats both", "lost": "no: clip by clip one of them beats it",
                  "undecided": "not on this run: clip by clip it is not told apart from them"}


def _adaptive_answer(r: dict[str, Any]) -> str:
    low, high = r["adaptive_minus_average_auc_ci"]
    return (f"{_AGAINST_FIXED[r['adaptive_against_fixed_ensembles']]} (paired t-tests per clip, Holm-adjusted "
            f"over the two; mean mask AUC {r['score_adaptive_all_four_mask_auc']:.2f} for the agreement-weighted "
            f"ensemble of all four methods, temperature {r['adaptive_temperature']:g}, chosen on "
            f"{r['adaptive_validation_clips']} validation clips"
            + (", the lowest the grid offers" if r["adaptive_temperature_at_grid_edge"] else "")
            + f"; {r['score_average_gc_dl_mask_auc']:.2f} for the paper's 0.5 / 0.5 average of Grad-CAM and DeepLIFT "
            f"and {r['score_max_gc_dl_mask_auc']:.2f} for their max); {r['adaptive_minus_average_auc']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] against the plain average of all four (95 % t-interval). The image itself, used as a map, "
            f"scores {r['score_reference_the_image_mask_auc']:.2f}"
            + (" and beats every ensemble clip by clip: on this score no ensemble beats a map that knows nothing of "
               "the model" if r["image_against_ensembles"] == "won" else ""))


OPEN_QUESTIONS: tuple[tuple[str, str, tuple[str, ...], Callable[[dict[str, Any]], str]], ...] = (
    ("1. Do the results hold up under other recording conditions (noise, distance, equipment)?",
     "03_training, 11_confound",
     ("accuracy_at_0db", "accuracy_at_30db", "confound_accuracy_confounded_100", "confound_accuracy_flipped_100",
      "confound_earliest_warning", "confound_rises_without_warning"),
     lambda r: f"accuracy {_percent(r['accuracy_at_30db'])} at 30 dB in-band SNR and {_percent(r['accuracy_at_0db'])} "
               f"at 0 dB. With a background insect tied to one dialect (chapter 11), the model scored "
               f"{_percent(r['confound_accuracy_confounded_100'])} on its own test split and "
               f"{_percent(r['confound_accuracy_flipped_100'])} where the insect came with the other dialect; "
               f"the first maps to show it: {r['confound_earliest_warning']}; maps whose share on the source rose "
               f"above the clean model's without standing out against the image: "
               f"{r['confound_rises_without_warning']}"),
    ("2. Do the t-SNE clusters match real structure (song types, individuals, micro-dialects)?", "09_subpopulations",
     ("latent_clusters_follow", "latent_song_type_ari_tsne"),
     lambda r: f"they follow the {r['latent_clusters_follow']} best (song-type ARI {r['latent_song_type_ari_tsne']:.2f} "
               "for t-SNE clusters)"),
    ("3. Would an adaptive ensemble weighting beat the fixed 0.5 / 0.5 and the max?", "08_ensembles",
     ("score_adaptive_all_four_mask_auc", "score_average_gc_dl_mask_auc", "score_max_gc_dl_mask_auc",
      "adaptive_against_fixed_ensembles", "adaptive_minus_average_auc", "adaptive_minus_average_auc_ci",
      "adaptive_temperature", "adaptive_temperature_at_grid_edge", "adaptive_validation_clips",
      "score_reference_the_image_mask_auc", "image_against_ensembles"),
     _adaptive_answer),
)


def open_questions(results: dict[str, Any]) -> "pd.DataFrame":  # noqa: F821
    """The paper's open questions with the book's answer on this run (``not run`` when missing)."""
    import pandas as pd

    rows = []
    for question, chapter, keys, answer in OPEN_QUESTIONS:
        missing = [key for key in keys if key not in results]
        rows.append({"question": question, "chapter": chapter,
                     "book": answer(results) if not missing else
                     f"not run: missing from results.json: {', '.join(missing)} (chapter {chapter})"})
    return pd.DataFrame(rows)


def status_counts_text(counts: dict[str, int]) -> str:
    """The scorecard's counts as a sentence ("Of 11 results, 2 are reproduced, 7 differ and 1 cannot
    be tested on public data."): reproduced and differs always, the other statuses where a row has them."""
    from .metrics import listing

    def count(status: str) -> int:
        return int(counts.get(status, 0))

    def verb(n: int, one: str, several: str) -> str:
        return f"{n} {one if n == 1 else several}"

    parts = [verb(count("reproduced"), "is reproduced", "are reproduced")]
    if count("reproduced in part"):
        parts.append(verb(count("reproduced in part"), "is reproduced in part", "are reproduced in part"))
    if count("holds by construction"):
        parts.append(verb(count("holds by construction"), "holds by construction", "hold by construction"))
    parts.append(verb(count("differs"), "differs", "differ"))
    if count("undecided"):
        parts.append(verb(count("undecided"), "is undecided on this run", "are undecided on this run"))
    if count("not testable"):
        parts.append(f"{count('not testable')} cannot be tested on public data")
    if count("not run"):
        parts.append(verb(count("not run"), "was not run", "were not run"))
    return f"Of {sum(count(status) for status in STATUSES)} results, {listing(parts)}."
