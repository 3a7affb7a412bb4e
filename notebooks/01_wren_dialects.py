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
# # The wren dialects
#
# The paper this book replicates {cite}`faruqui2025explainability` trains a convolutional network
# to tell two geographic song dialects of Bewick's wren (*Thryomanes bewickii*), "Eastern" and
# "Mexican", apart from spectrogram images, and then asks four explanation methods what the network
# listened to. Its recordings are not public. This chapter builds the book's stand-in: a
# **surrogate dialect generator** that synthesises wren-like songs from known parts, so that every
# clip comes with the ground truth the paper never had — which song type and which bird sang it,
# and exactly where in the spectrogram the dialect evidence lies.

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
import seaborn as sns
from IPython.display import Markdown, display
from myst_nb import glue
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import wrenlib
from wrenlib.dataset import load_surrogate_dataset
from wrenlib.frontend import front_end_for_profile, render_mask
from wrenlib.plotting import annotate_elements, figures_with_audio, overlay_mask, plot_spectrogram
from wrenlib.spectrogram import PAPER_STFT
from wrenlib.surrogate import (
    DIAGNOSTIC_FEATURES,
    DIALECTS,
    SHARED_FEATURES,
    SurrogateConfig,
    mexican_probability,
)
from wrenlib.widgets import song_designer, song_designer_figure

wrenlib.set_seed(SEED)
profile = wrenlib.get_profile(PROFILE)
sns.set_theme(style="whitegrid", context="notebook")
print(f"profile {profile.name!r}: {profile.individuals_per_dialect} birds per dialect x "
      f"{profile.clips_per_individual} clips = {profile.n_clips} clips; seed {SEED}; "
      f"device {wrenlib.describe_device()}")

# %% [markdown]
# ## What a Bewick's wren sings
#
# A male Bewick's wren sings a repertoire of about 15–20 learned song types, repeating one type
# many times before switching, and neighbours share types because young males learn the songs
# around their first territory {cite}`kroodsma1974song`. A song lasts about 1.2–2.5 s: one to five
# short high "peeps" or breathy notes, lower buzzy notes, then a loose trill, often ending on a high
# warbled note. Songs vary geographically in length, complexity and frequency range
# {cite}`kroodsma1985geographic`, but no published measurement compares Eastern with Mexican songs.
# The surrogate therefore encodes a **designed** difference, in the direction of the documented
# south-western pattern and of the trade-off between trill rate and bandwidth
# {cite}`podos1997performance`: Mexican trills are faster and narrower, and Mexican buzzes narrower.
#
# ## A song element in a few lines
#
# Every element is an oscillator that follows a frequency track. The phase is the running sum of
# the instantaneous frequency, so the tone stays continuous however fast the track moves. Here is
# the heart of a trill — notes that sweep steeply down from the top of their band — written out:

# %%
sample_rate_hz = 22_050
rate_per_s, top_hz, bandwidth_hz, duty = 11.0, 7_800.0, 3_500.0, 0.5
note_t = np.arange(int(duty / rate_per_s * sample_rate_hz)) / sample_rate_hz
track_hz = top_hz - bandwidth_hz * note_t / note_t[-1]             # a linear downsweep
note = np.sin(2 * np.pi * np.cumsum(track_hz) / sample_rate_hz)     # phase = sum of frequency
note *= np.hanning(len(note)) ** 0.2                                # soft attack and release
period = np.zeros(int(sample_rate_hz / rate_per_s))
period[: len(note)] = note
trill = np.tile(period, 6)                                          # six notes at 11 notes/s

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6, 2.6))
plot_spectrogram(np.pad(trill, 2_000), ax=ax, title="six trill notes at 11 notes/s")
display(figures_with_audio([fig], [np.pad(trill, 2_000) * 0.5], ["A bare trill: listen"]))

# %% [markdown]
# The library adds what makes this sound like a bird rather than a test tone: raised-cosine
# envelopes of a few milliseconds, a slight curvature of each sweep, a crescendo over the first
# notes, a weak second harmonic, two-voiced peeps (songbirds sing with two sides of the syrinx),
# a buzz that is a frequency-modulated carrier with amplitude modulation and a little noise, and a
# short reverberation tail from the vegetation. A song is built from a **template**:
#
# `clicks -> peeps (1-3) -> breathy notes (0-2) -> whistle? -> buzz -> trill -> terminal note?`
#
# (some templates put the buzz after the trill), with gaps of 20–150 ms and individual tempo.
#
# ## Two dialects that differ in exactly three features
#
# Only the **trill** and the **buzz** are diagnostic. Their distributions differ between the
# dialects and overlap; every other element, and the timing of all elements, comes from one
# distribution shared by both dialects. The three features that differ:

# %% tags=["hide-input"]
config = SurrogateConfig(seed=SEED)
feature_table = pd.DataFrame([
    {
        "feature": f.name,
        "unit": f.unit,
        "Eastern mean": f.dialect_mean(0, config.separation),
        "Mexican mean": f.dialect_mean(1, config.separation),
        "total sd": f.total_sd,
        "range": f"{f.low:g} – {f.high:g}",
    }
    for f in DIAGNOSTIC_FEATURES
])
display(feature_table.style.format(precision=1, thousands=",").format("{:g}", subset=["Eastern mean", "Mexican mean", "total sd"]).hide(axis="index"))

# %% [markdown]
# The dialect means sit `separation` = 1.6 total standard deviations apart (one knob,
# `SurrogateConfig.separation`; 1.0 makes the task hard, 2.5 nearly trivial). The variance of each
# feature is split between **song types** (half), **individuals** (30 %) and **renditions** (20 %).
# An ideal observer who knew these distributions and saw the three features exactly would reach
# about $\Phi(d\sqrt{3}/2) \approx 0.92$ with $d = 1.6$ — close to the paper's 94.8 %; a
# spectrogram adds noise on top, so a classifier should land below this ceiling.
#
# **Sub-populations.** Each dialect has four song types. Song type *k* of both dialects uses the
# same shared-element template, so the shared elements carry no dialect information; the types
# differ from each other in their template and in their diagnostic values (drawn at stratified
# quantiles of the type distribution, so four types always spread the same way). Each bird sings
# two types and has his own pitch (±3 %) and tempo (±5 %).
#
# ## The dataset
#
# The chapter asks `wrenlib` for the profile's dataset. It is generated once — clips in parallel,
# each deterministic from `(seed, clip number)` — and cached in `artifacts/<profile>/surrogate/`;
# every later chapter reads the same copy. Birds, not clips, are split into train, validation and
# test, so no bird is heard in two splits.

# %%
dataset = load_surrogate_dataset(PROFILE, seed=SEED)
clips = dataset.clips
print(f"{len(dataset)} clips of {dataset.config.clip_seconds:g} s at {dataset.config.sample_rate_hz} Hz; "
      f"generated at {len(dataset) / dataset.seconds_to_generate:.1f} clips/s"
      + (f" on {dataset.processes} process{'es' if dataset.processes > 1 else ''}" if dataset.processes else "")
      + (f", {dataset.made}" if dataset.made else ""))

# %% tags=["hide-input"]
counts = pd.crosstab([clips["dialect"], clips["song_type"]], clips["split"], margins=True, margins_name="all")
counts = counts[["train", "validation", "test", "all"]]
display(counts)
birds = clips.groupby("split")["individual"].nunique()
crossing = clips.groupby("individual")["split"].nunique().max()
print("birds per split: " + ", ".join(f"{split} {n}" for split, n in birds.items())
      + f"; the most splits any bird appears in: {crossing}")

wrenlib.record_result(PROFILE, "n_clips", int(len(dataset)))
for dialect in DIALECTS:
    wrenlib.record_result(PROFILE, f"n_clips_{dialect.lower()}", int((clips["dialect"] == dialect).sum()))
wrenlib.record_result(PROFILE, "clips_per_split", clips["split"].value_counts().to_dict(), glue=False)
wrenlib.record_result(PROFILE, "clips_per_song_type", clips["song_type"].value_counts().sort_index().to_dict(), glue=False)
wrenlib.record_result(PROFILE, "clips_per_dialect_and_split",
                      {f"{d}/{s}": int(n) for (d, s), n in clips.groupby(["dialect", "split"]).size().items()},
                      glue=False)
wrenlib.record_result(PROFILE, "n_individuals", int(clips["individual"].nunique()))
wrenlib.record_result(PROFILE, "synth_clips_per_second", round(len(dataset) / dataset.seconds_to_generate, 1))
wrenlib.record_result(PROFILE, "synth_made", dataset.made or "at a time not recorded")

# %% [markdown]
# The {glue:text}`n_clips` clips come from {glue:text}`n_individuals` birds, half of them per
# dialect ({glue:text}`n_clips_eastern` Eastern, {glue:text}`n_clips_mexican` Mexican clips). They
# were synthesised at {glue:text}`synth_clips_per_second` clips per second, {glue:text}`synth_made`,
# by the run that made the cached copy (the status page's `surrogate` row says whether that was
# this one).
#
# ## Listen and look
#
# One clip of each dialect, from song types with the same shared-element template, so that the
# shared elements look alike and only the diagnostic ones differ. Boxes mark every element (cyan:
# diagnostic, yellow: shared), the cyan outline is the **diagnostic mask**, and the dotted lines
# are the paper's 1.5–9 kHz band.

# %% tags=["hide-input"]
def show_clip(index: int, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(9, 3.2))
    plot_spectrogram(dataset.waveforms[index], ax=ax, title=title)
    annotate_elements(dataset.elements_of(index), ax=ax)
    overlay_mask(dataset.diagnostic_mask(index), ax=ax)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return fig


test_clips = clips[clips["split"] == "test"]
# one test clip per dialect, of shared template 0 where the test set has one (a small profile may not)
example = {d: int(test_clips[test_clips["dialect"] == d].sort_values("song_template", key=lambda t: t != 0,
                                                                   kind="stable").index[0]) for d in DIALECTS}
figures, sounds, captions = [], [], []
for dialect, index in example.items():
    row = clips.loc[index]
    figures.append(show_clip(index, f"{dialect}, song type {row.song_type}, bird {row.individual}"))
    sounds.append(np.asarray(dataset.waveforms[index]))
    captions.append(f"{dialect}: trill {row.trill_rate_per_s:.1f} notes/s, "
                    f"{row.trill_bandwidth_hz / 1000:.1f} kHz wide; buzz ±{row.buzz_depth_hz:.0f} Hz; "
                    f"SNR {row.snr_db:.0f} dB")
display(figures_with_audio(figures, sounds, captions))

# %% [markdown]
# Listen for the trill: the Mexican one is faster, and its notes do not sweep as low. The buzz of
# the Mexican bird is a narrower band. The other elements (peeps, breathy notes and, in some
# templates, a whistle) come from the same template in both.
#
# ## The song types: sub-populations
#
# One clip of every song type. Types with the same number share their shared-element template
# across the dialects; within a dialect, the types differ in template and in diagnostic values.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Grid of song spectrograms, top row Eastern and bottom row Mexican, one column per shared template; time across, 1.5 to 9 kHz up, brighter is louder, so the two rows' trills and buzzes can be compared."}}
n_types = dataset.config.song_types_per_dialect
fig, axes = plt.subplots(2, n_types, figsize=(3.2 * n_types, 5.2), sharey=True)
for row_axes, dialect in zip(axes, DIALECTS):
    for template, ax in enumerate(row_axes):
        index = int(clips[(clips["dialect"] == dialect) & (clips["song_template"] == template)].index[0])
        onset, length = clips.loc[index, "song_onset_s"], clips.loc[index, "song_duration_s"]
        plot_spectrogram(dataset.waveforms[index], ax=ax, colorbar=False, show_band=False)
        ax.set_xlim(max(0.0, onset - 0.1), min(dataset.config.clip_seconds, onset + length + 0.1))  # the whole song
        ax.set_ylim(1.5, 9)
        ax.set_title(f"{clips.loc[index, 'song_type']}", fontsize=10)
        ax.set_xlabel("time (s)" if dialect == DIALECTS[1] else "")
        ax.set_ylabel("frequency (kHz)" if template == 0 else "")
fig.suptitle("One song of each type (rows: Eastern, Mexican; columns: shared template 1-4)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The diagnostic features, measured
#
# Every clip records the values it was synthesised with. The three diagnostic features should
# differ between the dialects, with overlap; the shared features should not differ at all. A
# Mann–Whitney test per feature checks both on the whole dataset, one value per bird (its mean
# over its clips): a bird's clips share its voice, so the birds are the independent units, and a
# test over clips would count each bird several times.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Six density histograms, Eastern in blue and Mexican in orange: top row the three diagnostic features (trill rate, trill bandwidth, buzz depth), bottom row three shared features."}}
diagnostic_names = [f.name for f in DIAGNOSTIC_FEATURES]
shown_shared = ["trill_top_hz", "buzz_carrier_hz", "song_duration_s"]
fig, axes = plt.subplots(2, 3, figsize=(12, 6))
for ax, name in zip(axes.ravel(), diagnostic_names + shown_shared):
    sns.histplot(data=clips, x=name, hue="dialect", ax=ax, stat="density", common_norm=False,
                 element="step", bins=25, hue_order=list(DIALECTS))
    ax.set_title(("diagnostic: " if name in diagnostic_names else "shared: ") + name, fontsize=10)
fig.tight_layout()
plt.show()

tests = []
per_bird = clips.groupby(["dialect", "individual"])[diagnostic_names + list(SHARED_FEATURES)].mean().reset_index()
for name in diagnostic_names + list(SHARED_FEATURES):
    eastern = clips.loc[clips["dialect"] == "Eastern", name]
    mexican = clips.loc[clips["dialect"] == "Mexican", name]
    pooled_sd = np.sqrt((eastern.var() + mexican.var()) / 2)  # of the clips: the histograms' spread
    tests.append({
        "feature": name,
        "role": "diagnostic" if name in diagnostic_names else "shared",
        "Eastern median": eastern.median(),
        "Mexican median": mexican.median(),
        "standardised difference": (mexican.mean() - eastern.mean()) / pooled_sd if pooled_sd else 0.0,
        "Mann-Whitney p (birds)": stats.mannwhitneyu(per_bird.loc[per_bird["dialect"] == "Eastern", name],
                                                      per_bird.loc[per_bird["dialect"] == "Mexican", name]).pvalue,
    })
tests = pd.DataFrame(tests)
display(tests.style.format({"Eastern median": "{:.2f}", "Mexican median": "{:.2f}",
                            "standardised difference": lambda v: f"{v:+.2f}" if round(v, 2) else "0.00", "Mann-Whitney p (birds)": "{:.2g}"})
        .hide(axis="index"))
smallest_shared_p = tests.loc[tests["role"] == "shared", "Mann-Whitney p (birds)"].min()
largest_diagnostic_p = tests.loc[tests["role"] == "diagnostic", "Mann-Whitney p (birds)"].max()
wrenlib.record_result(PROFILE, "smallest_shared_feature_p", float(smallest_shared_p))
wrenlib.record_result(PROFILE, "largest_diagnostic_feature_p", float(largest_diagnostic_p))
glue("shared_differ", Markdown("do not differ" if smallest_shared_p > 0.01 else "**differ**"), display=False)
glue("diagnostic_differ", Markdown("differ" if largest_diagnostic_p < 1e-6 else "**do not clearly differ**"), display=False)
wrenlib.record_result(PROFILE, "diagnostic_standardised_differences",
                      dict(zip(diagnostic_names, tests["standardised difference"][:3].round(2))), glue=False)
long_songs = float((clips["song_duration_s"] > 2.5).mean())
glue("long_songs_text", Markdown(
    f"One difference from real wrens shows in the last panel: {long_songs:.0%} of the surrogate's songs last longer "
    f"than the 2.5 s that real songs rarely pass (up to {clips['song_duration_s'].max():.1f} s; median "
    f"{clips['song_duration_s'].median():.2f} s), since each element's duration is drawn on its own and they add up. "
    "Song length is a shared feature, the same in both dialects, so it gives the classifier nothing to use."
    if long_songs > 0.05 else
    f"The songs last {clips['song_duration_s'].min():.1f} to {clips['song_duration_s'].max():.1f} s (median "
    f"{clips['song_duration_s'].median():.2f} s), as real songs do."), display=False)

# %% [markdown]
# The diagnostic features {glue:md}`diagnostic_differ` between the dialects (largest p =
# {glue:text}`largest_diagnostic_feature_p:.1e`); the shared ones {glue:md}`shared_differ`
# (smallest p = {glue:text}`smallest_shared_feature_p:.2f`, over eight features).
# {glue:md}`long_songs_text` The song types
# are the sub-populations that chapter 09 will look for in the network's latent space; in two of
# the three diagnostic features some stand apart and others overlap:

# %% tags=["hide-input"] mystnb={"image": {"alt": "Scatter plot of trill rate (notes/s, across) against trill note bandwidth (Hz, up), one point per clip, coloured by song type with marker shape by dialect, showing how the song types group."}}
fig, ax = plt.subplots(figsize=(7, 4.6))
sns.scatterplot(data=clips, x="trill_rate_per_s", y="trill_bandwidth_hz", hue="song_type",
                style="dialect", ax=ax, s=22, palette="tab10", hue_order=sorted(clips["song_type"].unique()))
ax.set_xlabel("trill rate (notes/s)")
ax.set_ylabel("trill note bandwidth (Hz)")
ax.set_title("The song types in two of the three diagnostic features")
ax.legend(fontsize=7, ncol=2, loc="upper right")
plt.show()

# %% [markdown]
# ## How well could anyone do?
#
# Two ceilings and one shortcut check frame what the classifier of chapter 03 can achieve on the
# test birds:
#
# - the **ideal observer**, who knows the dialect distributions and reads the three diagnostic
#   values exactly (`wrenlib.surrogate.mexican_probability`);
# - a **logistic regression** fitted on the training birds' three diagnostic values;
# - the same regression fitted on the **shared** features only — which must stay at chance, or the
#   shared elements would be a shortcut around the diagnostic ones.

# %%
train, test = clips[clips["split"] == "train"], clips[clips["split"] == "test"]
ideal = np.array([mexican_probability(row) for row in test[diagnostic_names].to_dict("records")])
ideal_accuracy = float(np.mean((ideal > 0.5) == test["label"]))


def test_accuracy(columns: list[str]) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(train[columns], train["label"])
    return float(model.score(test[columns], test["label"]))


# %% tags=["hide-input"]
ceilings = {
    "ideal observer (3 diagnostic values)": ideal_accuracy,
    "logistic regression, diagnostic values": test_accuracy(diagnostic_names),
    "logistic regression, shared values only": test_accuracy(list(SHARED_FEATURES)),
}
half_width = 1.96 * np.sqrt(0.25 / len(test))
display(pd.DataFrame({"test accuracy": ceilings}).style.format("{:.1%}"))
wrenlib.record_result(PROFILE, "ideal_observer_accuracy", ceilings["ideal observer (3 diagnostic values)"])
wrenlib.record_result(PROFILE, "diagnostic_features_logreg_accuracy", ceilings["logistic regression, diagnostic values"])
wrenlib.record_result(PROFILE, "shared_features_logreg_accuracy", ceilings["logistic regression, shared values only"])
wrenlib.record_result(PROFILE, "chance_band_half_width", float(half_width))
shared_at_chance = abs(ceilings["logistic regression, shared values only"] - 0.5) <= half_width
wrenlib.record_result(PROFILE, "shared_features_at_chance", bool(shared_at_chance))
glue("shared_verdict", Markdown("inside" if shared_at_chance else "**outside**"), display=False)
regression_above = ceilings["logistic regression, diagnostic values"] > ideal_accuracy
glue("ceiling_note", Markdown(
    "The regression scores above the ideal observer here: the ideal observer is the best rule *in expectation*, "
    f"and on {len(test)} test clips either accuracy can move by a few percent by chance, so a ceiling is a level "
    "to compare with, not a bound no run can pass." if regression_above else
    "Neither passes the ideal observer, as expected of the best rule in expectation."), display=False)

# %% [markdown]
# On the {glue:text}`n_clips` clips of this profile, the ideal observer reaches
# {glue:text}`ideal_observer_accuracy:.1%` on the test birds and a regression on the diagnostic
# values {glue:text}`diagnostic_features_logreg_accuracy:.1%`; on the shared values the regression
# gets {glue:text}`shared_features_logreg_accuracy:.1%`, {glue:md}`shared_verdict` chance ± 1.96 standard errors
# (50 % ± {glue:text}`chance_band_half_width:.1%` for this test set: a band over clips, which
# treats them as independent; a bird's clips are not, so a band over birds can be wider; chapter 03
# sets the two side by side).
# {glue:md}`ceiling_note`
#
# ## The masks: where the dialect evidence is
#
# The generator renders each song twice more without noise: once with the diagnostic elements
# only, once with all song elements. A cell of the STFT grid (512-sample Hann window, hop 26, the
# paper's settings; chapter 02) belongs to the **diagnostic mask** when the diagnostic elements
# alone come within 30 dB of the song's loudest cell, and to the **song mask** when the whole song
# does — in both cases only where they also reach the image's −40 dB floor: below it the image
# draws the cell at the floor, showing none of the song, so there is no evidence there to find
# (the 30 dB rule alone takes in such cells around a quiet song's elements;
# `tests/test_surrogate.py` checks that no mask does). Because the masks come from the elements
# alone, they are exact wherever those elements carry energy, whatever the noise does.

# %% tags=["hide-input"]
grid_cells = dataset.mask_shape[0] * dataset.mask_shape[1]
diagnostic_area = np.array([len(c) for c in dataset.diagnostic_cells]) / grid_cells
song_area = np.array([len(c) for c in dataset.song_cells]) / grid_cells
inside_song = np.array([np.isin(d, s, assume_unique=True).mean()  # each clip's cells are distinct indices
                        for d, s in zip(dataset.diagnostic_cells, dataset.song_cells)])
frequencies = PAPER_STFT.bin_frequencies_hz()
rows_used = np.unique(np.concatenate(dataset.diagnostic_cells) // dataset.mask_shape[1])
mask_summary = pd.DataFrame({
    "share of the grid (median)": [np.median(diagnostic_area), np.median(song_area)],
    "share of the grid (range)": [f"{diagnostic_area.min():.2%} – {diagnostic_area.max():.2%}",
                                  f"{song_area.min():.2%} – {song_area.max():.2%}"],
}, index=["diagnostic mask", "song mask"])
display(mask_summary.style.format({"share of the grid (median)": "{:.2%}"}))
print(f"diagnostic cells inside the song mask: {inside_song.mean():.1%}; "
      f"diagnostic mask spans {frequencies[rows_used.min()]:.0f}–{frequencies[rows_used.max()]:.0f} Hz")
wrenlib.record_result(PROFILE, "diagnostic_mask_area_median", float(np.median(diagnostic_area)))
wrenlib.record_result(PROFILE, "song_mask_area_median", float(np.median(song_area)))
# the same masks on this profile's pixels, as the later chapters score them (a sample of the clips)
sampled = np.random.default_rng(SEED).choice(len(dataset), size=min(64, len(dataset)), replace=False)
pixel_area = render_mask(np.stack([dataset.diagnostic_mask(int(i)) for i in sampled]),
                         front_end_for_profile(PROFILE)).mean(axis=(1, 2))
glue("diagnostic_pixel_area_median", float(np.median(pixel_area)), display=False)
glue("diagnostic_pixel_to_grid_area", float(np.median(pixel_area / diagnostic_area[sampled])), display=False)

# %% [markdown]
# The diagnostic mask covers a median {glue:text}`diagnostic_mask_area_median:.1%` of the
# time-frequency grid and the whole song {glue:text}`song_mask_area_median:.1%`: a map that
# spreads its relevance evenly would put only that share inside the mask. Chapter 08 scores the
# explanation methods against these masks drawn on the image's pixels
# (`wrenlib.frontend.render_mask`): a pixel belongs to the mask when any cell under it does, so
# the areas come out larger there — the diagnostic mask a median
# {glue:text}`diagnostic_pixel_area_median:.1%` of this profile's image, clip by clip
# {glue:text}`diagnostic_pixel_to_grid_area:.1f` times its share of the grid.
#
# ## The field around the bird
#
# Each clip mixes the song into a background of two groups. In the band, where it competes with
# the song: broadband coloured (1/f-like) noise in every clip, an insect chorus in half of the
# clips and up to three calls of other birds. Below the band: wind gusts and mains hum, which the
# paper's 1.5 kHz band-pass removes. The signal-to-noise ratio is drawn from 5–30 dB and defined
# **in-band**: the power of the band-passed song while it sings over the power of the band-passed
# noise. The background's make-up is the same for both dialects.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Step histogram of the in-band signal-to-noise ratio per clip in dB, Eastern in blue and Mexican in orange overlaid, both spread over the same range."}}
sources = dataset.background.merge(clips[["clip", "dialect"]], on="clip")
share = (sources.groupby(["dialect", "source"])["clip"].nunique() / clips.groupby("dialect").size()).unstack(0)
display(share.style.format("{:.0%}").set_caption("share of clips with each background source"))
fig, ax = plt.subplots(figsize=(6, 2.8))
sns.histplot(data=clips, x="snr_db", hue="dialect", bins=20, element="step", ax=ax, hue_order=list(DIALECTS))
ax.set_xlabel("in-band SNR (dB)")
ax.set_title("Signal-to-noise ratio per clip")
plt.show()

# %% [markdown]
# ## Design your own song
#
# The widget below synthesises a song with the diagnostic values you choose, shows it with its
# diagnostic mask and plays it. Its title reports how the ideal observer would read those values.
# Start from the Eastern means and push the trill rate up and its bandwidth down until the song
# turns Mexican. In the static book the figure below shows the default settings; open the chapter
# in Jupyter or Colab to move the sliders.

# %% tags=["hide-input"]
fig, designed = song_designer_figure()
display(figures_with_audio([fig], [designed.waveform], ["The default song (Eastern means): listen"]))

# %% tags=["remove-output"]
song_designer()

# %% [markdown]
# ## What this chapter established
#
# - A surrogate of two wren dialects whose only dialect difference lies in three measurable
#   features of two elements, the trill and the buzz, with overlapping distributions.
# - Four song types per dialect as sub-populations, birds with individual pitch and tempo, and a
#   split by bird.
# - For every clip: its labels, its element list and exact diagnostic and song masks.
# - Ceilings: the ideal observer and the feature regressions above; the shared elements carry no
#   dialect information.
#
# Chapter 02 turns these recordings into the paper's spectrogram images.
