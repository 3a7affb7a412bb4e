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
# # Does the model listen to the bird?
#
# Regional recordings can confound dialect with site. Where the Eastern birds were recorded in
# one state and the Mexican birds in another, each set carries other insects, other birds and
# other equipment in its background. A CNN can then score well by listening to the background,
# and a saliency map is the only warning a reader gets. The paper does not say where its
# recordings were made {cite}`faruqui2025explainability`, and without sources it knows it
# could not have tested this.
#
# The surrogate can, because it knows every source in every clip. This chapter adds one
# background source — a pulsed insect chorus in a narrow band, one "site species" — to a share
# of one dialect's clips, trains the paper's CNN at each strength of that tie the profile lists
# ({glue:text}`confound_strengths_text`; strength 0 is chapter 03's model), and measures
# two things: how much the model relies on the source, and which explanation shows it.

# %% tags=["remove-cell"]
import subprocess, sys  # noqa: E401
if "google.colab" in sys.modules:  # on Colab, install the book's library first (make install did it elsewhere)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "wrenlib[book] @ git+https://github.com/wrenbook/wrenbook"],
                   check=True)

# %% tags=["parameters"]
PROFILE = "quick"
SEED = 0
BACKGROUND = "black"  # the confound models see one background, so the source is the only new thing

# %% tags=["hide-input"]
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue

import wrenlib
from wrenlib.confound import Confound, add_confound, confound_experiment, confound_maps
from wrenlib.dataset import load_surrogate_dataset
from wrenlib.ensembles import book_ensembles
from wrenlib.explain import METHOD_TITLES, REFERENCE_MAPS, normalise_maps, reference_maps
from wrenlib.metrics import interval_table, listing, paired_comparison, points_text, region_share, summarise_scores
from wrenlib.plotting import figures_with_audio, overlay_mask, plot_attribution, plot_spectrogram
from wrenlib.surrogate import DIALECTS
from wrenlib.training import accuracy_difference_with_interval

wrenlib.set_seed(SEED)
profile = wrenlib.get_profile(PROFILE)
device = wrenlib.choose_device()
sns.set_theme(style="whitegrid")
STRENGTHS = profile.confound_strengths
CONFOUND = Confound()  # the source, tied to the Mexican dialect; strengths vary below
surrogate = load_surrogate_dataset(PROFILE, seed=SEED)
print(f"profile {profile.name!r}: strengths {', '.join(f'{s:g}' for s in STRENGTHS)}; "
      f"device {wrenlib.describe_device(device)}")
glue("confound_strengths_text", f"strength{'s' if len(STRENGTHS) > 1 else ''} "
     + listing([f"{s:g}" for s in STRENGTHS]) + f" in profile '{PROFILE}'", display=False)

# %% [markdown]
# ## 1. The source
#
# A chorus of band noise {glue:text}`source_band`, pulsed {glue:text}`source_pulses` times a
# second, its peak {glue:text}`source_level` below the song's (`wrenlib.confound.Confound`). The
# key step is one line: the source is **added** to the clean clip, from its own random stream,
# so the clip with and without it differs by the source alone. Its time-frequency mask is kept
# like the song's (within 30 dB of its peak and above the image's floor, chapter 01):

# %%
index = int(surrogate.split_indices("test")[surrogate.labels[surrogate.split_indices("test")] == 1][0])
with_source = add_confound(surrogate, replace(CONFOUND, strength=1.0), clips=[index])
clean, mixed = np.asarray(surrogate.waveforms[index]), with_source.waveforms[0]
print(f"clip {index} ({surrogate.clips.loc[index, 'dialect']}): carries the source: {bool(with_source.clips['confound'][0])}; "
      f"samples changed: {np.mean(mixed != clean):.0%}; source mask: {with_source.confound_mask(0).mean():.1%} of the STFT cells")

# %% tags=["hide-input"]
glue("source_band", f"{(CONFOUND.centre_hz - CONFOUND.width_hz / 2) / 1000:.2f}–"
                    f"{(CONFOUND.centre_hz + CONFOUND.width_hz / 2) / 1000:.2f} kHz", display=False)
glue("source_pulses", f"{CONFOUND.pulse_rate_hz:g}", display=False)
glue("source_level", f"{-CONFOUND.level_db_range[1]:g}–{-CONFOUND.level_db_range[0]:g} dB", display=False)
figures = []
for waveform, title in ((clean, "the clean clip"), (mixed, "the same clip with the source (its mask outlined)")):
    fig, ax = plt.subplots(figsize=(7, 2.8))
    plot_spectrogram(waveform, ax=ax, title=title)
    if waveform is mixed:
        overlay_mask(with_source.confound_mask(0), ax=ax, color="cyan")
    fig.tight_layout()
    figures.append(fig)
    plt.close(fig)
display(figures_with_audio(figures, [clean, mixed], ["The clean clip's spectrogram",
                                                    "The same clip with the insect chorus added, its mask outlined"]))

# %% [markdown]
# ## 2. The experiment
#
# The **strength** s ties the source to the Mexican dialect: it is in a share s of the Mexican
# clips and in none of the Eastern ones. At s = 0 the data are the book's clean clips, and the
# model is chapter 03's (black backgrounds); at s = 1 every Mexican clip carries the source. Every
# model is then tested three ways on the same test clips:
#
# - **confounded**: with the source as in training (what a researcher's own test split shows);
# - **clean**: without the source (another site, without this insect);
# - **flipped**: with the source tied to the *Eastern* clips at the same strength (a site where
#   the other dialect lives with the insect).
#
# A model that listens to the bird scores the same on all three. The drop from confounded to
# clean and flipped is how much it listened to the background.

# %%
models, images, accuracy = confound_experiment(PROFILE, STRENGTHS, seed=SEED, background=BACKGROUND, device=device,
                                               progress=False, confound=CONFOUND)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two panels against confound strength: left test accuracy with 95 percent intervals, right the share of test clips called Mexican; one line each for the confounded, clean and flipped test sets."}}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for name, colour in zip(("confounded", "clean", "flipped"), sns.color_palette("deep", 3)):
    rows = accuracy[accuracy["test set"] == name]
    axes[0].errorbar(rows["strength"], rows["accuracy"], yerr=[rows["accuracy"] - rows["ci_low"], rows["ci_high"] - rows["accuracy"]],
                     marker="o", capsize=3, label=name, color=colour)
    axes[1].plot(rows["strength"], rows["predicted Mexican"], marker="o", label=name, color=colour)
axes[0].set_ylabel("test accuracy (95 % interval over birds)")
axes[1].set_ylabel("share of test clips called Mexican")
axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
for ax in axes:
    ax.set_xlabel("confound strength s (share of Mexican clips with the source)")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
table = accuracy.assign(accuracy=accuracy.apply(lambda r: f"{r['accuracy']:.0%} [{r['ci_low']:.0%}, {r['ci_high']:.0%}]", axis=1))
display(table.pivot(index="strength", columns="test set", values="accuracy")[["confounded", "clean", "flipped"]])
wide = accuracy.pivot(index="strength", columns="test set", values="accuracy")
correct = accuracy.set_index(["strength", "test set"])["correct"]  # which test clips each row got right
birds = images["clean"].clips["individual"].to_numpy()  # the same test clips in every row


def accuracy_gap(first, second):
    """(difference, low, high): first's accuracy less second's on the same test clips, resampling birds."""
    return accuracy_difference_with_interval(correct[first], correct[second], birds, seed=SEED)


strongest = max(STRENGTHS)
drops = {s: accuracy_gap((s, "confounded"), (s, "flipped")) for s in STRENGTHS}
relied = [s for s in STRENGTHS if drops[s][1] > 0]  # confounded above flipped, the paired interval above 0
for s in STRENGTHS:
    for name in ("confounded", "clean", "flipped"):
        wrenlib.record_result(PROFILE, f"confound_accuracy_{name}_{round(s * 100):03d}", float(wide.loc[s, name]), glue=False)
wrenlib.record_result(PROFILE, "confound_flipped_drop_at_full_strength",
                      float(wide.loc[strongest, "confounded"] - wide.loc[strongest, "flipped"]))
wrenlib.record_result(PROFILE, "confound_reliance_first_strength", float(min(relied)) if relied else None)
glue("acc_confounded", f"{wide.loc[strongest, 'confounded']:.0%}", display=False)
glue("acc_clean", f"{wide.loc[strongest, 'clean']:.0%}", display=False)
glue("acc_flipped", f"{wide.loc[strongest, 'flipped']:.0%}", display=False)
glue("acc_book", f"{wide.loc[min(STRENGTHS), 'confounded']:.0%}", display=False)
drop, drop_low, drop_high = drops[strongest]
glue("drop_text", points_text(drop, drop_low, drop_high), display=False)
rewarded = bool(wide.loc[strongest, "confounded"] >= wide.loc[min(STRENGTHS), "confounded"])
clearly = bool(accuracy_gap((strongest, "confounded"), (min(STRENGTHS), "confounded"))[1] > 0)  # paired, over birds
glue("shortcut_text", Markdown(
    "better (the paired difference's 95 % interval above 0) than the clean model's" if clearly else
    "at least as well as the clean model's" if rewarded else "below the clean model's"), display=False)
glue("own_split_text", Markdown(
    "The confounded model beat the clean one on its own split." if clearly else
    "The confounded model scored at least as well as the clean one on its own split." if rewarded else
    "Here the confounded model scored below the clean one even on its own split; it need not."), display=False)
glue("shortcut_reading", Markdown(
    "The confounded split rewards the shortcut: a researcher who only tests on it sees a *better* model."
    if rewarded else "Here the shortcut did not pay on the confounded split itself."), display=False)
glue("reliance_from", Markdown(f"from strength **{min(relied):g}** on" if relied else
                               "at no strength tested"), display=False)
glue("reliance_clause", Markdown(f"which showed the model relying on the source from strength **{min(relied):g}** on"
                                 if relied else "which showed no reliance on the source at any strength tested"),
     display=False)

# %% [markdown]
# At full strength the model scores {glue:text}`acc_confounded` on its own test split —
# {glue:md}`shortcut_text` {glue:text}`acc_book` — and {glue:text}`acc_clean` on clean clips and
# {glue:text}`acc_flipped` on flipped ones. {glue:md}`shortcut_reading` Every test set holds the same
# clips, so two accuracies are compared clip by clip: at full strength the confounded accuracy
# less the flipped one is {glue:text}`drop_text` (95 % interval from resampling the test birds,
# `wrenlib.training.accuracy_difference_with_interval`). The flipped accuracy falls below the
# confounded one, with that interval above 0, {glue:md}`reliance_from`. The right panel shows
# where the errors go: the share of test clips the model calls Mexican, against the half that
# are (dotted line).
#
# ## 3. Which explanation shows it?
#
# Each model explains the same test clips: Mexican clips that carry the source, as a
# researcher's own data would show them. For every method and ensemble of chapters 04–08 the
# question is where the positive attribution goes: onto the source's mask, or onto the
# diagnostic song elements. Two reference rows read the numbers as in chapter 08: the image
# itself as a map (the source's share of the picture's energy) and DeepLIFT on an untrained
# network.

# %%
# the clips: the first profile.confound_clips test clips that carry the source (wrenlib.confound.confound_carriers);
# for every strength s the raw maps explain_methods(models[s], pictures, PROFILE, images[(s, "train")]): the four
# methods, SHAP's references from that model's training clips; cached (`wrenlib execute` makes them as a job of
# their own once the CNNs are trained)
carriers, chosen, raw_by_strength = confound_maps(PROFILE, SEED, BACKGROUND, device, confound=CONFOUND,
                                                  strengths=STRENGTHS, experiment=(models, images))
pictures = carriers.images(chosen)
confound_masks = carriers.stacked_masks(chosen, "confound")
diagnostic_masks = carriers.stacked_masks(chosen, "diagnostic")
temperature = wrenlib.read_results(PROFILE).get("adaptive_temperature", 1.0)  # chosen on validation clips, chapter 08
rows, maps_by_strength = [], {}
for s in STRENGTHS:
    raw = raw_by_strength[s]
    maps = {METHOD_TITLES[m]: normalise_maps(values) for m, values in raw.items()}
    maps = {**maps, **book_ensembles(maps, temperature), **reference_maps(models[s], pictures, seed=SEED, device=device)}
    maps_by_strength[s] = maps
    for name, values in maps.items():
        rows.append(pd.DataFrame({"strength": s, "map": name, "clip": np.arange(len(chosen)),
                                  "on the source": region_share(values, confound_masks),
                                  "on the diagnostic elements": region_share(values, diagnostic_masks)}))
shares = pd.concat(rows, ignore_index=True)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two panels against confound strength: mean share of positive attribution on the source (left) and on the diagnostic elements (right), one line per method and ensemble, dashed for references."}}
ORDER = list(maps_by_strength[strongest])
summary = summarise_scores(shares, ["map", "strength"], ["on the source", "on the diagnostic elements"], seed=SEED,
                           method="t", bounds=(0, 1))  # a handful of clips: Student's t, not a bootstrap
fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharex=True)
palette = dict(zip(ORDER, sns.color_palette("tab10", len(ORDER))))
for ax, score in zip(axes, ("on the source", "on the diagnostic elements")):
    for name in ORDER:
        rows = summary[(summary["map"] == name) & (summary["score"] == score)]
        style = dict(ls="--", lw=1.2) if name.startswith("reference") else dict(lw=1.8, marker="o")
        ax.plot(rows["strength"], rows["mean"], label=name.replace("reference: ", ""), color=palette[name], **style)
    ax.set_title(f"share of positive attribution {score}", fontsize=10)
    ax.set_xlabel("confound strength s")
    ax.set_ylim(0, None)
axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.tight_layout()
plt.show()
display(interval_table(summary[summary["score"] == "on the source"], "map", "strength").loc[ORDER])

# %% [markdown]
# The table gives the share on the source with its 95 % Student-t interval over the explained
# clips (a handful, where a bootstrap's interval comes out too narrow). The same clips, the maps of the clean model (s = 0) and of the fully confounded one:

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two rows of attribution maps, yellow to dark red, for one Mexican test clip with the source's mask outlined: clean model on top, fully confounded model below; one column per method or ensemble."}}
shown = [name for name in ORDER if not name.startswith("reference")][:6]
clip = 0
fig, axes = plt.subplots(2, len(shown), figsize=(2.7 * len(shown), 4.4), squeeze=False)
for row, s in enumerate((min(STRENGTHS), strongest)):
    for column, name in enumerate(shown):
        ax = axes[row, column]
        plot_attribution(pictures[clip], maps_by_strength[s][name][clip], ax=ax, mask=confound_masks[clip],
                         front_end=carriers.front_end)
        ax.set_title(name if row == 0 else "", fontsize=9)
        ax.set_ylabel(f"s = {s:g}" if column == 0 else "", fontsize=9)
        ax.set_xlabel("")
        ax.tick_params(labelsize=6)
fig.suptitle("One Mexican test clip with the source (its mask outlined): the clean model's maps (top) "
             "and the fully confounded model's (bottom)", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Who warned, and how early?
#
# The rule, written in the code below: a map **warns** at strength s when its share on the
# source is above both the clean model's share (s = 0) and the share the image itself puts
# there. Both are shares of the same clips, so each comparison is paired, clip by clip: the mean
# difference's 95 % t-interval lies above 0 (`wrenlib.metrics.paired_comparison`). Above the clean model's alone, the map *rises*: it
# follows the model onto the source, which only a comparison with a clean model can show. The earliest strength at which each map warns, to be
# read beside the flipped accuracy of section 2, {glue:md}`reliance_clause`:

# %% tags=["hide-input"]
source_share = summary[summary["score"] == "on the source"].set_index(["map", "strength"])
image_share = source_share.xs(REFERENCE_MAPS[0], level="map")["mean"]


def above(first, second):
    """Whether the map and strength ``first`` puts more on the source than ``second``, clip by clip."""
    table = pd.concat([shares[(shares["map"] == name) & (shares["strength"] == s)].assign(which=label)
                       for label, (name, s) in (("first", first), ("second", second))])
    return paired_comparison(table, "first", "second", score="on the source", by="which")["result"] == "won"


warnings_table = []
for name in ORDER:
    if name.startswith("reference"):
        continue
    # rises: the map follows the model onto the source (above the clean model's share); warns: and stands out
    # against the image, as a reader without a clean model would need
    rises = [s for s in STRENGTHS if s > min(STRENGTHS) and above((name, s), (name, min(STRENGTHS)))]
    warns = [s for s in rises if above((name, s), (REFERENCE_MAPS[0], s))]
    first = min(warns) if warns else None
    warnings_table.append({"map": name, "share on the source, clean model": source_share.loc[(name, min(STRENGTHS)), "mean"],
                           f"share at s = {strongest:g}": source_share.loc[(name, strongest), "mean"],
                           "rises above the clean model's from": "never" if not rises else f"{min(rises):g}",
                           "warns from strength": "never" if first is None else f"{first:g}"})
    wrenlib.record_result(PROFILE, wrenlib.result_key("confound_first_warning", name), first, glue=False)
    wrenlib.record_result(PROFILE, wrenlib.result_key("confound_source_share", name),
                          float(source_share.loc[(name, strongest), "mean"]), glue=False)
warnings_table = pd.DataFrame(warnings_table)
display(warnings_table.style.format({c: "{:.2f}" for c in warnings_table.columns if c.startswith("share")}).hide(axis="index"))
earliest = [row["map"] for row in warnings_table.to_dict("records") if row["warns from strength"] != "never"]
earliest_strength = min((float(r["warns from strength"]) for r in warnings_table.to_dict("records")
                         if r["warns from strength"] != "never"), default=None)
first_maps = [r["map"] for r in warnings_table.to_dict("records")
              if r["warns from strength"] != "never" and float(r["warns from strength"]) == earliest_strength]
never = [r["map"] for r in warnings_table.to_dict("records") if r["warns from strength"] == "never"]
wrenlib.record_result(PROFILE, "confound_earliest_warning", ", ".join(first_maps) if first_maps else "none")
wrenlib.record_result(PROFILE, "confound_earliest_warning_strength", earliest_strength)
tested = [s for s in STRENGTHS if s > min(STRENGTHS)]
glue("first_maps", Markdown(
    (f"**{', '.join(first_maps)}** warned first, from s = {earliest_strength:g}" if len(tested) > 1
     else f"at the one strength tested above 0 (s = {tested[0]:g}) **{', '.join(first_maps)}** warned")
    if first_maps else "**no map** warned at any strength tested"), display=False)
glue("never_maps", Markdown(f"never warned: {', '.join(never)}" if never else "every map warned at some strength"),
     display=False)
hidden = [r["map"] for r in warnings_table.to_dict("records")
          if r["warns from strength"] == "never" and r["rises above the clean model's from"] != "never"]
glue("hidden_maps", Markdown(
    f"{listing(hidden)} rose on the source — {'its' if len(hidden) == 1 else 'their'} share above the clean "
    "model's, clip by clip — without standing out against the image: a change that a comparison with a clean model "
    "shows and a reader of the maps alone would miss." if hidden else
    "No map followed the model onto the source without also standing out against the image."), display=False)
wrenlib.record_result(PROFILE, "confound_rises_without_warning", listing(hidden) if hidden else "none", glue=False)
glue("image_source_share", f"{image_share[strongest]:.0%}", display=False)

# %% [markdown]
# On this run, {glue:md}`first_maps`; {glue:md}`never_maps`. The image itself puts
# {glue:text}`image_source_share` of its energy on the source: a map below that share is not
# drawing attention to the source, whatever its colours suggest. The bar is steepest for a coarse
# map: a Grad-CAM cell is wider than the source's band, so a cell centred on the source spreads
# most of its weight beside it, and its share may never reach the image's however much the
# model relies on the source. The table's other column reads the model's side alone.
# {glue:md}`hidden_maps` One caution on that column: each strength is one trained CNN, set
# against one clean CNN, and two CNNs trained alike from other initial weights differ by
# themselves (chapter 10 measures how far the maps move between training seeds), so a rise of a
# few hundredths may be the seed's, not the confound's; a large one is not.
#
# ## 5. Before believing a dialect classifier: a checklist
#
# What this chapter measured, turned into checks for real regional recordings:
#
# 1. **Test across sites, not only across clips.** The confounded test split gave
#    {glue:text}`acc_confounded` at full strength; clips from a site without the insect gave
#    {glue:text}`acc_clean`, and a site where the insect lives with the other dialect
#    {glue:text}`acc_flipped`. If every recording of a dialect comes from one site, the split
#    cannot show the shortcut at all — collect at least two sites per dialect.
# 2. **A high accuracy is not evidence.** {glue:md}`own_split_text` Compare with an ideal observer of the song (chapter 01) where you can, and distrust
#    accuracies above it.
# 3. **Read the maps outside the song.** Measure the share of attribution off the song's
#    elements, on every clip, not on a few chosen ones; the table above shows which methods
#    show a background source and which hide it.
# 4. **Use the references.** A map that puts no more on a background band than the image does
#    (the image-as-map row) is not pointing at it.
# 5. **Look at the clusters by site** (chapter 12): a t-SNE cluster that follows the site is
#    the same confound seen from the latent space.
