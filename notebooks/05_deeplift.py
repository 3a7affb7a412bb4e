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
# # DeepLIFT: contributions against a reference
#
# DeepLIFT {cite}`shrikumar2017deeplift` explains a difference: how much each pixel contributes to
# the change of the output between the image $x$ and a reference image $x_0$. Every unit passes
# the change back to its inputs in proportion to their changes — for a ReLU the *rescale rule*
# uses the multiplier $m = \Delta y / \Delta x$ instead of the gradient — and the contributions
# add up to the difference they explain:
#
# $$\sum_i C_i = f(x) - f(x_0) \qquad \text{(summation to delta).}$$
#
# The paper's reference was a white image {cite}`faruqui2025explainability`. The reference
# decides what "no evidence" means, so this chapter spends most of its time on it.

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
from captum.attr import LayerDeepLift
from IPython.display import Markdown, display
from myst_nb import glue

import wrenlib
from wrenlib.explain import (
    BASELINES,
    DeepLiftSettings,
    deeplift_baselines,
    deeplift_network,
    explain,
    explain_dataset,
    explained_clips,
)
from wrenlib.metrics import (
    dialect_gap_text,
    map_correlation,
    mask_area,
    paired_comparison,
    points_text,
    relevance_mass,
    share_text,
)


def bird_by_bird(result, against=""):
    """A paired comparison over the birds as text: its difference in points, interval and reading."""
    return (f"{points_text(result['difference'], result['low'], result['high'])}{against} ({result['n']} birds: "
            + {"won": "more", "lost": "less", "undecided": "not told apart"}[result["result"]] + ")")
from wrenlib.plotting import attribution_colorbar, plot_attribution
from wrenlib.surrogate import DIALECTS
from wrenlib.training import predict
from wrenlib.widgets import attribution_gallery, clip_label, explanation_browser, explanation_figure

profile, device, model, images = wrenlib.start_chapter(PROFILE, SEED)  # seeds, device, trained CNN
test = images.split_indices("test")
probabilities = predict(model, images, test, device)
predicted, truth = probabilities.argmax(1), images.labels[test]
explained = explained_clips(images, profile.explain_clips, seed=SEED)
diagnostic = images.stacked_masks(test)
print(f"profile {profile.name!r}: {len(test)} test clips, {len(explained)} of them explained by every method; "
      f"device {wrenlib.describe_device(device)}")

# %% [markdown]
# ## The rescale rule by hand
#
# The network's dense head — flatten, 512 units, ReLU, 1,024 units, ReLU, 2 logits — is small
# enough to do by hand. Take the last block's output for the clip ($h$) and for the reference
# ($h_0$); each ReLU's multiplier is the ratio of its output change to its input change; chaining
# the multipliers back gives each feature's contribution. captum's `LayerDeepLift` on the same
# layer must agree, and the contributions must sum to the change of the logit:

# %%
standardise, network = deeplift_network(model)  # after the standardisation; ReLUs and max-pools apart (below)
clip = int(test[np.argmax(probabilities[:, 0])])      # the clip the model is surest is Eastern
x = torch.from_numpy(images.image(clip))[None, None].to(device)
x0 = deeplift_baselines(x, DeepLiftSettings(baseline="white"))
target = int(model(x).argmax())

with torch.no_grad():
    h, h0 = model.features(standardise(x)).flatten(1), model.features(standardise(x0)).flatten(1)
    dense = [layer for layer in model.classifier if isinstance(layer, torch.nn.Linear)]
    multiplier, a, a0, chain = None, h, h0, []
    for linear in dense[:-1]:
        z, z0 = linear(a), linear(a0)
        relu_z, relu_z0 = torch.relu(z), torch.relu(z0)
        slope = torch.where((z - z0).abs() > 1e-9, (relu_z - relu_z0) / (z - z0), (z > 0).float())  # rescale rule
        chain.append((linear.weight, slope))
        a, a0 = relu_z, relu_z0
    multiplier = dense[-1].weight[target]                 # d logit / d last hidden units
    for weight, slope in reversed(chain):
        multiplier = (multiplier * slope[0]) @ weight     # back through ReLU, then the linear layer
    by_hand = (h - h0)[0] * multiplier                    # contribution = change x multiplier

library = LayerDeepLift(network, model.classifier[0]).attribute(
    standardise(x), baselines=standardise(x0), target=target)[0].flatten().detach()
with torch.no_grad():
    change = float(model(x)[0, target] - model(x0)[0, target])
print(f"largest difference to captum: {float((by_hand - library).abs().max()):.1e}; "
      f"sum of contributions {float(by_hand.sum()):.4f} vs f(x) - f(x0) = {change:.4f}")

# %% tags=["hide-input"]
wrenlib.record_result(PROFILE, "deeplift_hand_vs_captum_max_difference", float((by_hand - library).abs().max()))

# %% [markdown]
# With the reference chosen, the rest of the network (five blocks of convolutions, ReLUs and
# max-pooling) is captum's `DeepLift`; `wrenlib.explain` calls it through one function:

# %%
white = explain(model, x, "deeplift", targets=[target], settings={"baseline": "white"})
print(f"sum over pixels {white.maps.sum():.4f}, f(x) - f(x0) = {change:.4f}, "
      f"convergence delta {white.extras['convergence_delta'][0]:+.4f}")

# %% [markdown]
# The sum over the pixels is f(x) − f(x0) up to the *convergence delta* that captum reports,
# which is rounding: DeepLIFT's rules are exact for this network. That holds only for the network
# `wrenlib.explain.deeplift_network` hands captum, the model's own modules with a no-op between
# each block's ReLU and its max-pool. captum 0.9.0 applies each rule in a hook on its module, and
# where a ReLU feeds straight into a max-pool the ReLU's rule read its gradient before the
# max-pool's rule had replaced it (the divergence reported in captum issue 1104): the maps then
# missed the change they explain. The table of references below gives the median relative delta
# of each reference's maps over the explained clips.
#
# ## Which reference?
#
# Four references: the paper's **white** image, a **black** image, the image's own empty
# **background** (its median level: black or white), and a **blurred** copy of the image (the
# song smeared out, its energy kept). Here is each for one clip on a black and one on a white
# background:

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two rows, one clip on a black and one on a white background: its spectrogram with the diagnostic mask, then DeepLIFT maps, yellow to dark red, for the white, black, background and blurred references."}}
shown = [int(explained[np.flatnonzero(images.backgrounds[explained] == colour)[0]]) for colour in ("black", "white")]
fig, axes = plt.subplots(len(shown), 1 + len(BASELINES), figsize=(16, 2.9 * len(shown)), sharey=True,
                         layout="constrained")  # room for each row's titles and the colour bar
maps_by_baseline = {}
for baseline in BASELINES:
    maps_by_baseline[baseline] = explain(model, images.images(shown), "deeplift", settings={"baseline": baseline})
for row, index in enumerate(shown):
    plot_attribution(images.image(index), None, ax=axes[row, 0], mask=images.masks(index)["diagnostic"],
                     front_end=images.front_end, title=clip_label(images, index))
    for column, baseline in enumerate(BASELINES, start=1):
        result = maps_by_baseline[baseline]
        plot_attribution(images.image(index), result.normalised()[row], ax=axes[row, column],
                         mask=images.masks(index)["diagnostic"], front_end=images.front_end,
                         title=f"reference: {baseline}")
        axes[row, column].set_ylabel("")
attribution_colorbar(fig, axes)
plt.show()

# %% [markdown]
# The white, black and background columns are the same picture — and not by accident. Our CNN's
# first module subtracts each image's own background level (chapter 03), so *every* constant
# image reaches the convolutions as the same all-zero input. For this network the paper's white
# reference means "an empty spectrogram", whatever the image's background.
#
# What if the network did not re-centre? For a black-background image we can ask exactly that:
# replace the per-image centring by a fixed one at 0 — the black level — and the network's output
# for the image does not change, but the white reference now reaches it as a bright page:

# %%
import copy

fixed = copy.deepcopy(model)
fixed.standardise.per_image = False      # subtract a fixed 0 instead of each image's own level
fixed.standardise.mean.fill_(0.0)
on_black = explained[images.backgrounds[explained] == "black"]
black_masks = images.stacked_masks(on_black)
same_output = torch.allclose(fixed(torch.from_numpy(images.images(on_black))[:, None].to(device)),
                             model(torch.from_numpy(images.images(on_black))[:, None].to(device)), atol=1e-5)
naive = explain(fixed, images.images(on_black), "deeplift", settings={"baseline": "white"})
centred = explain(model, images.images(on_black), "deeplift", settings={"baseline": "white"})
empty = images.images(on_black) == 0
print(f"same outputs on the {len(on_black)} black images: {same_output}")
for name, result in [("re-centring network", centred), ("fixed-centre network", naive)]:
    positive = np.clip(result.maps, 0, None)
    print(f"{name} ({len(on_black)} explained clips on black): relevance on the diagnostic mask "
          f"{np.nanmedian(relevance_mass(result.maps, black_masks)):.1%}, "
          f"on empty pixels {np.median((positive * empty).sum((1, 2)) / positive.sum((1, 2))):.1%}")

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two DeepLIFT maps with the white reference for one black-background clip, yellow to dark red over it with the diagnostic mask outlined: left the book's re-centring network, right a fixed centre at black."}}
positive = np.clip(naive.maps, 0, None)
wrenlib.record_result(PROFILE, "deeplift_white_fixed_centre_empty_share",
                      float(np.median((positive * empty).sum((1, 2)) / positive.sum((1, 2)))))
wrenlib.record_result(PROFILE, "deeplift_white_fixed_centre_relevance_mass",
                      float(np.nanmedian(relevance_mass(naive.maps, black_masks))))
fig, axes = plt.subplots(1, 2, figsize=(12, 3), sharey=True)
for ax, (name, result) in zip(axes, [("re-centring network (ours)", centred), ("fixed centre at black", naive)]):
    plot_attribution(images.image(int(on_black[0])), result.normalised()[0], ax=ax,
                     mask=images.masks(int(on_black[0]))["diagnostic"], front_end=images.front_end,
                     title=f"white reference, {name}")
axes[1].set_ylabel("")
plt.show()

# %% [markdown]
# Without re-centring, the white reference puts a median
# {glue:text}`deeplift_white_fixed_centre_empty_share:.0%` of the positive relevance on empty
# pixels, and {glue:text}`deeplift_white_fixed_centre_relevance_mass:.1%` on the diagnostic
# elements: "this pixel is darker than white" becomes the explanation. A white reference is an
# empty spectrogram only for a white-background image, or for a network that removes the
# background level first, as ours does. Over the explained clips, the four references compare
# like this:

# %% tags=["hide-input"]
rows, reference_maps, masses = [], {}, []
explained_masks = images.stacked_masks(explained)
explained_birds = images.clips["individual"].to_numpy()[explained]
for baseline in BASELINES:
    result = explain_dataset(model, images, explained, "deeplift", PROFILE, {"baseline": baseline},
                             device=device, progress=False)
    reference_maps[baseline] = result.maps
    masses.append(pd.DataFrame({"map": baseline, "bird": explained_birds,
                                "score": relevance_mass(result.maps, explained_masks)}))
    with torch.no_grad():
        x_batch = torch.from_numpy(images.images(explained))[:, None].to(device)
        differences = (model(x_batch) - model(deeplift_baselines(x_batch, DeepLiftSettings(baseline=baseline))))
        differences = differences[np.arange(len(explained)), result.targets].cpu().numpy()
    rows.append({
        "reference": baseline,
        "max |map - white map|": float(np.abs(result.maps - reference_maps["white"]).max()),
        "Pearson r with white": np.median(map_correlation(result.maps, reference_maps["white"])),
        "median relevance mass": np.nanmedian(relevance_mass(result.maps, explained_masks)),
        "median |delta| / |f(x) - f(x0)|": np.median(np.abs(result.extras["convergence_delta"]) / np.abs(differences)),
    })
baselines_table = pd.DataFrame(rows)
display(baselines_table.style.format({"max |map - white map|": "{:.1e}", "Pearson r with white": "{:.2f}",
                                      "median relevance mass": "{:.1%}", "median |delta| / |f(x) - f(x0)|": share_text})
        .hide(axis="index"))
table = baselines_table.set_index("reference")
constant_identical = bool(table.loc[["black", "background"], "max |map - white map|"].max() < 1e-5)
wrenlib.record_result(PROFILE, "deeplift_constant_baselines_identical", constant_identical)
wrenlib.record_result(PROFILE, "deeplift_blurred_correlation_with_white", float(table.loc["blurred", "Pearson r with white"]))
wrenlib.record_result(PROFILE, "deeplift_relevance_mass_by_baseline", table["median relevance mass"].round(4).to_dict(), glue=False)
wrenlib.record_result(PROFILE, "deeplift_relative_delta_white", float(table.loc["white", "median |delta| / |f(x) - f(x0)|"]))
glue("deeplift_relative_delta_white_text", share_text(table.loc["white", "median |delta| / |f(x) - f(x0)|"]),
     display=False)
# the blurred reference against white on the same clips, bird by bird (a bird's clips averaged)
blurred_vs_white = paired_comparison(pd.concat(masses, ignore_index=True), "blurred", "white", unit="bird")
glue("deeplift_blurred_vs_white_text", Markdown(f"bird by bird, {bird_by_bird(blurred_vs_white)}"), display=False)
wrenlib.record_result(PROFILE, "deeplift_blurred_relevance_mass", float(table.loc["blurred", "median relevance mass"]))
wrenlib.record_result(PROFILE, "deeplift_white_relevance_mass_explained", float(table.loc["white", "median relevance mass"]))
glue("deeplift_explained_count", len(explained), display=False)
glue("deeplift_identical_text", Markdown("identical" if constant_identical else "**not** identical"), display=False)

# %% [markdown]
# The three constant references give {glue:md}`deeplift_identical_text` maps. The blurred
# reference asks a different question — "what does the sharp structure add to the smeared
# energy?" — and its maps correlate with the white reference's at a median Pearson r of
# {glue:text}`deeplift_blurred_correlation_with_white:.2f` (`wrenlib.metrics.map_correlation`);
# it keeps
# {glue:text}`deeplift_blurred_relevance_mass:.1%` of the relevance on the diagnostic elements
# against {glue:text}`deeplift_white_relevance_mass_explained:.1%` for white (medians over the
# {glue:text}`deeplift_explained_count` explained clips; {glue:md}`deeplift_blurred_vs_white_text`). The convergence delta
# is a median {glue:text}`deeplift_relative_delta_white_text` of the change it explains.
#
# ## Every test clip, with the paper's reference

# %%
deeplift = explain_dataset(model, images, test, "deeplift", PROFILE, {"baseline": "white"}, device=device)
mass = relevance_mass(deeplift.maps, diagnostic)
area = mask_area(diagnostic)

# %% tags=["hide-input"]
per_clip = pd.DataFrame({"dialect": np.array(DIALECTS)[predicted], "all zero": deeplift.all_zero,
                         "relevance mass": mass, "mask area": area})
summary = per_clip.groupby("dialect").agg(clips=("all zero", "size"), all_zero_share=("all zero", "mean"),
                                          relevance_mass=("relevance mass", "median"), mask_area=("mask area", "median"))
summary.index.name = "predicted dialect"
display(summary.rename(columns={"all_zero_share": "all-zero maps", "relevance_mass": "median relevance mass",
                                "mask_area": "median mask area"})
        .style.format({"all-zero maps": "{:.0%}", "median relevance mass": "{:.1%}", "median mask area": "{:.1%}"}))
wrenlib.record_result(PROFILE, "deeplift_relevance_mass_median", float(np.nanmedian(mass)))
glue("deeplift_test_count", len(test), display=False)
wrenlib.record_result(PROFILE, "deeplift_mass_over_area", float(np.nanmedian(mass) / np.median(area)))
for dialect, row in summary.iterrows():
    wrenlib.record_result(PROFILE, f"deeplift_relevance_mass_{dialect.lower()}", float(row["relevance_mass"]))
# chapter 04's Grad-CAM maps of the same clips (its cache, or made now if this chapter runs first)
gradcam_masses = relevance_mass(explain_dataset(model, images, test, "gradcam", PROFILE, device=device,
                                                progress=False).maps, diagnostic)
gradcam_mass = np.nanmedian(gradcam_masses)
test_birds = images.clips["individual"].to_numpy()[test]
against_gradcam = paired_comparison(pd.DataFrame({"map": np.repeat(["DeepLIFT", "Grad-CAM"], len(test)),
                                                  "bird": np.tile(test_birds, 2),
                                                  "score": np.concatenate([mass, gradcam_masses])}),
                                    "DeepLIFT", "Grad-CAM", unit="bird")
glue("deeplift_vs_gradcam", Markdown(
    f"Grad-CAM's last block reached {gradcam_mass:.1%} on the same clips (chapter 04); bird by bird DeepLIFT's "
    f"share is {bird_by_bird(against_gradcam, ' against Grad-CAM')}"), display=False)
glue("deeplift_dialect_gap", Markdown(dialect_gap_text(mass, per_clip["dialect"], images.clips["individual"].to_numpy()[test])),
     display=False)

# %% [markdown]
# With the white reference, over all {glue:text}`deeplift_test_count` test clips, a median
# {glue:text}`deeplift_relevance_mass_median:.1%` of each map's
# positive relevance lies on the diagnostic elements — {glue:text}`deeplift_mass_over_area:.1f`
# times the mask's area; {glue:md}`deeplift_vs_gradcam`. {glue:md}`deeplift_dialect_gap` DeepLIFT works at the pixel, so it can
# outline a trill note by note where Grad-CAM sees one coarse cell. Chapter 08 asks whether that
# sharpness is also *right* more often, with confidence intervals and reference rows.
#
# ## Right and wrong answers, both dialects

# %% tags=["hide-input"]
display(attribution_gallery(images, test, probabilities, deeplift.normalised(), "DeepLIFT (white reference)"))

# %% [markdown]
# ## Settings

# %% tags=["hide-input"]
settings_table = pd.DataFrame([
    ("baseline", "white (the paper's); black, background, blurred compared above", "DeepLiftSettings.baseline"),
    ("blur_sigma", f"{DeepLiftSettings().blur_sigma:.0%} of the image height", "blurred reference only"),
    ("where DeepLIFT starts", "after the model's standardisation; the reference is standardised the same way",
     "keeps summation to delta for the whole model"),
    ("rules", "rescale for ReLU, captum's max-pool rule", "captum.attr.DeepLift defaults; each ReLU and max-pool "
     "kept apart (wrenlib.explain.deeplift_network)"),
    ("target", "the predicted class's logit", "the book's choice: the paper does not say"),
    ("normalisation", "positive part / maximum per map", "wrenlib.explain.normalise_maps"),
], columns=["setting", "value", "note"])
display(settings_table.style.hide(axis="index"))

# %% [markdown]
# ## Try it
#
# The explained clips with each reference (maps from the cache).
# (The controls run in Jupyter or Colab; this page shows their first setting.)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two panels for one explained clip: left its spectrogram image with the diagnostic mask outlined; right the DeepLIFT map (white reference) over it, yellow (weak) to dark red (strong), with a colour bar."}}
fig, _ = explanation_figure(model, images, int(explained[0]), "deeplift", PROFILE, device, baseline="white")
plt.show()

# %% tags=["remove-output"]
explanation_browser(model, images, explained, "deeplift", PROFILE, {"baseline": list(BASELINES)}, device)

# %% [markdown]
# ## Exercises
#
# 1. Check summation to delta yourself. For the first explained clip and the white reference,
#    add up the DeepLIFT map and compare the sum with the model's output (logit) for the
#    explained class on the clip minus its output on an all-white image.
# 2. Explain the same clip against the black reference. Why is the map the same as against the
#    white one for this model? (Hint: the model's first module.)
#
# Solutions (click to show):

# %% tags=["hide-cell"]
from wrenlib.explain import explain

index = int(explained[0])
picture = images.image(index)
white = explain(model, picture[None], "deeplift", settings={"baseline": "white"}, device=device)
target = int(white.targets[0])
with torch.no_grad():
    logits = model(torch.from_numpy(np.stack([picture, np.ones_like(picture)])[:, None]).to(device))
difference = float(logits[0, target] - logits[1, target])
print(f"sum of the map {white.maps[0].sum():+.4f}; f(x) - f(white) {difference:+.4f}; "
      f"captum's convergence delta {float(white.extras['convergence_delta'][0]):+.2e}")
black = explain(model, picture[None], "deeplift", settings={"baseline": "black"}, device=device)
print(f"largest difference between the white- and black-reference maps: {np.abs(white.maps - black.maps).max():.2e} "
      "- the model subtracts each image's own background level first, so both references become the same zero image")
