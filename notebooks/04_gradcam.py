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
# # Grad-CAM: where the last convolutional layer looks
#
# Grad-CAM {cite}`selvaraju2017gradcam` asks the last convolutional block which of its feature
# maps matter for a class, and where those maps are active. The paper used it on "the gradients
# of the last convolutional layer" {cite}`faruqui2025explainability`. For class $c$ with logit
# $y^c$ and feature maps $A^k$ of that layer, each map gets one weight — its gradient, averaged
# over the map's cells — and the explanation is the ReLU of the weighted sum, upsampled to the
# image:
#
# $$\alpha_k^c = \frac{1}{Z}\sum_{i,j}\frac{\partial y^c}{\partial A^k_{ij}}, \qquad
#   L^c = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big).$$
#
# This chapter computes that by hand for one clip, checks captum's result against it, and then
# measures what the method can and cannot see on our network.

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
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from myst_nb import glue

import wrenlib
from wrenlib.explain import GradCamSettings, explain, explain_dataset, explained_clips, layer_stride
from wrenlib.metrics import (
    decide_family,
    dialect_gap_text,
    listing,
    mask_area,
    outcomes_per_map,
    paired_comparisons,
    points_text,
    relevance_mass,
)
from wrenlib.plotting import plot_attribution
from wrenlib.surrogate import DIALECTS
from wrenlib.training import predict
from wrenlib.widgets import attribution_gallery, clip_label, explanation_browser, explanation_figure

profile, device, model, images = wrenlib.start_chapter(PROFILE, SEED)  # seeds, device, trained CNN
test = images.split_indices("test")
probabilities = predict(model, images, test, device)
predicted, truth = probabilities.argmax(1), images.labels[test]
explained = explained_clips(images, profile.explain_clips, seed=SEED)
diagnostic = images.stacked_masks(test)
print(f"profile {profile.name!r}: the mixed-background CNN of chapter 03 on {len(test)} test clips "
      f"({profile.image_height_px} x {profile.image_width_px} px); device {wrenlib.describe_device(device)}")

# %% [markdown]
# ## Grad-CAM by hand
#
# One forward pass records the last block's output $A$ (after its ReLU and max-pooling); one
# backward pass from the predicted logit gives $\partial y^c / \partial A$. The rest is three
# lines, and a fourth that stretches the map's cells over the pixels they cover, blending
# neighbours at their borders (bilinear):

# %%
clip = int(test[np.argmax(probabilities[:, 1])])  # the test clip the model is surest is Mexican
x = torch.from_numpy(images.image(clip))[None, None].to(device)
store = {}
hook = model.last_conv_block.register_forward_hook(lambda module, inputs, output: store.update(A=output))
try:
    logits = model(x)
    target = int(logits.argmax())
    A = store["A"]
    gradients, = torch.autograd.grad(logits[0, target], A)
finally:
    hook.remove()

alpha = gradients.mean(dim=(2, 3))                       # one weight per feature map
cam = torch.relu((alpha[:, :, None, None] * A).sum(1))   # weighted sum, evidence *for* the class
grid_rows, grid_cols = A.shape[-2:]                      # cells; each covers stride x stride pixels
stride = layer_stride(model, model.last_conv_block)      # 2 per max-pool: 32 x 32 after block 5
covered = F.interpolate(cam[None], size=(grid_rows * stride[0], grid_cols * stride[1]), mode="bilinear")
height, width = x.shape[-2:]                             # max-pooling rounds down: pixels in no cell get 0
by_hand = F.pad(covered, (0, width - grid_cols * stride[1], 0, height - grid_rows * stride[0]))
by_hand = by_hand[0, 0].detach().cpu().numpy()

library = explain(model, x, "gradcam", targets=[target]).maps[0]
print(f"last block output: {tuple(A.shape[1:])} (channels x rows x columns); "
      f"largest difference to captum's LayerGradCam: {np.abs(by_hand - library).max():.1e}")

# %% tags=["hide-input"] mystnb={"image": {"alt": "Four panels: one clip's spectrogram with its diagnostic mask outlined; the coarse Grad-CAM cell map as a heat map; that map upsampled over the spectrogram; the sorted channel weights, red for and blue against."}}
hz_per_row = images.front_end.sample_rate_hz / 2 / height  # the image's rows span 0 Hz to Nyquist
ms_per_column = 1000 * images.front_end.clip_seconds / width
frequency_span_hz, time_span_ms = stride[0] * hz_per_row, stride[1] * ms_per_column
uncovered = (height - grid_rows * stride[0], width - grid_cols * stride[1])
wrenlib.record_result(PROFILE, "gradcam_hand_vs_captum_max_difference", float(np.abs(by_hand - library).max()))
glue("gradcam_grid", f"{grid_rows} × {grid_cols}", display=False)
glue("gradcam_cell", f"{stride[0]} × {stride[1]} pixels, about {frequency_span_hz / 1000:.1f} kHz × "
     f"{time_span_ms:.0f} ms", display=False)
glue("gradcam_uncovered", Markdown(
    f"At {height} × {width} pixels max-pooling rounds down: the grid covers the top {grid_rows * stride[0]} rows "
    f"and the first {grid_cols * stride[1]} columns, and the last {uncovered[0]} rows (below "
    f"{uncovered[0] * hz_per_row / 1000:.1f} kHz) and {uncovered[1]} columns (the clip's last "
    f"{uncovered[1] * ms_per_column / 1000:.2f} s) lie in no cell, so they get no relevance; captum's "
    f"`LayerAttribution.interpolate` would stretch the grid over them and shift the last cells by up to "
    f"{uncovered[0]} rows and {uncovered[1]} columns (`wrenlib.explain.cells_to_pixels`)." if any(uncovered) else
    f"The image's {height} × {width} pixels are a whole number of cells, so the grid covers all of them."),
    display=False)

fig, axes = plt.subplots(1, 4, figsize=(15, 3.2), gridspec_kw={"width_ratios": [1.2, 1.2, 1.2, 0.9]})
plot_attribution(images.image(clip), None, ax=axes[0], mask=images.masks(clip)["diagnostic"],
                 front_end=images.front_end, title=clip_label(images, clip))
axes[1].imshow(cam[0].detach().cpu().numpy(), cmap="inferno", aspect="auto", interpolation="nearest")
axes[1].set_title(f"ReLU(Σ α·A): the {grid_rows} × {grid_cols} map", fontsize=9)
axes[1].set_xlabel("column (time)")
axes[1].set_ylabel("row (frequency, high at top)")
axes[1].grid(False)
plot_attribution(images.image(clip), by_hand / max(by_hand.max(), 1e-12), ax=axes[2], mask=images.masks(clip)["diagnostic"],
                 front_end=images.front_end, title="upsampled (bilinear) onto the pixels of its cells")
weights = np.sort(alpha[0].detach().cpu().numpy())[::-1]
channels = np.arange(len(weights))
axes[3].fill_between(channels, weights, where=weights > 0, color="#c44e52", step="mid", label="for")
axes[3].fill_between(channels, weights, where=weights <= 0, color="#4c72b0", step="mid", label="against")
axes[3].axhline(0, color="black", lw=0.6)
axes[3].legend(fontsize=8)
axes[3].set_title("α: the 256 channel weights, sorted", fontsize=9)
axes[3].set_xlabel("channel (sorted)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The last block leaves a {glue:text}`gradcam_grid` grid at this profile's image size: one cell
# spans {glue:text}`gradcam_cell`. {glue:md}`gradcam_uncovered` The cyan outline is the clip's diagnostic mask — where
# the surrogate put the dialect evidence (chapter 01). Grad-CAM can only say which *cells* matter;
# the upsampling smooths them, it adds no detail. Positive and negative channel weights (right)
# compete: the map is the ReLU of their sum.
#
# ## Every test clip
#
# The maps of all test clips, cached per clip in `artifacts/<profile>/explanations/` so that the
# later chapters reuse them. Two numbers per map: whether anything survives the ReLU, and how much
# of the map lies inside the diagnostic mask (*relevance mass*; a map spread evenly over the image
# would score the mask's area).

# %%
gradcam = explain_dataset(model, images, test, "gradcam", PROFILE, device=device)
mass = relevance_mass(gradcam.maps, diagnostic)
area = mask_area(diagnostic)

# %% tags=["hide-input"]
birds = images.clips["individual"].to_numpy()[test]  # a bird's clips share its voice: the birds are the units
per_clip = pd.DataFrame({"dialect": np.array(DIALECTS)[predicted], "all zero": gradcam.all_zero,
                         "relevance mass": mass, "mask area": area, "correct": predicted == truth, "bird": birds})
summary = per_clip.groupby("dialect").agg(clips=("all zero", "size"), all_zero_share=("all zero", "mean"),
                                          relevance_mass=("relevance mass", "median"),
                                          mask_area=("mask area", "median"))
summary.index.name = "predicted dialect"
display(summary.rename(columns={"all_zero_share": "all-zero maps", "relevance_mass": "median relevance mass",
                                "mask_area": "median mask area"})
        .style.format({"all-zero maps": "{:.0%}", "median relevance mass": "{:.1%}", "median mask area": "{:.1%}"}))
for dialect, row in summary.iterrows():
    wrenlib.record_result(PROFILE, f"gradcam_all_zero_share_{dialect.lower()}", float(row["all_zero_share"]))
wrenlib.record_result(PROFILE, "gradcam_relevance_mass_median", float(np.nanmedian(mass)))
wrenlib.record_result(PROFILE, "gradcam_mask_area_median", float(np.median(area)))
wrenlib.record_result(PROFILE, "gradcam_mass_over_area", float(np.nanmedian(mass) / np.median(area)))
# per predicted dialect, the map's mass against the mask's area on the same clips, bird by bird (Holm over
# the dialects): below it is worse than an even spread
against_even = decide_family(pd.concat([
    paired_comparisons(per_clip[per_clip["dialect"] == d].melt(id_vars=["bird"], value_vars=["relevance mass", "mask area"],
                                                               var_name="map", value_name="score"),
                       {"relevance mass": ("mask area",)}, unit="bird").assign(dialect=d)
    for d in summary.index if (per_clip["dialect"] == d).sum() >= 2], ignore_index=True))
below_even = [f"clips predicted {row['dialect']} ({summary.loc[row['dialect'], 'relevance_mass']:.1%} on a mask of "
              f"{summary.loc[row['dialect'], 'mask_area']:.1%}, bird by bird "
              f"{points_text(row['difference'], row['low'], row['high'])})"
              for row in against_even.to_dict("records") if row["result"] == "lost"]
glue("gradcam_dialect_gap", Markdown(dialect_gap_text(mass, per_clip["dialect"], birds) + (
    f" Per dialect the pooled ratio hides a map worse than an even spread for {listing(below_even)}."
    if below_even else "")), display=False)
worst_zero = summary["all_zero_share"].idxmax()
worst_share = summary.loc[worst_zero, "all_zero_share"]

# %% [markdown]
# **All-zero maps.** {glue:md}`gradcam_zero_text` An all-zero map is not a bug. The channel weights are
# gradients *averaged over the whole map*; behind the last block sit a flatten and three dense
# layers (512 → 1024 → 2), which weigh every cell separately, so a channel can carry the evidence in one place and
# still get a negative average weight. When the class is coded that way — partly by the
# *absence* of something — Grad-CAM has nothing positive to show. (The evidence-box test in
# `tests/test_explain.py` runs Grad-CAM on a head that averages each map globally, the setting
# the method was designed for; there it does find the box.) The median relevance mass is {glue:text}`gradcam_relevance_mass_median:.1%`
# against a median mask area of {glue:text}`gradcam_mask_area_median:.1%`: a ratio of
# {glue:text}`gradcam_mass_over_area:.1f`, where 1 is what a map spread evenly over the image
# would score. {glue:md}`gradcam_dialect_gap` At this layer one cell is wider than most song elements, so the map cannot
# separate the diagnostic trill and buzz from the shared notes beside them.
#
# ## The layer trade-off
#
# The paper took "the last convolutional layer"; the book reads the last block's output, after
# its max-pool. The last convolution's own output, before that pool, has cells half as wide and
# high; block 4's output has cells of that same size, one convolution fewer from the decision, and
# block 3's are finer still, with less class-specific features. The same three numbers for each:

# %% tags=["hide-input"]
rows, layer_masses = [], []
BEFORE_POOL = "features.4.1"  # block 5's ReLU: the last convolution's output, before the max-pool
for number, name in [(5, None), (5, BEFORE_POOL), (4, "features.3"), (3, "features.2")]:
    settings = GradCamSettings(layer=name)
    result = gradcam if name is None else explain_dataset(model, images, test, "gradcam", PROFILE, settings,
                                                          device=device, progress=False)
    block_mass = relevance_mass(result.maps, diagnostic)
    label = f"block {number}" + (" before its max-pool" if name == BEFORE_POOL else "")
    layer_masses.append(pd.DataFrame({"map": label, "bird": birds, "score": block_mass}))
    cell_rows, cell_cols = layer_stride(model, model.get_submodule(name) if name else model.last_conv_block)
    rows.append({"block": number, "layer": {None: "last_conv_block (after its max-pool)",
                                            BEFORE_POOL: f"{BEFORE_POOL} (before the max-pool)"}.get(name, name),
                 "cell (Hz x ms)": f"{cell_rows * hz_per_row:.0f} x {cell_cols * ms_per_column:.0f}",
                 "all-zero maps": result.all_zero.mean(), "median relevance mass": np.nanmedian(block_mass),
                 # every bird counts once, as in the comparison below (an all-zero map has no mass)
                 "mean over the birds": layer_masses[-1].groupby("bird")["score"].mean().mean(),
                 "mass / area": np.nanmedian(block_mass) / np.median(area), "map": label})
layers = pd.DataFrame(rows)
display(layers.drop(columns="map").style.format({"all-zero maps": "{:.0%}", "median relevance mass": "{:.1%}",
                                                 "mean over the birds": "{:.1%}", "mass / area": "{:.1f}"})
        .hide(axis="index"))
wrenlib.record_result(PROFILE, "gradcam_layers",
                      layers.set_index("layer")[["all-zero maps", "median relevance mass", "mean over the birds"]]
                      .round(4).to_dict(orient="index"), glue=False)
earlier = layers.loc[(layers["block"] < 5) & (layers["all-zero maps"] > 0), "block"].astype(int).tolist()
if worst_share >= 0.1:
    zero_text = (f"For clips predicted {worst_zero}, {worst_share:.0%} of the maps are all zero: after the ReLU "
                 "nothing is left.")
else:
    zero_text = ((f"Here at most {worst_share:.0%} of the maps of either dialect are all zero" if worst_share > 0
                  else "Here no map of the last block is all zero")
                 + (f"; the layer table below shows all-zero maps at block{'s' if len(earlier) > 1 else ''} "
                    f"{' and '.join(map(str, sorted(earlier)))}." if earlier else "."))
glue("gradcam_zero_text", Markdown(zero_text), display=False)
# the layer with the highest mean relevance mass over the birds, set against every other layer bird by bird
# (an all-zero map has no relevance mass and is left out; Holm over the three comparisons)
by_layer = pd.concat(layer_masses, ignore_index=True)
bird_means = layers.set_index("map")["mean over the birds"]  # the table's column
top = bird_means.idxmax()
top_family = decide_family(paired_comparisons(by_layer, {top: [m for m in bird_means.index if m != top]}, unit="bird"))
top_outcome = outcomes_per_map(top_family)[top]
tied = [row["against"] for row in top_family.to_dict("records") if row["result"] != "won"]
median_top = layers.loc[layers["median relevance mass"].idxmax(), "map"]
glue("gradcam_best_text", Markdown(
    (f"Of these, {top} puts the most of its map on the diagnostic elements (mean over the birds "
     f"{bird_means[top]:.1%}), beating every other layer bird by bird (paired t-tests, Holm-adjusted)."
     if top_outcome == "won" else
     f"Of these, {top} has the highest mean relevance mass over the birds ({bird_means[top]:.1%}), but bird "
     f"by bird it is not told apart from {listing(tied)} (paired t-tests, Holm-adjusted).")
    + ("" if median_top == top else
       f" The median over clips ranks {median_top} first instead: it weighs a bird with many clips more and "
       "says nothing of how the birds' masses pair up, so the book goes by the comparison bird by bird.")),
    display=False)

# %% [markdown]
# {glue:md}`gradcam_best_text` The book keeps the last block's output as the default
# (`GradCamSettings(layer=None)`) in every later chapter; the widget below shows the others, and
# `GradCamSettings(layer=...)` takes any module's name.
#
# ## Right and wrong answers, both dialects
#
# For each dialect: the clip the model gets right most confidently and, where there is one, the
# clip it gets wrong most confidently. Listen to each while you look at its map.

# %% tags=["hide-input"]
display(attribution_gallery(images, test, probabilities, gradcam.normalised(), "Grad-CAM"))

# %% [markdown]
# ## Settings
#
# What the maps in this book used, as `wrenlib.explain.GradCamSettings` records them (the cache
# key includes them):

# %% tags=["hide-input"]
settings_table = pd.DataFrame([
    ("layer", "last_conv_block (block 5: conv, ReLU, max-pool), read after the pool",
     "the paper's 'last convolutional layer'; before the pool: layer table above"),
    ("relu", str(GradCamSettings().relu), "only evidence for the class remains"),
    ("interpolation", GradCamSettings().interpolation, "cells stretched over the pixels they cover, blended at their borders"),
    ("target", "the predicted class", "the book's choice: the paper does not say"),
    ("normalisation", "positive part / maximum per map", "wrenlib.explain.normalise_maps"),
    ("implementation", "captum.attr.LayerGradCam + wrenlib.explain.cells_to_pixels", "checked by hand above"),
], columns=["setting", "value", "why"])
display(settings_table.style.hide(axis="index"))

# %% [markdown]
# ## Try it
#
# Browse the explained clips — the same {glue:text}`explained_clip_count` test clips that every
# method in chapters 04–07 explains, half of each dialect, drawn round its song types and birds
# in turn (`wrenlib.explain.explained_clips`) so that no one type makes most of them — and the
# layer. Maps come from the cache or are computed once and cached.
# (The controls run in Jupyter or Colab; this page shows their first setting.)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two panels for one explained clip: left its spectrogram image with the diagnostic mask outlined; right the Grad-CAM map over it, yellow (weak) to dark red (strong), with a colour bar."}}
glue("explained_clip_count", len(explained), display=False)
fig, _ = explanation_figure(model, images, int(explained[0]), "gradcam", PROFILE, device)
plt.show()

# %% tags=["remove-output"]
explanation_browser(model, images, explained, "gradcam", PROFILE,
                    {"layer": [None, BEFORE_POOL, "features.3", "features.2"]}, device)

# %% [markdown]
# ## Exercises
#
# 1. Grad-CAM explains the class you ask for. Explain the first explained clip for the dialect
#    the model did **not** predict. Is there evidence *against* the prediction in the last block,
#    or is the map all zero?
# 2. Explain the same clip at conv block 3 (`GradCamSettings(layer="features.2")`) and compare
#    its relevance mass on the diagnostic mask with the last block's.
#
# Solutions (click to show):

# %% tags=["hide-cell"] mystnb={"image": {"alt": "Three Grad-CAM maps of one clip, yellow to dark red over its spectrogram with the diagnostic mask outlined: for the predicted dialect, for the other dialect, and at conv block 3."}}
from wrenlib.explain import GradCamSettings, all_zero_maps, explain, normalise_maps
from wrenlib.metrics import relevance_mass

index = int(explained[0])
picture, mask = images.image(index), images.masks(index)["diagnostic"]
predicted = int(explain(model, picture[None], "gradcam", device=device).targets[0])
maps = {f"for {DIALECTS[t]}": normalise_maps(explain(model, picture[None], "gradcam", targets=[t], device=device).maps)
        for t in (predicted, 1 - predicted)}
maps["block 3"] = normalise_maps(explain(model, picture[None], "gradcam", settings=GradCamSettings(layer="features.2"),
                                         device=device).maps)
fig, axes = plt.subplots(1, 3, figsize=(13, 2.8), sharey=True)
for ax, (name, values) in zip(axes, maps.items()):
    plot_attribution(picture, values[0], ax=ax, mask=mask, front_end=images.front_end,
                     title=f"{name}: mass {relevance_mass(values, mask[None])[0]:.2f}"
                           + (" (all zero)" if all_zero_maps(values)[0] else ""))
fig.tight_layout()
plt.show()
