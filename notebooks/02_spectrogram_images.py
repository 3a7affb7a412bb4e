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
# # From recording to spectrogram image
#
# The paper's network never hears a sound: it looks at pictures. This chapter builds the front end
# that turns a recording into the picture, exactly as the paper describes it
# {cite}`faruqui2025explainability` — band-pass 1.5–9 kHz, 4 s clips, an STFT with a 512-sample
# window and 95 % overlap, decibels shown from −40 to +5 dB, images of 480 × 960 pixels with a
# black, white or mixed background — and states every choice the paper leaves open. It ends with
# the door for real recordings.

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
from dataclasses import replace
from pathlib import Path
from tempfile import mkdtemp

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue
from scipy import signal

import wrenlib
from wrenlib.audio import bandpass, bandpass_sos
from wrenlib.bench import OtherWork
from wrenlib.dataset import load_surrogate_dataset
from wrenlib.frontend import (
    PAPER_FRONT_END,
    benchmark_front_end,
    front_end_for_profile,
    pixel_frequencies_hz,
    pixel_times_s,
    render_levels,
    render_mask,
)
from wrenlib.images import load_spectrogram_dataset
from wrenlib.plotting import figures_with_audio, plot_spectrogram
from wrenlib.recordings import load_recordings, split_by_recording, write_demo_recordings
from wrenlib.spectrogram import PAPER_STFT, StftSettings, spectrogram_db, stft_power
from wrenlib.widgets import front_end_explorer, front_end_figure

wrenlib.set_seed(SEED)
profile = wrenlib.get_profile(PROFILE)
front_end = front_end_for_profile(PROFILE)
surrogate = load_surrogate_dataset(PROFILE, seed=SEED)
example = int(surrogate.split_indices("test")[0])
waveform = np.asarray(surrogate.waveforms[example])
rate = front_end.sample_rate_hz
print(f"profile {profile.name!r}: images {front_end.image_height_px} x {front_end.image_width_px}; "
      f"example clip {example} ({surrogate.clips.loc[example, 'dialect']}, "
      f"song type {surrogate.clips.loc[example, 'song_type']}); device {wrenlib.describe_device()}")

# %% [markdown]
# Every setting lives in one place, `wrenlib.frontend.FrontEnd`; the values the paper states are
# its defaults, and the ones it leaves open are parameters with a stated default:

# %% tags=["hide-input"]
settings = pd.DataFrame([
    ("band-pass", f"{front_end.band_hz[0]:g}–{front_end.band_hz[1]:g} Hz", "paper"),
    ("filter", f"{front_end.filter_type}, order {front_end.filter_order}, zero-phase (forwards and backwards)", "our choice"),
    ("clip length / hop", f"{front_end.clip_seconds:g} s / {front_end.clip_hop_seconds:g} s", "paper / our choice"),
    ("short last piece", f"zero-padded if at least {front_end.min_tail_seconds:g} s, else dropped", "our choice"),
    ("clip without song", f"dropped if its in-band level is below {front_end.min_clip_level_db:g} dB", "our choice"),
    ("STFT window", f"{PAPER_STFT.window_samples} samples, {PAPER_STFT.window} (periodic), frames centred", "paper / our choice"),
    ("overlap and hop", f"{PAPER_STFT.overlap:.0%}: 512 x 5 % = 25.6 -> {PAPER_STFT.hop_samples} samples", "paper / rounding ours"),
    ("decibel reference", "a unit-amplitude sine at a bin centre = 0 dB", "our choice"),
    ("display range", f"{front_end.db_range[0]:g} to {front_end.db_range[1]:g} dB; below the floor = background", "paper"),
    ("image", f"{front_end.image_height_px} x {front_end.image_width_px} (paper: 480 x 960), frequency up, 0 Hz to Nyquist", "paper / profile"),
    ("pixel value", f"{front_end.pixel_pooling} power of the cells under the pixel, then dB", "our choice"),
    ("background", "black, white, or mixed (per clip, from the seed)", "paper"),
], columns=["step", "setting", "source"])
display(settings.style.hide(axis="index"))

# %% [markdown]
# ## 1. The band-pass filter
#
# A Bewick's wren sings between about 2 and 8.5 kHz; wind, traffic and hum live mostly below
# 1.5 kHz. The paper keeps 1.5–9 kHz. We use a Butterworth filter of order 4 run forwards and
# backwards (`scipy.signal.sosfiltfilt`), so it shifts nothing in time — a spectrogram must not
# move the song — and its magnitude response is squared (order 8 in effect).

# %% tags=["hide-input"] mystnb={"image": {"alt": "Line plot of gain in dB against frequency in kHz for four band-pass filters, the book's Butterworth order 4 drawn thick, band edges dotted; then the clip's waveform in grey with the band-passed one in red."}}
fig, ax = plt.subplots(figsize=(8, 3))
for filter_type, order in [("butter", 2), ("butter", 4), ("butter", 8), ("cheby2", 6)]:
    frequencies, response = signal.sosfreqz(bandpass_sos(rate, front_end.band_hz, order, filter_type),
                                            worN=4096, fs=rate)
    ax.plot(frequencies / 1000, 20 * np.log10(np.abs(response) ** 2 + 1e-12),
            label=f"{filter_type}, order {order}", lw=2.2 if (filter_type, order) == ("butter", 4) else 1)
for edge in front_end.band_hz:
    ax.axvline(edge / 1000, color="grey", ls=":")
ax.set_ylim(-100, 5)
ax.set_xlabel("frequency (kHz)")
ax.set_ylabel("gain, forwards and backwards (dB)")
ax.set_title("Band-pass responses; the book uses Butterworth order 4 (thick)")
ax.legend(fontsize=8)
plt.show()

filtered = bandpass(waveform, rate, front_end.band_hz, front_end.filter_order, front_end.filter_type)
fig, ax = plt.subplots(figsize=(9, 2.4))
seconds = np.arange(len(waveform)) / rate
ax.plot(seconds, waveform, lw=0.4, color="grey", label="as recorded")
ax.plot(seconds, filtered, lw=0.4, color="crimson", alpha=0.8, label="band-passed")
ax.set_xlabel("time (s)")
ax.set_ylabel("amplitude")
ax.set_title("The waveform: the band-pass strips the slow swell of wind and hum, the song stays")
ax.legend(loc="upper right", fontsize=8)
plt.show()

figures = []
for signal_, title in [(waveform, "the recording as synthesised"), (filtered, "after the band-pass")]:
    fig, ax = plt.subplots(figsize=(9, 2.8))
    plot_spectrogram(signal_, ax=ax, title=title)
    figures.append(fig)
display(figures_with_audio(figures, [waveform, filtered],
                           ["Before: listen for the low rumble of wind and hum",
                            "After: only the band the bird sings in"]))

# %% [markdown]
# ## 2. The STFT, one frame at a time
#
# The short-time Fourier transform cuts the clip into overlapping frames, weights each by a
# window, and takes the spectrum of each. With a 512-sample window and 95 % overlap the hop is
# 512 × 0.05 = 25.6 samples; samples are whole, so we round to 26 (the paper does not say how it
# rounded). Here is one frame computed by hand:

# %%
window_samples, overlap = 512, 0.95
hop = round(window_samples * (1 - overlap))                      # 25.6 -> 26 samples
padded = np.pad(filtered, window_samples // 2)                    # frames are centred on their time
m = 1_200                                                         # frame number m is at m * hop samples
frame = padded[m * hop: m * hop + window_samples] * np.hanning(window_samples + 1)[:-1]
column = np.abs(np.fft.rfft(frame)) ** 2                          # power of 257 frequency bins

library = stft_power(filtered)                                    # all frames at once (torch.stft)
print(f"hop {hop} samples; {library.shape[1]} frames x {library.shape[0]} bins; "
      f"hand-made frame vs library: largest relative difference "
      f"{np.max(np.abs(column - library[:, m])) / library[:, m].max():.1e}")

# %% [markdown]
# The grid has one row every {glue:text}`frequency_step_hz:.1f` Hz and one column every
# {glue:text}`time_step_ms:.2f` ms, while each frame sees {glue:text}`window_ms:.1f` ms of sound:
# the 95 % overlap does not sharpen time resolution (the window does), it samples it densely.

# %% tags=["hide-input"]
wrenlib.record_result(PROFILE, "hop_samples", PAPER_STFT.hop_samples)
wrenlib.record_result(PROFILE, "frequency_step_hz", rate / PAPER_STFT.window_samples)
wrenlib.record_result(PROFILE, "time_step_ms", 1000 * PAPER_STFT.hop_samples / rate)
wrenlib.record_result(PROFILE, "window_ms", 1000 * PAPER_STFT.window_samples / rate)
wrenlib.record_result(PROFILE, "stft_frames_per_clip", int(library.shape[1]))

# %% [markdown]
# ## 3. Decibels and the −40 .. +5 dB window
#
# Levels are in decibels against a fixed reference — a unit-amplitude sine reads 0 dB — so a
# given grey means the same loudness in every clip. The paper shows −40 to +5 dB: anything quieter
# than −40 dB takes the background colour, anything louder than +5 dB saturates.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Left: histogram, log count scale, of the clip's cell levels in dB with the -40 and +5 dB limits in red; right: the same clip as grey images with floors of -60, -40 (the paper's) and -20 dB."}}
db = spectrogram_db(filtered)
below = float(np.mean(db < front_end.db_range[0]))
fig, axes = plt.subplots(1, 4, figsize=(14, 3), gridspec_kw={"width_ratios": [1.1, 1, 1, 1]})
axes[0].hist(np.clip(db.ravel(), -120, 20), bins=120, color="grey")
for edge in front_end.db_range:
    axes[0].axvline(edge, color="crimson")
axes[0].set_yscale("log")
axes[0].set_xlabel("level (dB re unit sine)")
axes[0].set_ylabel("cells")
axes[0].set_title(f"{below:.0%} of cells below -40 dB")
for ax, db_range in zip(axes[1:], [(-60.0, 5.0), (-40.0, 5.0), (-20.0, 5.0)]):
    image = render_levels(filtered, replace(front_end, db_range=db_range))[0]
    ax.imshow(image, cmap="gray", aspect="auto", extent=(0, 4, 0, rate / 2000))
    ax.set_title(f"{db_range[0]:g} .. {db_range[1]:g} dB" + (" (paper)" if db_range == (-40.0, 5.0) else ""))
    ax.set_xlabel("time (s)")
    ax.grid(False)
axes[1].set_ylabel("frequency (kHz)")
fig.tight_layout()
plt.show()
wrenlib.record_result(PROFILE, "share_of_cells_below_floor", below)

# %% [markdown]
# A lower floor shows more of the background noise; a higher one hides the quieter song elements.
# In this clip {glue:text}`share_of_cells_below_floor:.0%` of the cells fall below the paper's
# floor and become pure background: the images are mostly empty, which is why chapter 03 puts a
# per-image standardisation inside the model rather than trusting raw pixel values.
#
# ## 4. From spectrogram to image
#
# The spectrogram has 257 rows and 3,393 columns; the image has
# {glue:text}`image_height_px` × {glue:text}`image_width_px` pixels in this profile (480 × 960 at
# paper scale). Each pixel takes the power of the cells beneath it — their **mean** by default
# (energy per pixel), or their **maximum** (keeps thin strokes at full brightness) — and only then
# becomes decibels. Frequency runs up, time across. The diagnostic and song masks of chapter 01
# go onto the same pixel grid, so a mask pixel and an image pixel cover the same cells; a mask
# pixel is set when any cell under it is.

# %% tags=["hide-input"] mystnb={"image": {"alt": "The same clip as three grey images (this profile with mean pooling, with max pooling, and at the paper's 480 x 960), the song mask outlined in yellow and the diagnostic mask in cyan."}}
wrenlib.record_result(PROFILE, "image_height_px", front_end.image_height_px)
wrenlib.record_result(PROFILE, "image_width_px", front_end.image_width_px)
fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
variants = [(front_end, "this profile, mean pooling"),
            (replace(front_end, pixel_pooling="max"), "this profile, max pooling"),
            (PAPER_FRONT_END, "paper size 480 x 960, mean pooling")]
for ax, (variant, title) in zip(axes, variants):
    image = render_levels(filtered, variant)[0]
    diagnostic = render_mask(surrogate.diagnostic_mask(example), variant)
    song = render_mask(surrogate.song_mask(example), variant)
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.contour(song, levels=[0.5], colors=["#ffd54f"], linewidths=0.7)
    ax.contour(diagnostic, levels=[0.5], colors=["#00e5ff"], linewidths=0.9)
    ax.set_title(f"{title}: {image.shape[0]} x {image.shape[1]}", fontsize=10)
    rows = np.linspace(0, image.shape[0] - 1, 5).astype(int)
    ax.set_yticks(rows, [f"{max(f, 0.0) / 1000:.1f}" for f in pixel_frequencies_hz(variant)[rows]])  # no "-0.0"
    columns = np.linspace(0, image.shape[1] - 1, 5).astype(int)
    ax.set_xticks(columns, [f"{t:.1f}" for t in pixel_times_s(variant)[columns]])
    ax.set_xlabel("time (s)")
    ax.grid(False)
axes[0].set_ylabel("frequency (kHz)")
fig.suptitle("The image the CNN sees, with the song mask (yellow) and the diagnostic mask (cyan) on its pixels")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Black, white and mixed backgrounds
#
# The paper rendered the same spectrograms on a black background (loud = bright) and on a white
# one (loud = dark), and found that training on a **mixed** set generalised best. Here the two
# are exact inverses of one *level* image, so the cache keeps one image per clip and the
# background is applied when a clip is read; a mixed set draws each clip's background from the
# seed.

# %%
images = load_spectrogram_dataset(PROFILE, background="mixed", seed=SEED)
image, label, metadata, masks = images[example]
print(f"{len(images)} images of {tuple(image.shape)}; item {example}: label {label}, "
      f"masks {', '.join(sorted(masks))}")
print("metadata:", ", ".join(f"{key} = {value}" for key, value in metadata.items()))

# %% tags=["hide-input"] mystnb={"image": {"alt": "Six test spectrogram images of the mixed set in two rows, each titled with dialect, song type and background: on black the song is bright, on white it is dark."}}
shown = images.split_indices("test")[:6]
fig, axes = plt.subplots(2, 3, figsize=(13, 4.6))
for ax, index in zip(axes.ravel(), shown):
    ax.imshow(images.image(index), cmap="gray", vmin=0, vmax=1, aspect="auto")
    row = images.clips.iloc[index]
    ax.set_title(f"{row['dialect']} {row['song_type']}, {images.backgrounds[index]} background", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Test images of the mixed set")
fig.tight_layout()
plt.show()
white_share = float(np.mean(images.backgrounds == "white"))
wrenlib.record_result(PROFILE, "mixed_set_white_share", white_share)

# %% [markdown]
# In the mixed set {glue:text}`mixed_set_white_share:.0%` of the clips have a white background.
# Chapter 03 repeats the paper's background experiment with these three sets.
#
# ## 6. The paper's quick check: 50 % against 95 % overlap
#
# Going from 50 % to 95 % overlap should give much finer time steps, a much wider spectrogram and
# more compute. Measured on 32 clips of this dataset, the best of three rounds that time the four
# overlaps in turn:

# %% tags=["hide-input"]
batch = bandpass(np.asarray(surrogate.waveforms[:32], np.float32))
SHARES, ROUNDS = (0.5, 0.75, 0.9, 0.95), 3
seconds = {share: [] for share in SHARES}
for share in SHARES:
    stft_power(batch[:2], StftSettings(overlap=share))  # warm-up
for _ in range(ROUNDS):  # the overlaps interleaved, each round timing all four: the machine is shared
    for share in SHARES:
        started = time.perf_counter()
        stft_power(batch, StftSettings(overlap=share))
        seconds[share].append(time.perf_counter() - started)
rows = []
for share in SHARES:
    stft = StftSettings(overlap=share)
    rows.append({"overlap": f"{share:.0%}", "hop (samples)": stft.hop_samples,
                 "frames per 4 s clip": stft.n_frames(len(batch[0])),
                 "time step (ms)": 1000 * stft.hop_samples / rate,
                 "STFT time per clip (ms)": 1000 * min(seconds[share]) / len(batch)})  # the least disturbed round
overlaps = pd.DataFrame(rows)
display(overlaps.style.format({"time step (ms)": "{:.2f}", "STFT time per clip (ms)": "{:.2f}"}).hide(axis="index"))
cost_ratio = rows[-1]["STFT time per clip (ms)"] / rows[0]["STFT time per clip (ms)"]
width_ratio = rows[-1]["frames per 4 s clip"] / rows[0]["frames per 4 s clip"]
wrenlib.record_result(PROFILE, "overlap_95_vs_50_width_ratio", width_ratio)
wrenlib.record_result(PROFILE, "overlap_95_vs_50_cost_ratio", cost_ratio)

# %% [markdown]
# At 95 % overlap the spectrogram is {glue:text}`overlap_95_vs_50_width_ratio:.1f` times wider
# than at 50 % and the STFT costs {glue:text}`overlap_95_vs_50_cost_ratio:.1f` times as much on
# this machine. The claim holds — with the caveat from section 2 that the finer time step is
# denser sampling of the same 23 ms window, not a sharper one. At 480 × 960 the image itself has
# only 960 columns, so the 3,393 frames are pooled about 3.5 to a pixel.
#
# ## 7. Try it
#
# The widget runs one clip through the front end with the window length, overlap, decibel range,
# background and pooling you choose, and reports the hop and the number of frames. The static
# book shows the paper's settings; open the chapter in Jupyter or Colab to move the controls.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Grey spectrogram image of one clip through the front end at the paper's settings (window 512, 95 percent overlap, black background): time in s across, frequency in kHz up, with a colour bar."}}
fig, facts = front_end_figure(waveform)
plt.show()

# %% tags=["remove-output"]
front_end_explorer(waveform)

# %% [markdown]
# ## 8. Real recordings in
#
# The same front end reads real recordings: a folder with one subfolder per class, or a CSV
# manifest with `path` and `label` columns (and optionally `recording_id`, `latitude`,
# `longitude`, `licence`, as in a xeno-canto export). WAV, FLAC, OGG and MP3 at any sample rate
# are read, mixed to mono, resampled to 22,050 Hz, band-passed and cut into clips. A file that
# cannot be used is reported with its reason and skipped; the rest loads. To show it without
# downloading anything, we write a small folder of "field recordings" from surrogate birds —
# in three formats and three sample rates, mono and stereo — and spoil three files on purpose:

# %%
folder = write_demo_recordings(Path(mkdtemp()) / "my_recordings", surrogate.waveforms, surrogate.clips)
recordings, report = load_recordings(folder, progress=False)
print(report)

# %% tags=["hide-input"]
recordings.clips["split"] = split_by_recording(recordings.clips, seed=SEED)
display(pd.crosstab(recordings.clips["recording_id"].map(lambda p: Path(p).name), recordings.clips["split"])
        .rename_axis(index="recording", columns="split"))
wrenlib.record_result(PROFILE, "demo_recordings_loaded", report.files_loaded)
wrenlib.record_result(PROFILE, "demo_recordings_skipped", len(report.skipped))

# %% [markdown]
# Each recording's clips go to one split only — a split by clip would let the network recognise
# a recording it has already heard. With your own recordings, the call is the same:
#
# ```python
# recordings, report = load_recordings("path/to/folder_or_manifest.csv", labels=("Eastern", "Mexican"))
# recordings.levels  # each clip's image as the model sees it (uint8 levels, rendered once by the load)
# ```
#
# `wrenlib.recordings.recordings_dataset` turns the same folder into a dataset split by
# recording, ready to train on (chapter 12), and from the shell,
# `wrenlib spectrogram my_recording.wav --out images/` writes the 480 × 960 image of every clip
# of each file.
#
# ## 9. Speed
#
# The front end is array code: the band-pass runs on all clips at once, the STFT is torch's,
# batched (on the GPU when there is one), and the pooling to pixels is one adaptive pooling call.
# The straightforward alternative — librosa's STFT and a matplotlib figure per clip — is measured
# beside it in the same run, on the same clips, at the paper's 480 × 960:

# %% tags=["hide-input"]
with OtherWork() as beside:  # how busy the rest of the machine was meanwhile
    speed = benchmark_front_end(np.asarray(surrogate.waveforms[:48]), PAPER_FRONT_END, device=wrenlib.choose_device())
display(pd.DataFrame({
    "clips per second": [speed["front_end_clips_per_second"], speed["baseline_clips_per_second"]],
}, index=["wrenlib front end (batched torch STFT)", "baseline (librosa + matplotlib per clip)"]).style.format("{:.1f}"))
wrenlib.record_result(PROFILE, "front_end_clips_per_second", speed["front_end_clips_per_second"])
wrenlib.record_result(PROFILE, "front_end_baseline_clips_per_second", speed["baseline_clips_per_second"])
wrenlib.record_result(PROFILE, "front_end_speed_up", speed["speed_up"])
glue("device_name", Markdown(wrenlib.describe_device() + beside.note()), display=False)

# %% [markdown]
# On {glue:md}`device_name`, the front end makes
# {glue:text}`front_end_clips_per_second:.0f` images of 480 × 960 per second,
# {glue:text}`front_end_speed_up:.1f` times the baseline. Each figure is the best of a few
# repeats, because the machines that build this book are shared.
