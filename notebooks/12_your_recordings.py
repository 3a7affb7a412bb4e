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
# # Your own recordings
#
# Chapters 01–11 ran on the book's surrogate data, where every clip knows its song type and
# where its diagnostic elements lie. A researcher's recordings know none of that. This chapter
# runs the whole pipeline on a **folder of recordings**, the way you would run it on your own:
# load, train, explain, ensemble, look for sub-populations — and then the checks of chapter 10
# that need no ground truth, only the model.
#
# By default the chapter writes its own small folder from the surrogate generator, so that it
# executes anywhere (CI runs it): one recording per bird, in a mix of formats, sample rates and
# channel counts, plus three broken files. To run it on your recordings, set `RECORDINGS` to a
# folder with one subfolder per dialect (or to a CSV manifest with `path` and `label` columns,
# chapter 02) — in the cell below, or from the command line:
#
# ```bash
# .venv/bin/papermill -k wrenbook -p RECORDINGS /path/to/my_recordings notebooks/12_your_recordings.ipynb my_run.ipynb
# ```

# %% tags=["remove-cell"]
import subprocess, sys  # noqa: E401
if "google.colab" in sys.modules:  # on Colab, install the book's library first (make install did it elsewhere)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "wrenlib[book] @ git+https://github.com/wrenbook/wrenbook"],
                   check=True)

# %% tags=["parameters"]
PROFILE = "quick"
SEED = 0
RECORDINGS = ""  # your folder or manifest; empty: write a demo folder from the surrogate generator
BIRDS_PER_DIALECT = 24  # the demo folder's size (one recording per bird)
EXPLAIN_CLIPS = 8  # test clips that every method explains

# %% tags=["hide-input"]
from pathlib import Path
from tempfile import mkdtemp

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display
from matplotlib.ticker import PercentFormatter
from myst_nb import glue

import wrenlib
from wrenlib.dataset import load_surrogate_dataset
from wrenlib.ensembles import average_ensemble
from wrenlib.explain import METHOD_TITLES, explain_methods, explained_clips, image_as_map, normalise_maps
from wrenlib.faithfulness import faithfulness_scores, random_maps
from wrenlib.frontend import front_end_for_profile
from wrenlib.latent import (choose_clusters, embed, fitting_k_range, fitting_perplexity, label_agreement,
                            latent_features)
from wrenlib.metrics import decide_family, interval_table, listing, paired_comparisons, summarise_scores
from wrenlib.plotting import figures_with_audio, plot_attribution
from wrenlib.recordings import describe_folder, recordings_dataset, write_demo_recordings
from wrenlib.training import accuracy_with_interval, predict, train_model, training_config_for_profile

wrenlib.set_seed(SEED)
profile = wrenlib.get_profile(PROFILE)
device = wrenlib.choose_device()
sns.set_theme(style="whitegrid")
print(f"profile {profile.name!r}; device {wrenlib.describe_device(device)}")

# %% [markdown]
# ## 1. The folder
#
# A folder as a field season leaves it: one subfolder per dialect, one file per recording. The
# demo takes {glue:text}`demo_birds` birds per dialect from the surrogate clips (chapter 01),
# joins each bird's clips into one recording and writes it as WAV (16-bit at 44.1 kHz, or float
# at 22.05 kHz) or FLAC (24-bit stereo at 48 kHz); a corrupt file, an empty one and a one-second
# one are added (`wrenlib.recordings.write_demo_recordings`). The headers, as
# `wrenlib.recordings.describe_folder` reads them (the one-second file at the book's rate has a
# sound header and counts among the WAV files here; loading skips it as too short, below):

# %% tags=["hide-input"]
if RECORDINGS:
    source = Path(RECORDINGS).expanduser()
else:
    surrogate = load_surrogate_dataset(PROFILE, seed=SEED)
    source = write_demo_recordings(Path(mkdtemp()) / "my_recordings", surrogate.waveforms, surrogate.clips,
                                   birds_per_dialect=BIRDS_PER_DIALECT)
glue("demo_birds", BIRDS_PER_DIALECT if not RECORDINGS else "(not used)", display=False)
if source.is_dir():
    files = describe_folder(source)
    display(files[files["problem"] == ""].groupby(["class", "format"]).agg(
        files=("file", "size"), seconds=("seconds", "sum"),
        **{"sample rates": ("sample_rate_hz", lambda r: ", ".join(f"{rate / 1000:g} kHz" for rate in sorted(set(r.dropna()))))})
        .style.format({"seconds": "{:.0f}"}))
    unreadable = files[files["problem"] != ""]
    if len(unreadable):
        display(unreadable[["file", "bytes", "problem"]].style.hide(axis="index"))

# %% [markdown]
# ## 2. Loading: what was used, what was skipped, and why
#
# `wrenlib.recordings.recordings_dataset` reads every file (any rate and channel count: mixed to
# mono and resampled to the book's rate), band-passes it, cuts it into clips, renders each clip
# as the image of chapter 02 and splits the clips **by recording**: all clips of one recording
# go to one of train, validation and test, never two. Clips of one recording share the bird,
# the site, the microphone and the weather; split by clip, a model can score well by
# recognising recordings. A file that cannot be used is reported with the reason and skipped;
# the rest loads. The images keep the book's fixed level scale (chapter 02), so a recording far
# quieter than the book's clips draws black images: it is reported as "too quiet for the
# images", with its level, rather than trained on. Before any training, the load checks that
# there are two classes at least, each with recordings in the training and validation splits
# (`for_training=True`): a misspelled label is often a class of one recording.

# %% tags=["hide-input"]
front_end = front_end_for_profile(PROFILE)
dataset, recordings, report = recordings_dataset(source, front_end, seed=SEED, background="black", progress=False,
                                                 for_training=True)
labels = recordings.label_names
print(report)
overview = (dataset.clips.groupby(["dialect", "split"])
            .agg(recordings=("recording_id", "nunique"), clips=("clip", "size"))
            .unstack("split").reindex(columns=["train", "validation", "test"], level=1))
display(overview)
wrenlib.record_result(PROFILE, "own_recordings_files_loaded", report.files_loaded)
wrenlib.record_result(PROFILE, "own_recordings_files_skipped", len(report.skipped))
wrenlib.record_result(PROFILE, "own_recordings_clips", len(dataset))

# %% [markdown]
# {glue:text}`own_recordings_files_loaded` files gave {glue:text}`own_recordings_clips` clips;
# {glue:text}`own_recordings_files_skipped` files were skipped. One test clip of each dialect,
# to look at and to listen to:

# %% tags=["hide-input"]
test = dataset.split_indices("test")
shown = [int(test[dataset.labels[test] == label][0]) for label in range(len(labels)) if np.any(dataset.labels[test] == label)]
figures, sounds, captions = [], [], []
for index in shown:
    row = dataset.clips.iloc[index]
    fig, ax = plt.subplots(figsize=(7, 2.6))
    plot_attribution(dataset.image(index), None, ax=ax, front_end=front_end)
    ax.set_title(f"{row['dialect']}: {Path(row['file']).name} from {row['start_s']:.0f} s", fontsize=10)
    fig.tight_layout()
    figures.append(fig)
    sounds.append(recordings.waveforms[index])
    captions.append(f"{row['dialect']}, {Path(row['file']).name}, clip at {row['start_s']:.0f} s (band-passed)")
    plt.close(fig)
display(figures_with_audio(figures, sounds, captions, front_end.sample_rate_hz))

# %% [markdown]
# ## 3. Training the paper's CNN
#
# The network, optimiser and early stopping of chapter 03, from new weights
# (`wrenlib.training.train_model`); black backgrounds only (chapter 03 explains why the book's
# own model also sees white ones).

# %%
model, history = train_model(dataset, training_config_for_profile(PROFILE, SEED), n_classes=len(labels),
                             device=device, progress=False)
correct = predict(model, dataset, test, device).argmax(1) == dataset.labels[test]
recordings_tested = dataset.clips["recording_id"].iloc[test].to_numpy()
accuracy, low, high = accuracy_with_interval(correct, recordings_tested, seed=SEED)  # recordings resampled, not clips
print(f"{len(history)} epochs; test accuracy {accuracy:.1%} (95 % interval over recordings {low:.1%}-{high:.1%}) "
      f"on {len(test)} clips of {len(set(recordings_tested))} recordings")

# %% tags=["hide-input"] mystnb={"image": {"alt": "Learning curves of the model trained on the recordings, against epoch in two panels: loss left and accuracy right, each with a training and a validation line."}}
wrenlib.record_result(PROFILE, "own_recordings_test_accuracy", float(accuracy))
wrenlib.record_result(PROFILE, "own_recordings_test_accuracy_ci", f"{low:.0%}–{high:.0%}")
book = wrenlib.read_results(PROFILE)  # chapter 03's model, on the surrogate (not loaded here)
book_accuracy, book_train_clips = book.get("test_accuracy"), book.get("train_clips")
glue("book_accuracy", f"{book_accuracy:.0%}" if book_accuracy is not None else "(chapter 03 not run)", display=False)
glue("book_train_clips", book_train_clips if book_train_clips is not None else "(chapter 03 not run)", display=False)
glue("own_accuracy", f"{accuracy:.0%}", display=False)
glue("train_clips", len(dataset.split_indices("train")), display=False)
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, measure in zip(axes, ("loss", "accuracy")):
    ax.plot(history["epoch"], history[f"train_{measure}"], marker="o", label="train")
    ax.plot(history["epoch"], history[f"validation_{measure}"], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(measure)
axes[0].legend()
per_dialect = pd.DataFrame({"dialect": np.array(labels)[dataset.labels[test]], "correct": correct,
                            "recording": recordings_tested})
dialect_rows = []
for name, group in per_dialect.groupby("dialect"):  # each dialect's accuracy, its interval over its recordings
    value, low_d, high_d = accuracy_with_interval(group["correct"].to_numpy(), group["recording"].to_numpy(), seed=SEED)
    dialect_rows.append({"dialect": name, "accuracy (95 % interval over recordings)":
                         f"{value:.1%} [{low_d:.1%}, {high_d:.1%}]" if np.isfinite(low_d) else f"{value:.1%} (one recording)",
                         "test clips": len(group), "recordings": group["recording"].nunique()})
display(pd.DataFrame(dialect_rows).set_index("dialect"))
fig.tight_layout()
plt.show()

# %% [markdown]
# Test accuracy {glue:text}`own_accuracy`, from {glue:text}`train_clips` training clips; the
# book's model of chapter 03 reached {glue:text}`book_accuracy` from
# {glue:text}`book_train_clips`. The interval is wide because the test set is a handful of
# recordings, and recordings, not clips, are the independent units: it resamples whole
# recordings (`wrenlib.training.accuracy_with_interval` with each clip's recording). With real data, report the
# number of recordings beside every accuracy.
#
# ## 4. Explanations and the paper's ensemble
#
# The four methods of chapters 04–07 with the profile's budgets
# (`wrenlib.explain.explain_methods`), for the class the model predicts, and the paper's
# ensemble, the average of Grad-CAM and DeepLIFT (chapter 08), on {glue:text}`explained_text`
# (LIME's and SHAP's budgets make every clip costly: the `EXPLAIN_CLIPS` parameter asks for more):

# %%
chosen = explained_clips(dataset, EXPLAIN_CLIPS, seed=SEED)
recording_of = dataset.clips["recording_id"].to_numpy()
per_class = pd.Series(dataset.clips["dialect"].to_numpy()[chosen]).value_counts().reindex(labels, fill_value=0)
glue("explained_text", f"{len(chosen)} test clips ({', '.join(f'{n} {name}' for name, n in per_class.items())}) from "
     f"{len(set(recording_of[chosen]))} of the {len(set(recording_of[test]))} test recordings", display=False)
pictures = dataset.images(chosen)
raw = explain_methods(model, pictures, PROFILE, dataset, device=device, seed=SEED)
maps = {METHOD_TITLES[method]: normalise_maps(values) for method, values in raw.items()}
maps["average (GC+DL)"] = average_ensemble({name: maps[name] for name in ("Grad-CAM", "DeepLIFT")})
probabilities = predict(model, dataset, chosen, device)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Grid of test clips, two per dialect in rows labelled true and predicted dialect: the image, then Grad-CAM, DeepLIFT, LIME, SHAP and average-ensemble maps over it, yellow to dark red."}}
dialect_of = dataset.clips["dialect"].to_numpy()[chosen]
shown = [int(p) for name in labels for p in np.flatnonzero(dialect_of == name)[:2]]  # two clips of each dialect
rows = len(shown)
fig, axes = plt.subplots(rows, len(maps) + 1, figsize=(2.6 * (len(maps) + 1), 1.75 * rows + 0.5), squeeze=False)
for row, position in enumerate(shown):
    predicted = int(np.argmax(probabilities[position]))
    plot_attribution(pictures[position], None, ax=axes[row, 0], front_end=front_end)
    axes[row, 0].set_ylabel(f"{dialect_of[position]}\n→ {labels[predicted]} {probabilities[position, predicted]:.0%}",
                            fontsize=8)
    for column, (name, values) in enumerate(maps.items(), start=1):
        plot_attribution(pictures[position], values[position], ax=axes[row, column], front_end=front_end)
        axes[row, column].set_ylabel("")
    for ax in axes[row]:
        ax.set_xlabel("")
        ax.tick_params(labelsize=6)
for column, name in enumerate(["image", *maps]):
    axes[0, column].set_title(name, fontsize=9)
fig.suptitle("Test clips (rows: true dialect → predicted, with probability) and their maps", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# Without masks there is no "right answer" to score these maps against. What can be measured
# is whether a map points at what the model uses.
#
# ## 5. Do the maps explain this model?
#
# The deletion and insertion test of chapter 10 (`wrenlib.faithfulness.faithfulness_scores`):
# remove (or restore) the top-ranked pixels of each map, 1 % at a time up to 10 %, and follow
# the model's probability of the class it predicted. Two references need no explanation method
# at all: a random map, and the image itself as a map (the loudest pixels first). A method
# worth reading on your data must beat both.

# %%
references = {"reference: the image": image_as_map(pictures), "reference: random map": random_maps(pictures.shape, seed=SEED)}
fractions, curves, faithfulness = faithfulness_scores(model, pictures, {**maps, **references},
                                                      targets=probabilities.argmax(1), device=device)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Two panels of mean probability of the predicted class against the share of pixels removed (deletion, left) or restored (insertion, right); one line per map, dashed for the image and random maps."}}
# the recordings are the independent units: each recording's clips averaged, then Student's t over the recordings
faithfulness["recording"] = recording_of[chosen][faithfulness["position"]]
per_recording = faithfulness.groupby(["map", "recording"], as_index=False)[["deletion AUC", "insertion AUC"]].mean()
summary = summarise_scores(per_recording, ["map"], ["deletion AUC", "insertion AUC"], method="t", bounds=(0, 1))
n_recordings = per_recording["recording"].nunique()
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
for ax, mode in zip(axes, ("deletion", "insertion")):
    for name in [*maps, *references]:
        style = dict(ls="--", lw=1.2) if name.startswith("reference") else dict(lw=1.8)
        ax.plot(fractions, curves[(name, mode)].mean(0), label=name.replace("reference: ", ""), **style)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("share of pixels " + ("removed" if mode == "deletion" else "restored"))
    ax.set_title(mode + (" (lower = more faithful)" if mode == "deletion" else " (higher = more faithful)"), fontsize=10)
axes[0].set_ylabel("probability of the predicted class")
axes[1].legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()
areas = per_recording.groupby("map")["deletion AUC"].mean()
display(interval_table(summary, "map").loc[areas.sort_values().index])
IMAGE, RANDOM = references
# every map against both references, paired over the recordings, the whole family Holm-adjusted
against_references = decide_family(paired_comparisons(faithfulness, {name: (IMAGE, RANDOM) for name in maps},
                                                      score="deletion AUC", unit="recording")).set_index(["map", "against"])


def beats(name, reference):  # a lower deletion area: the comparison "lost" on the deletion score
    return against_references.loc[(name, reference), "result"] == "lost"


beats_both = [name for name in maps if beats(name, IMAGE) and beats(name, RANDOM)]
beats_one = {name: "the image" if beats(name, IMAGE) else "the random map" for name in maps
             if name not in beats_both and (beats(name, IMAGE) or beats(name, RANDOM))}
neither = [name for name in maps if name not in beats_both and name not in beats_one]
for name in maps:
    wrenlib.record_result(PROFILE, wrenlib.result_key("own_recordings_deletion_area", name), float(areas[name]),
                          glue=False)
glue("faithful_text", Markdown(" ".join(part for part in (
    f"On this run {listing(beats_both, bold=True) if beats_both else '**no map**'} removed the evidence faster than "
    "both references, recording by recording (paired t-tests, Holm-adjusted over every map and reference).",
    " ".join(f"{listing([n for n, beaten in beats_one.items() if beaten == reference], bold=True)} beat {reference} "
             "only." for reference in sorted(set(beats_one.values()))),
    f"{listing(neither, bold=True)} {'is' if len(neither) == 1 else 'are'} not told apart from either reference "
    f"({n_recordings} recordings: too few to decide is not the same as no better)." if neither else "") if part)),
     display=False)
glue("image_area", f"{areas['reference: the image']:.2f}", display=False)
glue("random_area", f"{areas['reference: random map']:.2f}", display=False)

# %% [markdown]
# Lower deletion areas mean the probability fell sooner (the image as a map: area
# {glue:text}`image_area`; the random map: {glue:text}`random_area`; the table's intervals are
# Student's t over the recordings of the explained clips, each recording's clips averaged).
# {glue:md}`faithful_text`
# Chapter 10 explains why the image can be the harder floor on a spectrogram: the loudest pixels are the song, and the song is what the model
# uses. A map that loses to it adds nothing a reader could not see in the spectrogram.
#
# ## 6. Sub-populations
#
# The latent features of every test clip (chapter 09), a t-SNE, and clusters per dialect with
# their number chosen by silhouette, never by labels. On real recordings the question that
# matters first is one the surrogate cannot pose: **do the clusters follow recordings** (the
# site, the day, the microphone) rather than song? Chapter 09 could only ask it of the bird.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Three t-SNE scatter plots of the test clips' latent features, coloured by dialect, by cluster and by recording, with marker shape showing the dialect."}}
features = latent_features(model, dataset.images(test), device=device)
tsne = embed(features, "tsne", perplexity=fitting_perplexity(len(test)), seed=SEED)
clusters = np.zeros(len(test), dtype=object)
agreement = []
test_clips = dataset.clips.iloc[test].reset_index(drop=True)
for name in labels:
    members = (test_clips["dialect"] == name).to_numpy()
    if members.sum() < 6:
        continue
    found, _ = choose_clusters(tsne[members], k_range=fitting_k_range(int(members.sum()), largest=5), seed=SEED)
    clusters[members] = [f"{name} {c + 1}" for c in found]
    agreement.append(label_agreement(found, {"recording": test_clips.loc[members, "recording_id"].to_numpy()},
                                     seed=SEED).assign(dialect=name))
agreement = pd.concat(agreement, ignore_index=True) if agreement else pd.DataFrame()
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, (title, hue) in zip(axes, (("dialect", test_clips["dialect"]), ("cluster", clusters.astype(str)),
                                   ("recording", test_clips["recording_id"].map(lambda p: Path(p).stem)))):
    sns.scatterplot(x=tsne[:, 0], y=tsne[:, 1], hue=hue, hue_order=sorted(set(hue)), style=test_clips["dialect"],
                    s=30, ax=ax, palette="tab10" if title != "recording" else "tab20", legend=title != "recording")
    if ax.get_legend() is not None:
        ax.get_legend().set_title(title)
    ax.set_title(f"t-SNE of the test clips, coloured by {title}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
if len(agreement):
    display(agreement.assign(ARI=agreement.apply(lambda r: f"{r['ari']:.2f} [{r['ari_low']:.2f}, {r['ari_high']:.2f}]", axis=1))
            [["dialect", "n_clusters", "n_values", "ARI"]].rename(columns={"n_clusters": "clusters", "n_values": "recordings"})
            .style.hide(axis="index"))
    wrenlib.record_result(PROFILE, "own_recordings_cluster_recording_ari", float(agreement["ari"].mean()))
else:
    wrenlib.record_result(PROFILE, "own_recordings_cluster_recording_ari", float("nan"))

# %% [markdown]
# An ARI near 0 says the clusters cut across recordings; it is high only when the clusters and
# the recordings split the clips the same way, which needs about as many clusters as recordings
# (here the mean over dialects is {glue:text}`own_recordings_cluster_recording_ari:.2f`, with the
# clusters and recordings of each dialect in the table). With few test recordings the interval is wide. On real data, add a column per thing you know — site,
# date, recordist, microphone — to the table given to `wrenlib.latent.label_agreement`: a cluster
# that follows the site is a confound to name, not a sub-population of song.
#
# ## 7. Your own run, step by step
#
# - **The folder.** One subfolder per dialect; or a CSV manifest with `path` and `label` and,
#   if you have them, `recording_id`, `latitude`, `longitude`, `licence` and `split` columns
#   (`split` holds train, validation or test; an empty cell splits that clip by recording).
#   `wrenlib fetch-xc` writes such a manifest from xeno-canto; the `labels.csv` of
#   `wrenlib synth` is one too, its `individual` read as the recording (a bird's clips together).
#   Audio sampled below 18 kHz cannot hold the 9 kHz band, and is reported and skipped.
# - **The run.** `.venv/bin/papermill -k wrenbook -p RECORDINGS <folder> notebooks/12_your_recordings.ipynb out.ipynb`,
#   or similar steps on the command line:
#   `wrenlib train <folder> --background black --out model.pt`, `wrenlib evaluate model.pt <folder>`,
#   `wrenlib explain <files> --model model.pt --method deeplift --out maps/`. The command line
#   explains the first clip with song of each recording only, and its SHAP is shap's
#   model-agnostic partition explainer (this chapter's is DeepExplainer, which needs
#   training images as references); `wrenlib explain --help` lists its settings.
# - **Before believing the classifier.** Split by recording (the default here); quote accuracy
#   with its interval and the number of test recordings; check the skipped files; and read a
#   map only if it beats the image as a map in section 5.
# - **Before believing a cluster.** Colour the t-SNE by everything you know about the
#   recordings, and compare the clusters with each (section 6).
