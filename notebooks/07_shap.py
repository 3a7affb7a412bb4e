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
# # SHAP: Shapley values against a set of references
#
# SHAP {cite}`lundberg2017shap` gives each input the Shapley value of a game in which inputs join
# a coalition and the payout is the model's output: the average change an input makes, over all
# orders in which the inputs could arrive. Exact Shapley values cost $2^n$ model calls, so every
# SHAP explainer is an approximation, and the `shap` package offers several. The paper found SHAP
# expensive and in need of "many background samples" on high-resolution images
# {cite}`faruqui2025explainability`. This chapter measures the options on our network, picks one
# deliberately, and shows what its cost grows with.

# %% tags=["remove-cell"]
import subprocess, sys  # noqa: E401
if "google.colab" in sys.modules:  # on Colab, install the book's library first (make install did it elsewhere)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "wrenlib[book] @ git+https://github.com/wrenbook/wrenbook"],
                   check=True)

# %% tags=["parameters"]
PROFILE = "quick"
SEED = 0

# %% tags=["hide-input"]
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from captum.attr import DeepLift
from IPython.display import Markdown, display
from myst_nb import glue

import wrenlib
from wrenlib.explain import (
    METHOD_TITLES,
    SHAP_BYTES_PER_REFERENCE_PIXEL,
    ShapSettings,
    benchmark_explainers,
    deeplift_network,
    disjoint_shap_references,
    explain,
    explain_dataset,
    explained_clips,
    images_per_call,
    shap_references,
)
from wrenlib.metrics import (
    correlation_with_interval,
    dialect_gap_text,
    interval_side,
    map_correlation,
    mask_area,
    relevance_mass,
    share_text,
)
from wrenlib.scorecard import FEW_REFERENCES_CORRELATION
from wrenlib.plotting import plot_attribution
from wrenlib.surrogate import DIALECTS
from wrenlib.training import predict
from wrenlib.widgets import clip_label, explanation_browser, explanation_figure, method_gallery

profile, device, model, images = wrenlib.start_chapter(PROFILE, SEED)  # seeds, device, trained CNN
# the by-hand DeepLIFT below calls captum directly: its notes on hooks and gradients, and torch's on
# max-unpooling, are not for the reader (wrenlib's own calls silence them the same way)
warnings.filterwarnings("ignore", module="captum")
warnings.filterwarnings("ignore", message=".*max_unpooling2d.*")
explained = explained_clips(images, profile.explain_clips, seed=SEED)
probabilities = predict(model, images, explained, device)
masks = images.stacked_masks(explained)
settings = ShapSettings(n_background=profile.shap_background, seed=SEED)
references = shap_references(images, settings.n_background, settings.seed)
print(f"profile {profile.name!r}: {len(explained)} explained test clips, {len(references)} reference images "
      f"from the training birds; device {wrenlib.describe_device(device)}")

# %% [markdown]
# ## Three explainers, measured
#
# - **deep** (`shap.DeepExplainer`): DeepLIFT's rules, run once against each reference image and
#   averaged — "DeepSHAP". Its references are training images.
# - **gradient** (`shap.GradientExplainer`): expected gradients — gradients at random points
#   between the image and random references, averaged over many samples.
# - **partition** (`shap.PartitionExplainer`): model-agnostic; it splits the image into a
#   hierarchy of blocks and switches blocks to the background level, with a budget of model calls.
#
# Each on the same two clips, at comparable budgets; relevance mass on the diagnostic elements
# and agreement with the deep explainer's map (Pearson r, `wrenlib.metrics.map_correlation`):

# %% tags=["hide-input"] mystnb={"image": {"alt": "One clip's spectrogram with its diagnostic mask outlined, then its SHAP maps (positive part, yellow to dark red) from the deep, gradient and partition explainers, side by side."}}
trial = explained[[0, len(explained) - 1]]
trial_masks = images.stacked_masks(trial)
budgets = {"deep": ShapSettings("deep", n_background=settings.n_background),
           # the default samples: the browser below shows the same maps
           "gradient": ShapSettings("gradient", n_background=settings.n_background),
           "partition": ShapSettings("partition", max_evals=500)}
budget_text = {"deep": f"{settings.n_background} references", "gradient": f"{settings.n_background} references, {ShapSettings().n_samples} samples",
               "partition": "500 model calls"}
rows, trial_maps = [], {}
for name, chosen in budgets.items():
    # an untimed first call on one clip: the first call of each explainer also loads and compiles code
    explain(model, images.images(trial[:1]), "shap", settings=chosen, references=references, device=device)
    result = explain(model, images.images(trial), "shap", settings=chosen, references=references, device=device)
    trial_maps[name] = result.maps
    rows.append({"explainer": name, "budget": budget_text[name], "seconds per image": result.seconds / len(trial),
                 "median relevance mass": np.nanmedian(relevance_mass(result.maps, trial_masks))})
for row in rows:
    row["Pearson r with deep"] = np.mean(map_correlation(trial_maps[row["explainer"]], trial_maps["deep"]))
options = pd.DataFrame(rows)
display(options.style.format({"seconds per image": "{:.2f}", "median relevance mass": "{:.1%}",
                              "Pearson r with deep": "{:.2f}"}).hide(axis="index"))
fastest_other = options.set_index("explainer").drop("deep")["seconds per image"].min()
speedup = fastest_other / options.set_index("explainer").loc["deep", "seconds per image"]
wrenlib.record_result(PROFILE, "shap_explainer_seconds", options.set_index("explainer")["seconds per image"].round(3).to_dict(), glue=False)
wrenlib.record_result(PROFILE, "shap_deep_speedup_over_next", float(speedup))
glue("shap_speed_text", Markdown(
    f"It is {speedup:.0f} times faster here than the next option" if speedup >= 1.5 else
    f"It is not clearly the fastest here (the next option takes {speedup:.1f} times its time)"), display=False)

fig, axes = plt.subplots(1, 4, figsize=(17, 2.9), sharey=True)
index = int(trial[0])
plot_attribution(images.image(index), None, ax=axes[0], mask=trial_masks[0], front_end=images.front_end,
                 title=clip_label(images, index))
for ax, name in zip(axes[1:], budgets):
    plot_attribution(images.image(index), np.clip(trial_maps[name][0], 0, None) / max(trial_maps[name][0].max(), 1e-12),
                     ax=ax, mask=trial_masks[0], front_end=images.front_end, title=f"{name} ({budget_text[name]})")
    ax.set_ylabel("")
plt.show()

# %% [markdown]
# **The choice: the deep explainer.** {glue:md}`shap_speed_text`; it has no sampling noise and is
# exactly additive for its references (its attributions sum to the model's output minus the
# references' mean output), though its values only approximate Shapley values, through
# DeepLIFT's linearisation of the network; and it is the
# explainer whose cost the paper's remark about "background samples" describes. Its price is that
# it is DeepLIFT in disguise; the partition explainer is the model-agnostic alternative, and
# blocky for the same reason LIME's grid is. The budget is {glue:text}`shap_references_count`
# reference images from the training birds, drawn at random in equal numbers from each dialect and
# background (`wrenlib.explain.shap_references`).
#
# ## DeepSHAP by hand
#
# If the deep explainer is DeepLIFT averaged over references, we can build it from captum's
# DeepLIFT — one run per reference — and compare:

# %%
standardise, network = deeplift_network(model)  # as chapter 05 runs captum's DeepLIFT
index = int(explained[0])
x = torch.from_numpy(images.image(index))[None, None].to(device)
target = int(model(x).argmax())
with torch.no_grad():
    inputs = standardise(x)
    standardised_references = standardise(torch.from_numpy(references)[:, None].to(device))
per_reference = [DeepLift(network).attribute(inputs, baselines=reference[None], target=target)
                 for reference in standardised_references]
by_hand = torch.stack(per_reference).mean(0)[0, 0].detach().cpu().numpy()   # the average over references

library = explain(model, x, "shap", targets=[target], settings=settings, references=references).maps[0]
r = map_correlation(by_hand[None], library[None])[0]
with torch.no_grad():
    explained_change = float(network(inputs)[0, target] - network(standardised_references)[:, target].mean())
print(f"averaged DeepLIFT vs shap.DeepExplainer: Pearson r = {r:.3f}")
print(f"sum of the map: averaged DeepLIFT {by_hand.sum():.3f}, shap {library.sum():.3f}; "
      f"f(x) - mean f(references) = {explained_change:.3f}")

# %% tags=["hide-input"]
wrenlib.record_result(PROFILE, "shap_deep_vs_averaged_deeplift_correlation", float(r))
shortfall = float(1 - by_hand.sum() / explained_change)
wrenlib.record_result(PROFILE, "shap_captum_sum_shortfall", shortfall)
glue("sum_text", Markdown(
    f"Their sums agree too: averaged over the references, captum's DeepLIFT explains f(x) − mean f(references) "
    f"to within {share_text(abs(shortfall))}, as shap's does" if abs(shortfall) < 0.01 else
    f"Their sums differ: averaged over the references, captum's DeepLIFT misses f(x) − mean f(references) by "
    f"{shortfall:.1%}, where shap's keeps it exact"), display=False)
glue("shap_references_count", settings.n_background, display=False)

# %% [markdown]
# The two maps agree to a correlation of {glue:text}`shap_deep_vs_averaged_deeplift_correlation:.3f`.
# {glue:md}`sum_text` (captum's, with each block's ReLU and max-pool kept apart as in chapter
# 05). So SHAP's deep
# explainer differs from chapter 05's DeepLIFT only in its reference: a handful of real training
# songs instead of an empty page. Relevance then means "different from typical songs", and a
# shared element that is present in every reference earns little.
#
# ## What the cost grows with
#
# Seconds per image of the deep explainer against the number of references (this profile's
# images), and against the image size (a freshly initialised network of the paper's shape, two
# references, one image):

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two line plots of the SHAP deep explainer's seconds per image: left against the number of reference images, right against pixels per image for three labelled image sizes."}}
growth_rows = []
swept = images.images(explained[:4])
for n in (2, 4, 8, 16):
    chosen = ShapSettings(n_background=n, seed=SEED)
    seconds, first, second = 0.0, [], []
    for position in range(len(swept)):
        # two sets of n references that share no image, drawn afresh for each clip: the two maps differ by the
        # choice of references alone, and the interval over the clips covers that choice, not one draw's luck
        one, other = disjoint_shap_references(images, n, sets=2, seed=SEED + position)
        result = explain(model, swept[position:position + 1], "shap", settings=chosen, references=one)
        again = explain(model, swept[position:position + 1], "shap", settings=chosen, references=other)
        seconds += min(result.seconds, again.seconds)  # the same work twice: the better timing (the first call is cold)
        first.append(result.maps[0])
        second.append(again.maps[0])
    # Student's t on Fisher's z: a handful of clips, correlations near 1
    correlations = map_correlation(np.stack(first), np.stack(second))  # NaN where a map is flat: left out
    centre, low, high = correlation_with_interval(correlations)
    growth_rows.append({"references": n, "seconds per image": seconds / len(swept),
                        "Pearson r of two disjoint sets": centre, "low": low, "high": high,
                        "clips": int(np.isfinite(correlations).sum())})
by_references = pd.DataFrame(growth_rows)
size_rows = []
for height, width in [(120, 240), (240, 480), (480, 960)]:
    from wrenlib.model import DialectCNN, ModelConfig

    torch.manual_seed(SEED)
    fresh = DialectCNN(ModelConfig(height, width)).to(device).eval()
    picture = (np.random.default_rng(SEED).random((3, height, width)) ** 8).astype(np.float32)
    # the first call at a size also allocates its buffers and warms its code paths: untimed; then
    # the best of two, since one timing on a shared machine varies by more than the sizes' ratio
    seconds = [explain(fresh, picture[:1], "shap", targets=[0], settings=ShapSettings(n_background=2),
                       references=picture[1:]).seconds for _ in range(3)]
    size_rows.append({"image": f"{height} x {width}", "pixels": height * width, "seconds per image": min(seconds[1:])})
by_size = pd.DataFrame(size_rows)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].plot(by_references["references"], by_references["seconds per image"], marker="o")
axes[0].set_xlabel("reference images")
axes[0].set_ylabel("seconds per image")
axes[0].set_title(f"deep explainer, {profile.image_height_px} x {profile.image_width_px}")
axes[1].plot(by_size["pixels"], by_size["seconds per image"], marker="o")
for row in by_size.itertuples():
    axes[1].annotate(row.image, (row.pixels, row._3), textcoords="offset points", xytext=(4, -10), fontsize=8)
axes[1].set_xlabel("pixels per image")
axes[1].set_ylabel("seconds per image (one image per call)")
axes[1].set_title("deep explainer, 2 references")
fig.tight_layout()
plt.show()
slope = np.polyfit(by_references["references"], by_references["seconds per image"], 1)[0]
size_ratio = by_size["seconds per image"].iloc[-1] / by_size["seconds per image"].iloc[0]
wrenlib.record_result(PROFILE, "shap_seconds_per_reference", float(slope))
display(by_references.assign(**{"Pearson r of two disjoint sets": [
    f"{row['Pearson r of two disjoint sets']:.3f} [{row['low']:.3f}, {row['high']:.3f}]" for _, row in by_references.iterrows()]})
        .drop(columns=["low", "high"]).rename(columns={"Pearson r of two disjoint sets":
                                                       "Pearson r of two disjoint sets (95 % CI)"})
        .style.format({"seconds per image": "{:.3f}"}).hide(axis="index"))
agreement = by_references.set_index("references")
four = agreement.loc[4]
wrenlib.record_result(PROFILE, "shap_four_references_agreement", float(four["Pearson r of two disjoint sets"]))
wrenlib.record_result(PROFILE, "shap_four_references_agreement_ci", [float(four["low"]), float(four["high"])])
side = interval_side(four["low"], four["high"], FEW_REFERENCES_CORRELATION)
four_text = (f"two maps from disjoint sets of 4 references agree at a Pearson r of "
             f"{four['Pearson r of two disjoint sets']:.3f} [{four['low']:.3f}, {four['high']:.3f}] over {len(swept)} clips")
glue("shap_references_verdict", Markdown(
    f"and few references do not pin the map down: {four_text}, below {FEW_REFERENCES_CORRELATION:g} "
    f"(with 16, {agreement.loc[16, 'Pearson r of two disjoint sets']:.2f})" if side == "below" else
    f"yet few references already pin the map down: {four_text}, above {FEW_REFERENCES_CORRELATION:g} "
    f"(with 2, {agreement.loc[2, 'Pearson r of two disjoint sets']:.2f}), so on these images what makes SHAP "
    "expensive is its cost per reference, not a need for many" if side == "above" else
    f"and whether few references pin the map down is not decided here: {four_text}, an interval that holds "
    f"{FEW_REFERENCES_CORRELATION:g}"), display=False)
glue("few_references_threshold", f"{FEW_REFERENCES_CORRELATION:g}", display=False)
wrenlib.record_result(PROFILE, "shap_cost_ratio_paper_size_vs_quick_size", float(size_ratio))
pixel_ratio = by_size["pixels"].iloc[-1] / by_size["pixels"].iloc[0]
if size_ratio < 0.85 * pixel_ratio:
    size_verdict = (f"less than {pixel_ratio:.0f}, because at the small size the fixed cost of each call (Python, "
                    "hooks, the explainer's bookkeeping) weighs more")
elif size_ratio > 1.15 * pixel_ratio:
    size_verdict = f"more than {pixel_ratio:.0f}: per pixel, the paper's size costs more than the small one"
else:
    size_verdict = f"about in proportion to the {pixel_ratio:.0f} times the pixels"
glue("shap_size_verdict", size_verdict, display=False)
full = wrenlib.get_profile("full")
paper_pixels = full.image_height_px * full.image_width_px
glue("shap_gib_per_reference", f"{SHAP_BYTES_PER_REFERENCE_PIXEL * paper_pixels / 2**30:.2f}", display=False)
full_references = full.shap_background
glue("shap_full_references", full_references, display=False)
glue("shap_gib_full_budget", f"{SHAP_BYTES_PER_REFERENCE_PIXEL * paper_pixels * full_references / 2**30:.0f}",
     display=False)
glue("shap_references_per_call_here", images_per_call(paper_pixels, SHAP_BYTES_PER_REFERENCE_PIXEL, device),
     display=False)

# %% [markdown]
# Each added reference costs about {glue:text}`shap_seconds_per_reference:.2f` s per image: the
# deep explainer runs one forward and one backward pass per reference. Going from 120 × 240 to
# the paper's 480 × 960 (16 times the pixels) multiplies the time by
# {glue:text}`shap_cost_ratio_paper_size_vs_quick_size:.1f` on this machine —
# {glue:text}`shap_size_verdict`. Both explain the paper's
# "expensive": the cost grows with references and with pixels — {glue:md}`shap_references_verdict`
# (the clips' correlations averaged on Fisher's z scale, with Student's 95 % interval,
# `wrenlib.metrics.correlation_with_interval`; with the interval below r =
# {glue:text}`few_references_threshold` the scorecard counts 4 references as too few, above as
# enough, and an interval that holds it decides nothing — a handful of clips gives a wide one). The
# two sets share no image, so their maps differ by the choice of references alone; a set of 4 drawn
# from the 16 would share a quarter of its map with theirs and agree more than it should. Each
# clip draws its own two sets, so the interval covers the luck of the draw as well as the clips.
#
# Memory grows the same way. The deep explainer runs the explained image beside every reference,
# forward and backward, so one call holds the activations of all of them: at 480 × 960 up to
# {glue:text}`shap_gib_per_reference` GiB per reference (rounded up from what `make bench`
# measures), and
# {glue:text}`shap_gib_full_budget` GiB for the `full` profile's
# {glue:text}`shap_full_references` references. Since an attribution against
# a set of references is the mean of the attributions against each, `wrenlib.explain` splits the
# references into groups that fit the machine and averages the groups' maps, weighted by their
# sizes — the same map up to rounding. On this machine a call at the paper's size takes up to
# {glue:text}`shap_references_per_call_here` references (`wrenlib.explain.images_per_call`).
#
# ## Right and wrong answers, both dialects

# %%
shap_maps = explain_dataset(model, images, explained, "shap", PROFILE, settings, device=device)
mass = relevance_mass(shap_maps.maps, masks)

# %% tags=["hide-input"]
display(method_gallery(model, images, "shap", PROFILE, settings, "SHAP (deep)", device))
per_clip = pd.DataFrame({"dialect": np.array(DIALECTS)[probabilities.argmax(1)], "relevance mass": mass,
                         "mask area": mask_area(masks)})
per_dialect = per_clip.groupby("dialect").median().assign(clips=per_clip.groupby("dialect").size())
per_dialect.index.name = "predicted dialect"
display(per_dialect.style.format("{:.1%}", subset=["relevance mass", "mask area"]))
glue("shap_explained_clips", len(explained), display=False)
glue("shap_dialect_gap", Markdown(dialect_gap_text(mass, np.array(DIALECTS)[probabilities.argmax(1)],
                                                  images.clips["individual"].to_numpy()[explained])), display=False)
wrenlib.record_result(PROFILE, "shap_relevance_mass_median", float(np.nanmedian(mass)))
wrenlib.record_result(PROFILE, "shap_relative_additivity_gap", float(np.median(np.abs(shap_maps.extras["convergence_delta"])
                                                                            / np.abs(shap_maps.maps.sum((1, 2))))))

# %% [markdown]
# A median {glue:text}`shap_relevance_mass_median:.1%` of each SHAP map's positive relevance lies
# on the diagnostic elements, over the {glue:text}`shap_explained_clips` explained clips (chapters
# 04 and 05 score every test clip, so their medians are over other clips). {glue:md}`shap_dialect_gap` Each map sums to the difference it
# explains, f(x) minus the mean of f over the references, up to a median relative gap of
# {glue:text}`shap_relative_additivity_gap:.1e` (SHAP's additivity, measured for every map).
#
# ## The cost of the four methods
#
# Time per explained image divided by the time of one forward pass of the same network on the
# same batch size — *forward-pass equivalents* — measured side by side on this machine at
# this profile's image size with its budgets, and at the paper's 480 × 960 with token budgets
# (16 LIME samples, 2 SHAP references, to keep the run short: the time grows with the budget, so
# the paper's budgets cost proportionally more; the cost of one reference, in forward passes,
# need not be the same at the two sizes, since the fixed costs of a call weigh more at the small one;
# `wrenlib.explain.benchmark_explainers`, also run by `make bench`). For LIME and SHAP,
# "overhead" is the share of the time not spent in the network.

# %% tags=["hide-input"]
costs = benchmark_explainers((profile.image_height_px, profile.image_width_px), n_images=2,
                             lime_samples=profile.lime_samples,
                             shap_background=settings.n_background, device=device)
paper_size = benchmark_explainers((480, 960), n_images=1, lime_samples=16, shap_background=2, device=device)
costs["method"] = costs["method"].map(METHOD_TITLES)
paper_size["method"] = paper_size["method"].map(METHOD_TITLES)
both = pd.concat([costs, paper_size], ignore_index=True)
both["image"] = both["image_height_px"].astype(str) + " x " + both["image_width_px"].astype(str)
display(both[["image", "method", "budget", "seconds_per_image", "forward_pass_equivalents", "overhead_share"]]
        .rename(columns={"seconds_per_image": "seconds per image", "forward_pass_equivalents": "forward passes",
                         "overhead_share": "overhead"})
        .style.format({"seconds per image": "{:.3f}", "forward passes": "{:.0f}", "overhead": "{:.0%}"},
                      na_rep="–").hide(axis="index"))
for row in paper_size.itertuples():
    wrenlib.record_result(PROFILE, f"cost_forward_equivalents_paper_size_{row.method.lower().replace('-', '')}",
                          float(row.forward_pass_equivalents), glue=False)
for row in costs.itertuples():
    wrenlib.record_result(PROFILE, f"cost_forward_equivalents_{row.method.lower().replace('-', '')}",
                          float(row.forward_pass_equivalents))
shap_cost = costs.set_index("method").loc[METHOD_TITLES["shap"]]
wrenlib.record_result(PROFILE, "cost_forward_equivalents_shap_per_reference",
                      float(shap_cost.forward_pass_equivalents / settings.n_background))
overheads = costs.set_index("method")["overhead_share"].dropna()
for method, share in overheads.items():
    wrenlib.record_result(PROFILE, f"overhead_share_{method.lower()}", float(share))
over = [f"{method} ({share:.0%})" for method, share in overheads.items() if share > 0.2]
glue("overhead_verdict", Markdown(
    "within the book's 20 % budget for both" if not over else f"**over** the book's 20 % budget for {', '.join(over)}"),
    display=False)

# %% [markdown]
# Grad-CAM costs about {glue:text}`cost_forward_equivalents_gradcam:.0f` forward passes (one
# forward and one backward pass); DeepLIFT {glue:text}`cost_forward_equivalents_deeplift:.0f`, one
# backward pass of its own rules through hooks on every layer; SHAP's deep explainer
# {glue:text}`cost_forward_equivalents_shap_per_reference:.0f` per reference; LIME one forward pass
# per perturbation plus its segmentation and regression — its cost is its sample budget. The
# time LIME and SHAP spend outside the network (LIME {glue:text}`overhead_share_lime:.0%`, SHAP
# {glue:text}`overhead_share_shap:.0%`) is {glue:md}`overhead_verdict`.
#
# ## Settings

# %% tags=["hide-input"]
settings_table = pd.DataFrame([
    ("explainer", "deep (shap.DeepExplainer)", "gradient and partition compared above"),
    ("references", f"{settings.n_background} training images (profile '{PROFILE}')", "wrenlib.explain.shap_references"),
    ("where SHAP starts", "after the model's standardisation, references standardised the same way", "as for DeepLIFT"),
    ("additivity", "sum of a map = f(x) - mean f(references); median gap in the text above", "check_additivity off, measured instead"),
    ("target", "the predicted class's logit", "the book's choice: the paper does not say"),
    ("normalisation", "positive part / maximum per map", "wrenlib.explain.normalise_maps"),
], columns=["setting", "value", "note"])
display(settings_table.style.hide(axis="index"))

# %% [markdown]
# ## Try it
#
# The explained clips with the deep and the gradient explainer (the deep explainer's maps from
# the cache; the gradient explainer's are made the first time a clip is shown, seconds each on a
# CPU, then cached).
# (The controls run in Jupyter or Colab; this page shows their first setting.)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two panels for one explained clip: left its spectrogram image with the diagnostic mask outlined; right the SHAP map over it, yellow (weak) to dark red (strong), with a colour bar."}}
fig, _ = explanation_figure(model, images, int(explained[0]), "shap", PROFILE, device,
                            n_background=settings.n_background, seed=SEED)
plt.show()

# %% tags=["remove-output"]
explanation_browser(model, images, explained, "shap", PROFILE,
                    {"explainer": ["deep", "gradient"], "n_background": [settings.n_background], "seed": [SEED]}, device)

# %% [markdown]
# ## Exercises
#
# 1. SHAP values add up: for the first explained clip, with four references, compare the sum of
#    the SHAP map with the model's output for the explained class minus its mean output over the
#    references.
# 2. Draw the four references again with another seed. How much does the map change
#    (Pearson correlation)?
#
# Solutions (click to show):

# %% tags=["hide-cell"]
from wrenlib.explain import ShapSettings, explain, shap_references

index = int(explained[0])
picture = images.image(index)
maps, sums = [], []
for seed in (0, 1):
    references = shap_references(images, 4, seed=seed)
    result = explain(model, picture[None], "shap", settings=ShapSettings(n_background=4, seed=seed), device=device,
                     references=references)
    target = int(result.targets[0])
    with torch.no_grad():
        outputs = model(torch.from_numpy(np.concatenate([picture[None], references])[:, None]).to(device))[:, target]
    print(f"seed {seed}: sum of the map {result.maps[0].sum():+.4f}; "
          f"f(x) - mean f(references) {float(outputs[0] - outputs[1:].mean()):+.4f}")
    maps.append(result.maps[0])
print(f"correlation of the two maps: {np.corrcoef(maps[0].ravel(), maps[1].ravel())[0, 1]:.2f}")
