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
# # LIME: a linear model of switched-off regions
#
# LIME {cite}`ribeiro2016lime` treats the network as a black box. It cuts the image into
# *interpretable features*, switches random subsets of them off, asks the model for each
# perturbed image, and fits a weighted linear model that predicts the model's answer from which
# features were on. Its coefficients are the explanation. Perturbations close to the original
# (few features off) weigh more:
#
# $$\hat w = \arg\min_w \sum_s \pi(z_s)\,\big(f(x_{z_s}) - w^\top z_s\big)^2 + \lambda\lVert w\rVert^2,
#   \qquad \pi(z) = \sqrt{\exp\!\big(-d(z, \mathbf 1)^2/\sigma^2\big)} = \exp\!\big(-d(z, \mathbf 1)^2/2\sigma^2\big),$$
#
# with $z_s \in \{0,1\}^K$ the on/off pattern of sample $s$ and $d$ the cosine distance (the
# square root is the `lime` package's kernel, which the book follows). The paper
# found that LIME "sometimes marked empty regions" {cite}`faruqui2025explainability`. This chapter
# shows why — the features — and measures it.

# %% tags=["remove-cell"]
import subprocess, sys  # noqa: E401
if "google.colab" in sys.modules:  # on Colab, install the book's library first (make install did it elsewhere)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "wrenlib[book] @ git+https://github.com/wrenbook/wrenbook"],
                   check=True)

# %% tags=["parameters"]
PROFILE = "quick"
SEED = 0

# %% tags=["hide-input"]
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from myst_nb import glue
from scipy import stats
from skimage.segmentation import find_boundaries
from sklearn.linear_model import Ridge

import wrenlib
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import Lime

from wrenlib.explain import (
    SEGMENTATIONS,
    LimeSettings,
    captum_lime,
    explain,
    explain_dataset,
    explained_clips,
    feature_means,
    lime_segments,
    lime_similarity,
    make_settings,
    settings_for_profile,
)
from wrenlib.bench import image_sized_operations
from wrenlib.metrics import listing, mask_area, mean_with_interval, relevance_mass
from wrenlib.plotting import plot_attribution
from wrenlib.surrogate import DIALECTS
from wrenlib.training import predict
from wrenlib.widgets import clip_label, explanation_browser, explanation_figure, method_gallery

profile, device, model, images = wrenlib.start_chapter(PROFILE, SEED)  # seeds, device, trained CNN
explained = explained_clips(images, profile.explain_clips, seed=SEED)
probabilities = predict(model, images, explained, device)
masks = images.stacked_masks(explained)
settings = settings_for_profile("lime", PROFILE, SEED)  # the profile's samples and precision, the chapter's seed
print(f"profile {profile.name!r}: {len(explained)} explained test clips, {settings.n_samples} perturbations each; "
      f"device {wrenlib.describe_device(device)}")

# %% [markdown]
# ## The features
#
# The `lime` package cuts images with quickshift, a superpixel method made for photographs. On a
# spectrogram a superpixel follows brightness: it may join a note with the empty space around it,
# or cut the empty page into large regions that carry no sound at all. The book's default is a
# **time-frequency grid** — {glue:text}`lime_grid_rows` frequency bands by
# {glue:text}`lime_grid_cols` time slices — so that every feature means "this band at this time".
# SLIC superpixels are the third option.

# %% tags=["hide-input"] mystnb={"image": {"alt": "One clip's spectrogram three times, diagnostic mask outlined, each with the borders of one LIME segmentation's features drawn in yellow: a time-frequency grid, quickshift and SLIC."}}
clip = int(explained[0])
image = images.image(clip)
fig, axes = plt.subplots(1, 3, figsize=(15, 3), sharey=True)
for ax, segmentation in zip(axes, SEGMENTATIONS):
    segments = lime_segments(image, LimeSettings(segmentation=segmentation, seed=SEED))
    plot_attribution(image, None, ax=ax, mask=images.masks(clip)["diagnostic"], front_end=images.front_end,
                     title=f"{segmentation}: {segments.max() + 1} features")
    edges = np.ma.masked_where(~find_boundaries(segments), np.ones_like(image))
    ax.imshow(edges, cmap="autumn", alpha=0.9, aspect="auto", extent=(0, images.front_end.clip_seconds, 0,
              images.front_end.sample_rate_hz / 2000), interpolation="nearest")
    ax.set_ylabel("frequency (kHz)" if ax is axes[0] else "")
plt.show()
glue("lime_grid_rows", settings.grid[0], display=False)
glue("lime_grid_cols", settings.grid[1], display=False)

# %% [markdown]
# ## LIME by hand
#
# Sampling, perturbing, weighting and fitting, for one clip, in a few lines. A switched-off
# feature takes the image's empty background level (its median pixel), so "off" means "silent":

# %%
segments = lime_segments(image, settings)
n_features = segments.max() + 1
target = int(probabilities[0].argmax())
level = float(np.median(image))
rng = np.random.default_rng(SEED)
z = rng.integers(0, 2, size=(settings.n_samples, n_features))
z[0] = 1                                                   # the original image is one sample

answers = []
with torch.no_grad():
    for first in range(0, len(z), settings.batch_size):
        on = z[first:first + settings.batch_size][:, segments]       # (batch, H, W): is the pixel's feature on?
        perturbed = np.where(on, image, level).astype(np.float32)
        answers.append(torch.softmax(model(torch.from_numpy(perturbed)[:, None].to(device)), 1)[:, target].cpu().numpy())
answers = np.concatenate(answers)

distance = 1 - z.sum(1) / np.sqrt(np.maximum(z.sum(1), 1) * n_features)   # cosine distance to all-on
kernel = np.sqrt(np.exp(-distance**2 / settings.kernel_width**2))                # the lime package's weight
ridge = Ridge(alpha=settings.ridge_alpha).fit(z, answers, sample_weight=kernel)
by_hand = ridge.coef_[segments]                                             # each pixel gets its feature's weight

# the library on the very same samples: captum's Lime with the samples replayed, wrenlib's kernel
replay = iter(torch.from_numpy(z).float()[:, None].to(device))  # on the model's device, like the mask
same_samples = Lime(lambda batch: torch.softmax(model(batch), 1), interpretable_model=SkLearnRidge(alpha=settings.ridge_alpha),
                    similarity_func=lime_similarity(settings.kernel_width),
                    perturb_func=lambda *args, **kwargs: next(replay))
library = same_samples.attribute(torch.from_numpy(image)[None, None].to(device), target=target, baselines=level,
                                 feature_mask=torch.from_numpy(segments)[None, None].to(device),
                                 n_samples=settings.n_samples, perturbations_per_eval=settings.batch_size)
library = library[0, 0].detach().cpu().numpy()
print(f"{n_features} features, {settings.n_samples} samples; largest difference between the hand-made and "
      f"captum's map on the same samples: {np.abs(by_hand - library).max():.1e} (largest weight {np.abs(by_hand).max():.1e})")

# %% [markdown]
# The same samples give the same map. Different samples do not: LIME is a random method. Two
# runs of `wrenlib.explain` on this clip that differ only in their seed:

# %%
runs = [explain(model, image[None], "lime", targets=[target], settings={**settings.__dict__, "seed": seed}).maps[0]
        for seed in (SEED, SEED + 1)]
weights = [feature_means(run, segments) for run in runs]  # a LIME map is one weight per feature
rho = stats.spearmanr(*weights)[0]
print(f"feature weights of two seeds: Spearman ρ = {rho:.2f}; top-5 features shared: "
      f"{len(set(np.argsort(-weights[0])[:5]) & set(np.argsort(-weights[1])[:5]))} of 5")

# %% tags=["hide-input"] mystnb={"image": {"alt": "Four panels of one clip: its spectrogram with the diagnostic mask, then signed LIME maps, red for and blue against the predicted dialect, computed by hand and by the library with two seeds."}}
wrenlib.record_result(PROFILE, "lime_hand_vs_captum_max_difference", float(np.abs(by_hand - library).max()))
wrenlib.record_result(PROFILE, "lime_seed_agreement_spearman", float(rho))
glue("lime_samples_glued", settings.n_samples, display=False)
glue("lime_features_glued", int(n_features), display=False)
fig, axes = plt.subplots(1, 4, figsize=(19, 3), sharey=True)
plot_attribution(image, None, ax=axes[0], mask=images.masks(clip)["diagnostic"], front_end=images.front_end,
                 title=clip_label(images, clip))
for ax, (name, result) in zip(axes[1:], [("by hand", by_hand), (f"seed {SEED}", runs[0]), (f"seed {SEED + 1}", runs[1])]):
    plot_attribution(image, result / max(np.abs(result).max(), 1e-12), ax=ax, mask=images.masks(clip)["diagnostic"],
                     front_end=images.front_end, signed=True, title=f"{name} (red: for {DIALECTS[target]}, blue: against)")
    ax.set_ylabel("")
plt.show()

# %% [markdown]
# The "by hand" panel and the first seed's panel differ although both use the same seed: the hand-made
# version draws its on/off patterns with NumPy, `wrenlib.explain` in captum's order, so they are
# different samples — the check above replayed the hand-made ones through captum and got the
# same map. With {glue:text}`lime_samples_glued` samples for {glue:text}`lime_features_glued` features,
# two seeds rank the features alike only to a Spearman ρ of
# {glue:text}`lime_seed_agreement_spearman:.2f`: much of a LIME map at this budget is sampling
# noise. More samples average it down (the `full` profile uses 1,000, the lime package's default), though a
# single clip and two seeds, as in the exercise below, are too few to show that reliably;
# chapter 10 measures stability for every method on several clips. The library version is
# captum's LIME, which batches the perturbations on the model's device; the `lime` package does
# the same job with a per-sample Python loop. Three implementations were timed on this clip:

# %% tags=["hide-input"]
from lime import lime_image

lime_image.tqdm = lambda iterable, *args, **kwargs: iterable  # lime 0.2 draws a progress bar it cannot turn off
evaluation_time = {"seconds": 0.0}


def probabilities_for_lime(batch):
    started = time.perf_counter()
    with torch.no_grad():
        out = torch.softmax(model(torch.from_numpy(batch[..., 0].astype(np.float32))[:, None].to(device)), 1)
    evaluation_time["seconds"] += time.perf_counter() - started
    return out.cpu().numpy()


started = time.perf_counter()
lime_image.LimeImageExplainer(random_state=SEED).explain_instance(
    image.astype(np.float64), probabilities_for_lime, labels=(target,), top_labels=None, hide_color=level,
    num_samples=settings.n_samples, batch_size=settings.batch_size, segmentation_fn=lambda _: segments,
    random_seed=SEED)
package_seconds = time.perf_counter() - started
package_share = evaluation_time["seconds"] / package_seconds
captum_own = captum_lime(model, image, target, settings, device=device)  # captum's Lime as it is, on our samples
captum = explain(model, image[None], "lime", targets=[target], settings=settings)
launches = {name: image_sized_operations(work, *image.shape) for name, work in [
    ("captum", lambda: captum_lime(model, image, target, settings, device=device)),
    ("wrenlib", lambda: explain(model, image[None], "lime", targets=[target], settings=settings))]}
timing = pd.DataFrame([
    {"implementation": "lime package (LimeImageExplainer)", "seconds": package_seconds, "model share": package_share,
     "operations on whole images": "—"},
    {"implementation": "captum Lime as it is", "seconds": captum_own.seconds,
     "model share": float(captum_own.extras["model_time_share"][0]), "operations on whole images": launches["captum"]},
    {"implementation": "captum LimeBase, images made per batch (wrenlib)", "seconds": captum.seconds,
     "model share": float(captum.extras["model_time_share"][0]), "operations on whole images": launches["wrenlib"]},
])
display(timing.style.format({"seconds": "{:.2f}", "model share": "{:.0%}"}).hide(axis="index"))
same_map = bool(np.array_equal(captum.maps, captum_own.maps))
wrenlib.record_result(PROFILE, "lime_package_seconds", package_seconds)
wrenlib.record_result(PROFILE, "lime_captum_seconds", captum.seconds)
wrenlib.record_result(PROFILE, "lime_captum_model_share", float(captum.extras["model_time_share"][0]))
wrenlib.record_result(PROFILE, "lime_captum_own_seconds", captum_own.seconds)
wrenlib.record_result(PROFILE, "lime_image_operations_captum", launches["captum"])
wrenlib.record_result(PROFILE, "lime_image_operations_wrenlib", launches["wrenlib"])
wrenlib.record_result(PROFILE, "lime_same_map_as_captum_lime", same_map)
glue("lime_same_map_text", Markdown("the same map to the last bit" if same_map else "**a different map** (" + (
    "a captum version that draws or weighs otherwise?" if wrenlib.runtime.backend_mode() == "deterministic" else
    f"this run computes in torch's `{wrenlib.runtime.backend_mode()}` mode, in which the GPU's kernels need not "
    "add up in the same order from one call to the next") + ")"), display=False)
overhead = 1 - float(captum.extras["model_time_share"][0])
glue("lime_overhead_text", Markdown(f"{overhead:.0%}, " + ("within that budget" if overhead <= 0.2 else
                                    "**over** that budget on this run (the share grows when the machine is busy)")),
     display=False)

# %% [markdown]
# "Model share" is the part of the time spent in the network itself; the rest is LIME's own
# bookkeeping — sampling, building the perturbed images, fitting. wrenlib draws all of an image's
# samples and their weights on the CPU first (`wrenlib.explain.LimeSampler`, the very samples
# captum's default sampler would draw), so that the loop never waits for a GPU. captum's `Lime`
# then builds each sample's image on the model's device, one at a time, and spreads the fitted
# weights back over the pixels one feature at a time. wrenlib gives captum's `LimeBase` the on/off
# patterns themselves and makes a whole batch's images in one step, inside the model's call. The
# last column counts the torch operations on whole images, as torch dispatches them
# (`wrenlib.bench.image_sized_operations`): {glue:text}`lime_image_operations_captum` against
# {glue:text}`lime_image_operations_wrenlib`. On a GPU each is a kernel launched over images,
# and a GPU shared by several jobs makes every launch wait its turn: the full profile's run kept
# on the Performance page says what share of LIME's time the model took on an H200, with
# captum's `Lime` before this change and with wrenlib's after it. Both give {glue:md}`lime_same_map_text`. The book's budget for that overhead
# is 20 %; here the model took {glue:text}`lime_captum_model_share:.0%` of wrenlib's LIME time, an
# overhead of {glue:md}`lime_overhead_text`.
#
# **In 16 bits.** LIME reads only the model's probabilities, so its forward passes can run in
# bfloat16 under `torch.autocast` (`LimeSettings.mixed_precision`, by the rule chapter 03's
# training follows: where the hardware computes bfloat16). Only the convolutions do: the dense
# head stays in float32 (`wrenlib.model.body_and_head`). LIME fits the *differences* between its
# samples' outputs, and a network whose logits barely follow the image — chapter 10's randomised
# networks — gave logits that bfloat16 rounded to one value for every sample, hence a constant
# map; the head's few products cost nothing in float32. Up to eight explained clips, each
# explained three times on this machine: in float32, in bfloat16 on the same samples, and in
# float32 with another seed. The last two are compared with the first by Spearman's ρ over the
# grid features:

# %% tags=["hide-input"]
from wrenlib.training import autocast_dtype

few = explained[:8]
pictures_few = images.images(few)
precision_runs = {}
for name, changes in [("float32", {"mixed_precision": "off"}), ("bfloat16", {"mixed_precision": "always"}),
                      ("float32, another seed", {"mixed_precision": "off", "seed": SEED + 1})]:
    precision_runs[name] = explain(model, pictures_few, "lime", settings=make_settings("lime", settings, **changes),
                                   device=device)
grid = lime_segments(pictures_few[0], settings)  # the same grid for every clip


def grid_rho(a, b):
    return np.array([stats.spearmanr(feature_means(x, grid), feature_means(y, grid))[0] for x, y in zip(a, b)])


rho_16 = grid_rho(precision_runs["float32"].maps, precision_runs["bfloat16"].maps)
rho_seed = grid_rho(precision_runs["float32"].maps, precision_runs["float32, another seed"].maps)
display(pd.DataFrame([
    {"run": "float32", "median ρ with float32": 1.0, "lowest ρ": 1.0, "seconds": precision_runs["float32"].seconds},
    {"run": "bfloat16, same samples", "median ρ with float32": np.median(rho_16), "lowest ρ": rho_16.min(),
     "seconds": precision_runs["bfloat16"].seconds},
    {"run": "float32, another seed", "median ρ with float32": np.median(rho_seed), "lowest ρ": rho_seed.min(),
     "seconds": precision_runs["float32, another seed"].seconds},
]).style.format({"median ρ with float32": "{:.4f}", "lowest ρ": "{:.4f}", "seconds": "{:.2f}"}).hide(axis="index"))
wrenlib.record_result(PROFILE, "lime_bfloat16_spearman_median", float(np.median(rho_16)))
wrenlib.record_result(PROFILE, "lime_another_seed_spearman_median", float(np.median(rho_seed)))
# the faster of the two float32 runs, which do the same work: the first call of all also pays for
# loading code, and one timing on a shared machine varies by more than the effect
wrenlib.record_result(PROFILE, "lime_bfloat16_speedup",
                      min(precision_runs["float32"].seconds, precision_runs["float32, another seed"].seconds)
                      / precision_runs["bfloat16"].seconds)
in_16 = autocast_dtype(device, settings.mixed_precision) is not None
glue("lime_precision_text", Markdown(
    f"This run's LIME maps (profile `{PROFILE}`, mixed precision `{settings.mixed_precision}`) are computed in "
    + ("**bfloat16**" if in_16 else "**float32**") + f" on {wrenlib.describe_device(device)}."), display=False)

# %% [markdown]
# In 16 bits a map keeps a median ρ of {glue:text}`lime_bfloat16_spearman_median:.4f` with
# float32's; with another seed, ρ falls to {glue:text}`lime_another_seed_spearman_median:.2f`. LIME's
# own sampling noise is far larger than its rounding, so the full profile lets 16 bits compute
# its maps where they are fast. Here the faster of the two float32 runs took
# {glue:text}`lime_bfloat16_speedup:.2f` times as long as bfloat16 (below 1 where bfloat16 was
# the slower: on a CPU without its instructions, which emulates it, and in the H200 run kept on
# the Performance page, beside three other jobs).
# {glue:md}`lime_precision_text`
#
# ## Does LIME mark empty regions?
#
# The paper's complaint, measured. A feature is *empty* when at least 95 % of its pixels are at
# the background level — no song energy above the −40 dB floor. For every segmentation: of the
# five features with the largest positive weight, how many are empty; beside it, how many of all
# the features are, which is what five features picked at random would hold (a spectrogram is
# mostly silence, so "LIME marks empty regions" means something only above that); and how much
# of the positive weight lies on the diagnostic elements.

# %% tags=["hide-input"]
def empty_top_share(maps, clips, segmentation, top=5):
    """Per clip, the share of the ``top`` most positive features that are (>= 95 %) empty
    background, and the share of all its features that are (a random pick's expectation)."""
    shares, chance = [], []
    for weights, index in zip(maps, clips):
        picture = images.image(int(index))
        features = lime_segments(picture, LimeSettings(segmentation=segmentation, seed=SEED))  # kept if made above
        value = feature_means(weights, features)
        empty = feature_means(picture == np.median(picture), features) >= 0.95
        best = np.argsort(-value)[:top]
        best = best[value[best] > 0]
        shares.append(empty[best].mean() if len(best) else np.nan)
        chance.append(empty.mean())
    return np.array(shares), np.array(chance)


compared = explained[: max(4, len(explained) // 2)]
rows, results = [], {}
for segmentation in SEGMENTATIONS:
    clips = explained if segmentation == "grid" else compared
    result = explain_dataset(model, images, clips, "lime", PROFILE, make_settings("lime", settings, segmentation=segmentation),
                             device=device, progress=False)
    results[segmentation] = result
    clip_masks = images.stacked_masks(clips)
    empty, chance = empty_top_share(result.maps, clips, segmentation)
    # clip by clip: the top five's empty share less the clip's own share of empty features (Student's t)
    _, less_low, less_high = mean_with_interval(empty - chance, method="t", bounds=(-1, 1))
    rows.append({"features": segmentation, "clips": len(clips),
                 "empty among top 5": np.nanmean(empty), "empty among all": np.mean(chance),
                 "top 5 less all": f"{np.nanmean(empty - chance):+.0%} [{less_low:+.0%}, {less_high:+.0%}]",
                 "low": less_low, "high": less_high,
                 "median relevance mass": np.nanmedian(relevance_mass(result.maps, clip_masks)),
                 "median mask area": np.median(mask_area(clip_masks))})
    wrenlib.record_result(PROFILE, f"lime_empty_top5_share_{segmentation}", float(np.nanmean(empty)))
    wrenlib.record_result(PROFILE, f"lime_empty_feature_share_{segmentation}", float(np.mean(chance)))
    wrenlib.record_result(PROFILE, f"lime_empty_top5_less_all_ci_{segmentation}", [less_low, less_high], glue=False)
    wrenlib.record_result(PROFILE, f"lime_relevance_mass_{segmentation}",
                          float(np.nanmedian(relevance_mass(result.maps, clip_masks))))
segmentation_table = pd.DataFrame(rows)
display(segmentation_table.drop(columns=["low", "high"])
        .style.format({"empty among top 5": "{:.0%}", "empty among all": "{:.0%}", "median relevance mass": "{:.1%}",
                       "median mask area": "{:.1%}"}).hide(axis="index"))
worst = segmentation_table.loc[segmentation_table["empty among top 5"].idxmax()]
glue("lime_worst_segmentation", worst["features"], display=False)
glue("lime_worst_empty", f"{worst['empty among top 5']:.0%}", display=False)
# more (or less) often than at random only where the clip-by-clip interval excludes 0
prefers = segmentation_table[segmentation_table["low"] > 0]
avoids = segmentation_table[segmentation_table["high"] < 0]
glue("lime_empty_clause", Markdown(
    f"So with {listing(list(prefers['features']))} features LIME's strongest features are empty more often than "
    "features picked at random: there it does prefer empty regions, as the paper saw." if len(prefers) else
    "With every segmentation LIME's strongest features are empty *less* often than features picked at random "
    "would be: it marks some empty regions, but it prefers song." if len(avoids) == len(segmentation_table) else
    "With no segmentation are LIME's strongest features clearly empty more often than features picked at random; "
    "where the per-clip interval holds 0, whether LIME prefers empty regions is not decided."), display=False)

# %% [markdown]
# Of LIME's five strongest features, the share that is empty background is
# {glue:text}`lime_empty_top5_share_grid:.0%` with the grid,
# {glue:text}`lime_empty_top5_share_quickshift:.0%` with quickshift and
# {glue:text}`lime_empty_top5_share_slic:.0%` with SLIC (the most with
# {glue:text}`lime_worst_segmentation`), against {glue:text}`lime_empty_feature_share_grid:.0%`,
# {glue:text}`lime_empty_feature_share_quickshift:.0%` and {glue:text}`lime_empty_feature_share_slic:.0%`
# of all their features. Each clip is set against its own features (the table's *top 5 less
# all*, with a 95 % t-interval over the clips); more or less often than at random counts only
# where that interval excludes 0. {glue:md}`lime_empty_clause` Switching off an empty feature changes at most
# 5 % of its pixels — the rest are already at the background level — so its true effect on the
# model is close to zero, and any weight it receives is mostly noise of the fit: few samples for
# many features. An image segmenter's features are fewer and mix silence with song, so a marked superpixel can be mostly
# empty page even when it is not "empty" by this rule; the relevance mass on the diagnostic
# elements tells that part. A LIME map can never be sharper than its features: with the grid
# the relevance mass is {glue:text}`lime_relevance_mass_grid:.1%`, capped by how much of each
# cell the diagnostic elements fill.
#
# ## Right and wrong answers, both dialects
#
# The most confident right and wrong answer of each dialect among all test clips, grid features:

# %% tags=["hide-input"]
lime_maps = results["grid"]
display(method_gallery(model, images, "lime", PROFILE, settings, "LIME (grid)", device))
wrenlib.record_result(PROFILE, "lime_relevance_mass_median", float(np.nanmedian(relevance_mass(lime_maps.maps, masks))))

# %% [markdown]
# ## Settings

# %% tags=["hide-input"]
settings_table = pd.DataFrame([
    ("features", f"time-frequency grid, {settings.grid[0]} bands x {settings.grid[1]} slices", "quickshift and SLIC compared above"),
    ("samples", f"{settings.n_samples} per image (profile '{PROFILE}')", "the lime package's default is 1,000"),
    ("switched-off value", "the image's background level", "'off' means silent"),
    ("weights", f"√exp(-d²/{settings.kernel_width}²), d = cosine distance to all-on", "as the lime package"),
    ("linear model", f"ridge, α = {settings.ridge_alpha}", "as the lime package"),
    ("batch", f"{settings.batch_size} perturbed images per model call", "captum's perturbations_per_eval"),
    ("target", "the predicted class's probability", "the book's choice: the paper does not say"),
    ("normalisation", "positive part / maximum per map", "wrenlib.explain.normalise_maps"),
], columns=["setting", "value", "note"])
display(settings_table.style.hide(axis="index"))

# %% [markdown]
# ## Try it
#
# The explained clips with each kind of feature (maps from the cache; a new combination takes
# a few seconds).
# (The controls run in Jupyter or Colab; this page shows their first setting.)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two panels for one explained clip: left its spectrogram image with the diagnostic mask outlined; right the LIME map over it, yellow (weak) to dark red (strong), with a colour bar."}}
fig, _ = explanation_figure(model, images, int(explained[0]), "lime", PROFILE, device,
                            n_samples=settings.n_samples, seed=SEED)
plt.show()

# %% tags=["remove-output"]
explanation_browser(model, images, explained, "lime", PROFILE,
                    {"segmentation": list(SEGMENTATIONS), "n_samples": [settings.n_samples], "seed": [SEED]}, device)

# %% [markdown]
# ## Exercises
#
# 1. LIME's maps at {glue:text}`lime_samples_glued` samples barely repeat from one seed to the next.
#    Explain the first explained clip with 1.5 times as many samples and two seeds and measure how
#    well the two maps agree
#    (Spearman's rank correlation over the grid features).
# 2. Which feature does each run weigh most? Is it on the song?
#
# Solutions (click to show):

# %% tags=["hide-cell"]
from scipy.stats import spearmanr

from wrenlib.explain import LimeSettings, explain, feature_means, lime_segments, make_settings

index = int(explained[0])
picture = images.image(index)
n_more = int(1.5 * settings.n_samples)  # 1.5 times the chapter's samples
runs = [explain(model, picture[None], "lime", settings=make_settings("lime", settings, n_samples=n_more, seed=seed),
               device=device).maps[0]
        for seed in (1, 2)]
features = lime_segments(picture, LimeSettings())
weights = [feature_means(run, features) for run in runs]
print(f"Spearman between the two seeds over {len(weights[0])} features: {spearmanr(*weights).statistic:.2f}")
for seed, values in zip((1, 2), weights):
    best = int(values.argmax())
    empty = (picture[features == best] == np.median(picture)).mean()
    print(f"seed {seed}: strongest feature {best}, {empty:.0%} of its pixels empty background")
