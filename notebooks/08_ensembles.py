# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ensembles, and measuring which explanation is right
#
# The paper combined Grad-CAM and DeepLIFT by a 0.5 / 0.5 average and by an element-wise maximum,
# measured how much of each map lies above a threshold, but judged whether a map was *right* by eye
# {cite}`faruqui2025explainability`. The surrogate songs know where
# the dialect evidence is — the diagnostic mask of chapter 01 — so here the maps are *scored*:
# per method, per ensemble and per dialect, with confidence intervals and two reference rows
# that any method must beat. The chapter ends with a verdict on the paper's claims 1 and 2.

# %% tags=["remove-cell"]
import subprocess, sys  # noqa: E401
if "google.colab" in sys.modules:  # on Colab, install the book's library first (make install did it elsewhere)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "wrenlib[book] @ git+https://github.com/wrenbook/wrenbook"],
                   check=True)

# %% tags=["parameters"]
PROFILE = "quick"
SEED = 0

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

import wrenlib
from wrenlib.ensembles import adaptive_ensemble, average_ensemble, choose_temperature, max_ensemble
from wrenlib.explain import (
    METHOD_TITLES,
    METHODS,
    REFERENCE_MAPS,
    explain_dataset,
    all_zero_maps,
    normalise_maps,
    explained_clips,
    reference_maps,
    settings_for_profile,
    validation_explanations,
)
from wrenlib.metrics import (
    against_each,
    background_share,
    comparison_table,
    comparison_verdict,
    decide_family,
    interval_side,
    interval_table,
    listing,
    map_correlation,
    mask_auc,
    outcomes_per_map,
    paired_comparison,
    paired_comparisons,
    pointing_game,
    ratio_of_means_with_interval,
    region_share,
    relevance_rank_accuracy,
    summarise_scores,
    threshold_shares,
)
from wrenlib.surrogate import DIALECTS
from wrenlib.plotting import figures_with_audio
from wrenlib.widgets import clip_label, clip_waveform, ensemble_browser, ensemble_figure

profile, device, model, images = wrenlib.start_chapter(PROFILE, SEED)  # seeds, device, trained CNN


def normalised_maps(indices):
    """The four methods' maps of some clips (from the cache of chapters 04-07), normalised."""
    return {METHOD_TITLES[m]: explain_dataset(model, images, indices, m, PROFILE, settings_for_profile(m, PROFILE, SEED),
                                              device=device, progress=False).normalised() for m in METHODS}


test_clips = explained_clips(images, profile.explain_clips, seed=SEED)
# the validation clips' maps: made beside chapters 04-07 by `wrenlib execute` (a preparation), else now
validation_clips, validation = validation_explanations(PROFILE, SEED, device=device, model=model, dataset=images)
maps = normalised_maps(test_clips)
print(f"profile {profile.name!r}: {len(test_clips)} test clips (the ones chapters 04-07 explained) and "
      f"{len(validation_clips)} validation clips; device {wrenlib.describe_device(device)}")

# %% [markdown]
# ## The paper's ensembles, and one more
#
# All maps are first normalised by the book's one rule (`wrenlib.explain.normalise_maps`:
# positive part, divided by the map's maximum, at the image's resolution). Then:

# %%
pair = {name: maps[name] for name in ("Grad-CAM", "DeepLIFT")}
maps["average (GC+DL)"] = average_ensemble(pair)                 # 0.5 x Grad-CAM + 0.5 x DeepLIFT
maps["max (GC+DL)"] = max_ensemble(pair)                         # element-wise maximum
maps["average (all four)"] = average_ensemble({m: maps[m] for m in METHOD_TITLES.values()})

# %% [markdown]
# **An adaptive ensemble** (the paper's open question 3). A fixed weight trusts each method
# equally on every image. Our rule weighs each method, *per image*, by how much its map agrees
# with the other methods' maps on that image (mean Pearson correlation, negative clipped to 0),
# sharpened or flattened by one temperature: a method that disagrees with everyone else on this
# image is probably explaining noise there. No ground truth enters the rule. Its one parameter,
# the temperature *T*, raises each agreement *a* to the power 1/*T*: towards 0 the best-agreeing
# method takes all the weight, at 1 the agreements are used as they are, and at infinity (`inf`
# in the table) every method that agrees at all weighs the same. *T* is chosen on validation
# clips by the mask's ROC AUC, and reported on the test clips only:

# %% tags=["hide-input"]
validation_maps = {METHOD_TITLES[m]: explanation.normalised() for m, explanation in validation.items()}
best_temperature, choice = choose_temperature({m: validation_maps[m] for m in METHOD_TITLES.values()},
                                              images.stacked_masks(validation_clips))
display(choice.style.format({"temperature": "{:g}", "validation mask AUC": "{:.3f}"}).hide(axis="index"))
maps["adaptive (all four)"] = adaptive_ensemble({m: maps[m] for m in METHOD_TITLES.values()}, temperature=best_temperature)
wrenlib.record_result(PROFILE, "adaptive_temperature", best_temperature)
wrenlib.record_result(PROFILE, "adaptive_temperature_at_grid_edge", bool(best_temperature == choice["temperature"].min()),
                      glue=False)
wrenlib.record_result(PROFILE, "adaptive_validation_clips", len(validation_clips), glue=False)
edge = ("the lowest of the grid: the validation clips would rather follow the best-agreeing method alone"
        if best_temperature == choice["temperature"].min() else
        "the plain average of the agreeing methods" if np.isinf(best_temperature) else "inside the grid")
glue("temperature_text", Markdown(f"The validation clips chose a temperature of {best_temperature:g}, {edge}."),
     display=False)

# %% [markdown]
# {glue:md}`temperature_text`
#
# ## The paper's heat-map analysis
#
# The paper's Figure 6: the share of each map above thresholds 0.4 … 0.9, for Grad-CAM, DeepLIFT
# and their two ensembles. Medians over the test clips with the interquartile range, per dialect
# (the axis is logarithmic above 10⁻⁴ and linear below, so that a share of 0 is drawn):

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two panels, Eastern and Mexican clips: median share of the map above each threshold, log scale, for Grad-CAM and DeepLIFT (solid), their average (dashed) and max (dotted), with quartile bands."}}
thresholds = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
dialect = np.array(DIALECTS)[images.labels[test_clips]]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
shares = {}
for ax, name in zip(axes, DIALECTS):
    for method, style in zip(("Grad-CAM", "DeepLIFT", "average (GC+DL)", "max (GC+DL)"), ("-", "-", "--", ":")):
        values = threshold_shares(maps[method][dialect == name], thresholds)
        shares[(name, method)] = values
        median = np.median(values, axis=0)
        ax.plot(thresholds, median, marker="o", ls=style, lw=2 if style == ":" else 1.3, label=method)
        ax.fill_between(thresholds, *np.percentile(values, [25, 75], axis=0), alpha=0.15)
    ax.set_yscale("symlog", linthresh=1e-4)  # linear near 0, so an empty share is drawn too
    ax.set_title(f"{name} clips")
    ax.set_xlabel("threshold")
axes[0].set_ylabel("share of the map above the threshold")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()
max_larger = all(np.all(np.median(shares[(d, "max (GC+DL)")], 0) >= np.median(shares[(d, "average (GC+DL)")], 0))
                 for d in DIALECTS)
wrenlib.record_result(PROFILE, "max_ensemble_larger_share_at_every_threshold", bool(max_larger))
glue("figure6_text", Markdown("**holds** here too" if max_larger else "does **not** hold here"), display=False)
# where the maximum is simply one member's map, its curve hides that member's
differ = maps["Grad-CAM"] != maps["DeepLIFT"]
from_gradcam = float(np.mean(maps["Grad-CAM"][differ] > maps["DeepLIFT"][differ]))
from_deeplift = 1 - from_gradcam
leader, share = max((("Grad-CAM", from_gradcam), ("DeepLIFT", from_deeplift)), key=lambda pair: pair[1])
glue("max_member_text", Markdown(
    f"On this run, where the two members differ, the max ensemble takes {leader}'s value at {share:.0%} of the "
    f"pixels, so its dotted curve lies close to {leader}'s and may hide it: here the max ensemble is, nearly "
    f"everywhere, {leader}." if share >= 0.9 else
    f"On this run, where the two members differ, the max ensemble takes Grad-CAM's value at {from_gradcam:.0%} "
    f"of the pixels and DeepLIFT's at {from_deeplift:.0%}: each member leads somewhere."), display=False)

# %% [markdown]
# The paper's observation that the max ensemble activates a larger share at every threshold
# {glue:md}`figure6_text`. It is less a finding than a property: the maximum of two maps is at
# least as large as either, everywhere, and the average of two maps that peak in different places
# rarely reaches high values at all. {glue:md}`max_member_text` The share above a threshold says how *much* a map marks, not
# whether it marks the right thing; that needs the mask.
#
# ## Measured against the ground truth
#
# For every map, on the test clips:
#
# - **relevance mass**: the share of positive attribution inside the diagnostic mask;
# - **rank accuracy**: the share of the map's top-$k$ pixels inside the mask, $k$ = the mask's size;
# - **pointing game**: whether the map's maximum lies in the mask (ties split fairly, so a flat map
#   scores the mask's area, not a hit);
# - **mask AUC**: the ROC AUC of the map's values as a detector of mask pixels (0.5 = chance);
# - **on empty background**: the share of positive attribution on pixels with no song energy —
#   the paper's complaint about LIME;
# - **on shared elements**: the share on song elements that both dialects sing, which carry no
#   dialect evidence.
#
# Two reference rows: **the image itself** used as a map (its song energy — a "method" that knows
# nothing about the model), and **DeepLIFT on a randomly initialised network** of the same shape.

# %% tags=["hide-input"]
pictures = images.images(test_clips)
maps.update(reference_maps(model, pictures, seed=SEED, device=device))  # the image; DeepLIFT, untrained

diagnostic = images.stacked_masks(test_clips)
song = images.stacked_masks(test_clips, "song")
shared = song & ~diagnostic
empty = pictures == np.median(pictures, axis=(1, 2), keepdims=True)
rows = []
for name, values in maps.items():
    for position, index in enumerate(test_clips):
        rows.append({"map": name, "dialect": dialect[position], "clip": int(index)})
scores = pd.DataFrame(rows)
scores["relevance mass"] = np.concatenate([region_share(m, diagnostic) for m in maps.values()])
scores["rank accuracy"] = np.concatenate([relevance_rank_accuracy(m, diagnostic) for m in maps.values()])
scores["pointing game"] = np.concatenate([pointing_game(m, diagnostic) for m in maps.values()])
scores["mask AUC"] = np.concatenate([mask_auc(m, diagnostic) for m in maps.values()])
scores["mask AUC (song)"] = np.concatenate([mask_auc(m, diagnostic, within=song) for m in maps.values()])
scores["on empty background"] = np.concatenate([background_share(m, empty) for m in maps.values()])
scores["on shared elements"] = np.concatenate([region_share(m, shared) for m in maps.values()])
scores["all-zero map"] = np.concatenate([all_zero_maps(m) for m in maps.values()]).astype(float)
metric_names = ["relevance mass", "rank accuracy", "pointing game", "mask AUC", "mask AUC (song)",
                "on empty background", "on shared elements", "all-zero map"]
PROPORTIONS = ("pointing game", "all-zero map")  # shares of hits: Wilson's interval
overall = summarise_scores(scores, ["map"], metric_names, seed=SEED, bounds=(0, 1), proportions=PROPORTIONS)
by_dialect = summarise_scores(scores, ["map", "dialect"], metric_names, seed=SEED, bounds=(0, 1), proportions=PROPORTIONS)
order = list(maps)
table = interval_table(overall, "map")
means = overall.pivot(index="map", columns="score", values="mean")
# each map's ratio with a 95 % interval over the clips (a clip's two shares resampled together)
ratio_intervals = {name: ratio_of_means_with_interval(scores.loc[scores["map"] == name, "relevance mass"],
                                                      scores.loc[scores["map"] == name, "on shared elements"], seed=SEED)
                   for name in table.index}
table["diagnostic : shared"] = ["{:.1f} [{:.1f}, {:.1f}]".format(*ratio_intervals[name]) for name in table.index]
display(table.loc[order, [*metric_names, "diagnostic : shared"]])
for row in overall.itertuples():
    wrenlib.record_result(PROFILE, wrenlib.result_key("score", row.map, row.score), float(row.mean), glue=False)
glue("area_median", f"{np.median(diagnostic.mean((1, 2))):.1%}", display=False)
even_ratio = diagnostic.mean() / shared.mean()  # a map spread evenly: the areas' ratio
glue("even_ratio", f"{even_ratio:.1f}", display=False)
explaining = [name for name in order if not name.startswith("reference")]
side = {name: interval_side(*ratio_intervals[name][1:], even_ratio) for name in explaining}
above = [name for name in explaining if side[name] == "above"]
below = [name for name in explaining if side[name] == "below"]
apart = [name for name in explaining if side[name] == "within"]  # the interval holds the even ratio (or is NaN)
glue("ratio_clause", Markdown(
    f"With 95 % intervals over the clips, against the even ratio {even_ratio:.1f}: "
    + (f"{listing(above)} score{'s' if len(above) == 1 else ''} above it" if above else "no map scores above it")
    + (f"; {listing(below)} score{'s' if len(below) == 1 else ''} below it, weighing the shared elements, which "
       "carry no dialect evidence, more for their area than the diagnostic ones" if below else "")
    + (f"; {listing(apart)} cannot be told apart from it" if apart else "") + "."), display=False)
glue("image_ratio", f"{means.loc['reference: the image', 'relevance mass'] / means.loc['reference: the image', 'on shared elements']:.1f}",
     display=False)
empty_share = means["on empty background"]
glue("lime_empty", f"{empty_share['LIME']:.0%}", display=False)
glue("gradcam_empty", f"{empty_share['Grad-CAM']:.0%}", display=False)
glue("deeplift_empty", f"{empty_share['DeepLIFT']:.0%}", display=False)
glue("shap_empty", f"{empty_share['SHAP']:.0%}", display=False)
even_empty = float(empty.mean())  # a map spread evenly: the share of the pixels that are empty
glue("even_empty", f"{even_empty:.0%}", display=False)
wrenlib.record_result(PROFILE, "empty_pixel_share", even_empty, glue=False)
empty_rows = overall[overall["score"] == "on empty background"].set_index("map")


def beside_even(name):
    """Where a map's share on empty background lies against an evenly spread map's, by its 95 % interval."""
    row = empty_rows.loc[name]
    return {"above": "lies **above** it", "below": "lies **below** it",
            "within": "is **not told apart** from it"}[interval_side(row["ci_low"], row["ci_high"], even_empty)]


glue("empty_clause", Markdown(
    f"A map spread evenly would put {even_empty:.0%} there, since most of a spectrogram is silence: LIME's share "
    f"{beside_even('LIME')} and Grad-CAM's {beside_even('Grad-CAM')} (95 % intervals). "
    + ("LIME prefers the empty page, as the paper saw." if "above" in beside_even("LIME") else
       "So LIME marks empty regions, as the paper saw, but no more than a map that knew nothing would; "
       "chapter 06 asks the same of its strongest features.")), display=False)
methods_auc = means.loc[list(METHOD_TITLES.values()), "mask AUC"]
glue("image_auc", f"{means.loc['reference: the image', 'mask AUC']:.2f}", display=False)
glue("best_method_auc", f"{methods_auc.max():.2f} ({methods_auc.idxmax()})", display=False)
glue("untrained_mass", f"{means.loc['reference: untrained DeepLIFT', 'relevance mass']:.2f}", display=False)
glue("trained_mass", f"{means.loc['DeepLIFT', 'relevance mass']:.2f}", display=False)
image_beats = bool(means.loc["reference: the image", "mask AUC"] >= methods_auc.max())
wrenlib.record_result(PROFILE, "image_as_map_beats_every_method_on_auc", image_beats)
glue("image_verdict", Markdown("higher than" if image_beats else "below"), display=False)

# %% [markdown]
# Means over the test clips with 95 % Student's t intervals (`wrenlib.metrics.summarise_scores`;
# Wilson's interval for the pointing game and the all-zero maps, shares of hits; a score that is
# the same on every clip has no spread, and its interval is that value);
# the diagnostic mask covers a median {glue:text}`area_median` of the image, which is what an
# evenly spread map would score on relevance mass, rank accuracy and pointing game. The last
# column is the ratio of relevance on the diagnostic elements to relevance on the shared ones. A
# map spread evenly scores the ratio of the two regions' areas, {glue:text}`even_ratio`; a map
# prefers the evidence to the song elements that carry none only above that, and the image
# itself, which knows nothing about the model, scores {glue:text}`image_ratio`.
# {glue:md}`ratio_clause`
#
# **The reference rows are the warning.** The image itself, used as a map, reaches a mask AUC
# of {glue:text}`image_auc` — {glue:md}`image_verdict` the best method's
# {glue:text}`best_method_auc` — and DeepLIFT on an *untrained* network puts
# {glue:text}`untrained_mass` of its relevance on the diagnostic elements against
# {glue:text}`trained_mass` for the trained one. A map that lands on the evidence is not yet a map
# that explains the model: the diagnostic elements are where most of the song's energy lies (the
# image row's relevance mass), and a method that mirrors its input is rewarded for that. Every score in this table
# must be read against those two rows; chapter 10 asks directly whether each map depends on the
# model at all.
#
# **Empty regions.** The paper saw LIME mark empty regions. Measured: LIME puts
# {glue:text}`lime_empty` of its positive relevance on pixels without song energy — and so does
# Grad-CAM's last block ({glue:text}`gradcam_empty`), whose cells are larger than the song
# elements. {glue:md}`empty_clause` DeepLIFT ({glue:text}`deeplift_empty`) hardly can: an empty pixel equals its empty
# reference, so its contribution is zero. SHAP ({glue:text}`shap_empty`) can, because its
# references are songs: a pixel that is silent here but sung in a reference has changed. Per
# dialect:

# %% tags=["hide-input"]
per_dialect = by_dialect[by_dialect["score"].isin(["relevance mass", "pointing game", "on empty background"])]
display(interval_table(per_dialect, "map", ["score", "dialect"]).loc[order])
for row in by_dialect.itertuples():
    wrenlib.record_result(PROFILE, wrenlib.result_key("score", row.map, row.score, row.dialect), float(row.mean),
                          glue=False)

# %% [markdown]
# and the mask AUC, the one score that needs no threshold and is 0.5 for a map that knows
# nothing:

# %% tags=["hide-input"] mystnb={"image": {"alt": "Mask AUC with 95 percent intervals for every method, ensemble and reference map, Eastern clips in blue and Mexican in orange side by side, with a dotted chance line at 0.5."}}
auc = by_dialect[by_dialect["score"] == "mask AUC"]
fig, ax = plt.subplots(figsize=(10, 3.8))
positions = np.arange(len(order))
for offset, (name, colour) in zip((-0.18, 0.18), zip(DIALECTS, ("#4c72b0", "#dd8452"))):
    part = auc[auc["dialect"] == name].set_index("map").loc[order]
    ax.errorbar(positions + offset, part["mean"], yerr=[part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]],
                fmt="o", color=colour, capsize=3, label=name)
ax.axhline(0.5, color="grey", ls=":", label="chance")
ax.set_xticks(positions, order, rotation=30, ha="right")
ax.set_ylabel("mask AUC (95 % CI)")
ax.legend(fontsize=8)
ax.set_title("How well each map finds the dialect evidence, per true dialect")
plt.show()

# %% [markdown]
# ## Verdicts on the paper's claims
#
# Each claim restated, with the numbers that decide it. The rules are written in the code cell
# (shown on the page). Two maps are compared on the same clips, by the paired t-test of their
# per-clip difference in mask AUC (`wrenlib.metrics.paired_comparison`, as in chapter 10;
# pairing removes what the clips share, and with a handful of clips Student's t widens as it
# should). A claim rests on several such comparisons, and each at 5 % alone would make a false
# call somewhere in the family ever more likely; so a claim's comparisons are decided together:
# one is won or lost only where its p-value, adjusted by Holm's method over the claim's family,
# lies below 0.05 (`wrenlib.metrics.decide_family`). Claim 1 sets each gradient method against
# LIME and SHAP: Grad-CAM (or DeepLIFT) wins when it beats both and loses when either beats it.
# Claim 2 sets each ensemble against its members: it wins when it beats both (beating the weaker
# one alone shows nothing complementary) and loses when a member beats it
# (`wrenlib.metrics.outcomes_per_map`). One rule reads both, and chapter 10's
# (`wrenlib.metrics.comparison_verdict`): confirmed when some maps win and none loses, refuted
# in the mirror case, qualified when some go each way, undecided when no map's outcome is won or
# lost. The table below the verdicts lists every comparison: a map's outcome combines its two
# (it wins only where it *beats* both, and loses where it *is beaten* by either). The intervals
# beside each map in the verdicts describe that map alone; the verdicts rest on the paired
# differences of that table.

# %%
def mean_ci(name, score):
    row = overall[(overall["map"] == name) & (overall["score"] == score)].iloc[0]
    return row["mean"], row["ci_low"], row["ci_high"]


GRADIENT, FIXED = ("Grad-CAM", "DeepLIFT"), ("average (GC+DL)", "max (GC+DL)")


def claims(table, score="mask AUC"):
    """Each claim's family of comparisons (decided together, Holm), each map's outcome, its wins and
    losses, and its verdict. Claim 1, per gradient method: it wins when it beats both LIME and SHAP,
    loses when either beats it. Claim 2, per ensemble: it wins when it beats both of its members
    (beating the weaker alone shows nothing complementary), loses when a member beats it."""
    decided = []
    for family in ({name: ("LIME", "SHAP") for name in GRADIENT}, {name: GRADIENT for name in FIXED}):
        comparisons = decide_family(paired_comparisons(table, family, score=score))
        outcomes = outcomes_per_map(comparisons).to_dict()
        won, lost = (sum(r == outcome for r in outcomes.values()) for outcome in ("won", "lost"))
        decided.append((comparisons, outcomes, won, lost, comparison_verdict(won, lost)))
    return decided


(claim1_family, claim1_outcomes, wins, losses, claim1), (claim2_family, claim2_outcomes, wins2, losses2, claim2) = \
    claims(scores)
members_best = max(mean_ci("Grad-CAM", "mask AUC")[0], mean_ci("DeepLIFT", "mask AUC")[0])
overlap = float(np.nanmean(map_correlation(maps["Grad-CAM"], maps["DeepLIFT"])))
# which member the average follows: each map is scaled to its own maximum (the paper's scale), so the map that
# is high on more pixels weighs more in their mean
average_follows = {name: float(np.nanmean(map_correlation(maps["average (GC+DL)"], maps[name])))
                   for name in ("Grad-CAM", "DeepLIFT")}
glue("average_follows_text", f"r = {average_follows['Grad-CAM']:.2f} with Grad-CAM's maps and "
     f"r = {average_follows['DeepLIFT']:.2f} with DeepLIFT's", display=False)
print("claim 1: " + ", ".join(f"{name} {outcome}" for name, outcome in claim1_outcomes.items())
      + f" -> {wins} of 2 maps won, {losses} lost -> {claim1}")
print("claim 2: " + ", ".join(f"{name} {outcome}" for name, outcome in claim2_outcomes.items())
      + f" -> {wins2} of 2 maps won, {losses2} lost; Grad-CAM-DeepLIFT map correlation {overlap:.2f} -> {claim2}")

# %% tags=["hide-input"]
def fmt(name, score="mask AUC"):
    mean, low, high = mean_ci(name, score)  # three digits: as the comparison table's differences
    return f"{name} {mean:.3f} [{low:.3f}, {high:.3f}]"


verdicts = pd.DataFrame([
    {"claim (paper)": "1. Grad-CAM and DeepLIFT give more meaningful explanations than LIME and SHAP",
     "verdict": claim1,
     "evidence (mask AUC, 95 % CI)": "; ".join(fmt(m) for m in ("Grad-CAM", "DeepLIFT", "LIME", "SHAP"))
     + f" — of Grad-CAM and DeepLIFT, {wins} beat{'s' if wins == 1 else ''} both LIME and SHAP and {losses} "
     f"{'is' if losses == 1 else 'are'} beaten by one of them. Consistency across runs: chapter 10."},
    {"claim (paper)": "2. The average and max ensembles of Grad-CAM and DeepLIFT capture complementary regions",
     "verdict": claim2,
     "evidence (mask AUC, 95 % CI)": "; ".join(fmt(m) for m in ("average (GC+DL)", "max (GC+DL)"))
     + f" vs the better member {members_best:.3f} — of the 2 ensembles, {wins2} beat{'s' if wins2 == 1 else ''} both "
     f"members and {losses2} {'is' if losses2 == 1 else 'are'} beaten by one; "
     f"the two maps correlate at r = {overlap:.2f}"},
])
display(verdicts.style.hide(axis="index").set_properties(**{"text-align": "left", "white-space": "normal"}))
display(comparison_table({"claim 1": claim1_family, "claim 2": claim2_family}))
wrenlib.record_result(PROFILE, "verdict_claim1", claim1)
wrenlib.record_result(PROFILE, "verdict_claim2", claim2)
wrenlib.record_result(PROFILE, "gradcam_deeplift_map_correlation", overlap)
# open question 3, clip by clip as the claims: the adaptive ensemble against the paper's two fixed ones, and
# against the plain average of the same four maps; the image as a map against every ensemble
ENSEMBLES = (*FIXED, "average (all four)", "adaptive (all four)")
adaptive_against_fixed = against_each(scores, "adaptive (all four)", FIXED, score="mask AUC")
adaptive_vs_average = paired_comparison(scores, "adaptive (all four)", "average (all four)", score="mask AUC")
image_against_ensembles = against_each(scores, REFERENCE_MAPS[0], ENSEMBLES, score="mask AUC")
wrenlib.record_result(PROFILE, "adaptive_against_fixed_ensembles", adaptive_against_fixed)
wrenlib.record_result(PROFILE, "adaptive_minus_average_auc", adaptive_vs_average["difference"])
wrenlib.record_result(PROFILE, "adaptive_minus_average_auc_ci", [adaptive_vs_average["low"], adaptive_vs_average["high"]],
                      glue=False)
wrenlib.record_result(PROFILE, "image_against_ensembles", image_against_ensembles, glue=False)
glue("adaptive_vs_average_text", f"{adaptive_vs_average['difference']:+.3f} [{adaptive_vs_average['low']:+.3f}, "
     f"{adaptive_vs_average['high']:+.3f}]", display=False)
glue("adaptive_fixed_text", Markdown({
    "won": "beats both of the paper's fixed ensembles of Grad-CAM and DeepLIFT",
    "lost": "is beaten by one of the paper's fixed ensembles of Grad-CAM and DeepLIFT at least",
    "undecided": "is not told apart from the paper's fixed ensembles of Grad-CAM and DeepLIFT"}[adaptive_against_fixed]),
     display=False)

# %% [markdown]
# On this run claim 1 is **{glue:text}`verdict_claim1`** and claim 2 is **{glue:text}`verdict_claim2`**.
# Grad-CAM's maps and DeepLIFT's correlate at r = {glue:text}`gradcam_deeplift_map_correlation:.2f`:
# they do mark different regions — but "different" is only "complementary" when both are right,
# and the scores above say how often each one is. The ensembles add maps each scaled to its own
# maximum, as the paper's did, so a map that is high on many pixels weighs more than one high on a
# few: the average correlates at {glue:text}`average_follows_text`. Claim 2's verdict is a verdict
# on that scale, which the next section changes. By the same paired rule, the
# adaptive ensemble of all four methods {glue:md}`adaptive_fixed_text` (the paper's open question 3), and
# differs from the plain average of the same four maps by {glue:text}`adaptive_vs_average_text`
# in mask AUC (95 % t-interval of the mean per-clip difference).
# With {glue:text}`explained_count` test clips the intervals are wide; the `full` profile
# explains more clips.
#
# ## How far the verdicts rest on the score and the scale
#
# Two choices above are the paper's, not the only ones. The mask AUC counts every pixel of
# empty page as a pixel off the evidence, and empty page is most of a spectrogram, so a map
# earns much of its AUC by telling song from page. And the ensembles add maps scaled to their
# own maximum. Below, the same claims decided by the same rule, with the AUC taken within the
# song — the diagnostic elements against the shared ones
# (`wrenlib.metrics.mask_auc(..., within=song)`) — and with each member summed to 1 before the
# ensembles are formed (`wrenlib.explain.normalise_maps(scale="sum")`; claim 1 compares single
# maps, whose AUC no scale changes):

# %% tags=["hide-input"]
summed = {name: normalise_maps(maps[name], scale="sum") for name in GRADIENT}
rescaled = scores.copy()
for name, values in {"average (GC+DL)": average_ensemble(summed), "max (GC+DL)": max_ensemble(summed)}.items():
    rescaled.loc[rescaled["map"] == name, "mask AUC"] = mask_auc(values, diagnostic)  # rows in clip order
variants = {"the paper's": ("mask AUC, maps scaled to their maximum (the verdicts above)", scores, "mask AUC"),
            "within the song": ("mask AUC within the song", scores, "mask AUC (song)"),
            "summed to 1": ("mask AUC, ensembles of maps summed to 1", rescaled, "mask AUC")}
robustness, short = [], {}
for name, (label, table, score) in variants.items():
    (_, _, _, _, first), (_, _, _, _, second) = claims(table, score)
    short[label] = name
    robustness.append({"score and scale": label, "claim 1": first, "claim 2": second,
                       "the image as a map against the paper's ensembles": against_each(table, REFERENCE_MAPS[0],
                                                                                        FIXED, score=score)})
robustness = pd.DataFrame(robustness).set_index("score and scale")
display(robustness)
song_auc = overall[overall["score"] == "mask AUC (song)"].set_index("map")["mean"]
for column, key in (("claim 1", "claim1"), ("claim 2", "claim2")):
    wrenlib.record_result(PROFILE, f"verdict_{key}_song_auc", robustness[column].iloc[1])
wrenlib.record_result(PROFILE, "verdict_claim2_summed_maps", robustness["claim 2"].iloc[2])
wrenlib.record_result(PROFILE, "image_against_fixed_ensembles_song_auc",
                      robustness["the image as a map against the paper's ensembles"].iloc[1], glue=False)
steady = [column for column in ("claim 1", "claim 2") if robustness[column].nunique() == 1]
kept = listing(steady)
glue("robustness_text", Markdown(" ".join([
    (f"{kept[0].upper() + kept[1:]} {'keeps its verdict' if len(steady) == 1 else 'keep their verdicts'} under all three."
     if steady else "No claim keeps its verdict under all three."),
    *(f"{column.capitalize()} reads " + listing([f"**{verdict}** ({short[label]})"
                                                 for label, verdict in robustness[column].items()]) + "."
      for column in ("claim 1", "claim 2") if column not in steady),
    f"Within the song, the image as a map scores {song_auc[REFERENCE_MAPS[0]]:.2f} and the best method "
    f"{song_auc[list(METHOD_TITLES.values())].max():.2f} ({song_auc[list(METHOD_TITLES.values())].idxmax()}): "
    "telling the diagnostic elements from the shared ones is the harder question, and the one a listener asks."])),
     display=False)

# %% [markdown]
# {glue:md}`robustness_text` A verdict that changes with the score or the scale is a verdict on
# that choice, not on the methods alone; the book keeps the paper's choices for the scorecard.
#
# ## Try it
#
# One clip with every method, the ensembles and the mask; the slider sets the threshold of the
# paper's heat-map analysis (pixels above it are outlined).
# (The controls run in Jupyter or Colab; this page shows their first setting.)

# %% tags=["hide-input"]
glue("explained_count", len(test_clips), display=False)
fig = ensemble_figure(images, test_clips, maps, 0, 0.5)
display(figures_with_audio([fig], [clip_waveform(images, test_clips[0])],
                           [f"{clip_label(images, test_clips[0])}: every map, the ensembles and the diagnostic mask; "
                            "pixels above 0.5 outlined"]))
plt.close(fig)

# %% tags=["remove-output"]
ensemble_browser(images, test_clips, maps)
