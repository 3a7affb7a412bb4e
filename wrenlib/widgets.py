"""Interactive widgets of the chapters. Each widget's callback is a plain function (tested, and
called once in the chapter for the static figure that the HTML book shows).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np

from .audio import SAMPLE_RATE_HZ, bandpass

from .plotting import figure_png_bytes, overlay_mask, plot_spectrogram, wav_bytes
from .surrogate import DIAGNOSTIC_FEATURES, SurrogateClip, design_song, mexican_probability

_FEATURES = {feature.name: feature for feature in DIAGNOSTIC_FEATURES}


def song_designer_figure(
    trill_rate_per_s: float = 10.5,
    trill_bandwidth_hz: float = 3_600.0,
    buzz_depth_hz: float = 835.0,
    song_type: int = 1,
    snr_db: float = 20.0,
    seed: int = 0,
) -> tuple[plt.Figure, SurrogateClip]:
    """Synthesise one song with the chosen diagnostic values and plot it (chapter 01's widget).

    The title reports how the three values would be read by the ideal observer of the dialect
    model: the probability that a song with these features is Mexican.
    """
    values = {"trill_rate_per_s": trill_rate_per_s, "trill_bandwidth_hz": trill_bandwidth_hz,
              "buzz_depth_hz": buzz_depth_hz}
    clip = design_song(
        trill_rate_per_s=trill_rate_per_s,
        trill_bandwidth_hz=trill_bandwidth_hz,
        buzz_depth_hz=buzz_depth_hz,
        song_type=song_type - 1,
        snr_db=snr_db,
        seed=seed,
    )
    fig, ax = plt.subplots(figsize=(10, 3.4))
    plot_spectrogram(clip.waveform, ax=ax)
    overlay_mask(clip.diagnostic_mask, ax=ax, label="diagnostic mask")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(
        f"song type {song_type}: trill {trill_rate_per_s:.1f} notes/s, "
        f"{trill_bandwidth_hz / 1000:.1f} kHz wide; buzz ±{buzz_depth_hz:.0f} Hz; SNR {snr_db:.0f} dB"
        f" -> P(Mexican) = {mexican_probability(values):.2f}",
        fontsize=10,
    )
    return fig, clip


def live_figure_panel(render: Callable[..., tuple[plt.Figure, np.ndarray | None]],
                      controls: dict[str, Any], sample_rate_hz: int = SAMPLE_RATE_HZ):
    """A panel of ``controls`` that re-renders ``render(**values) -> (figure, waveform or None)``.

    The figure and the sound travel as widget values (an Image and an Audio widget), not as cell
    output, so the panel also builds inside a non-interactive run (papermill). Where ``render``
    has no sound (a reader's clip whose audio the dataset does not keep), the player empties and
    hides: it never plays another picture's sound. The returned box has ``controls``, ``image``,
    ``player`` and ``update`` attributes for scripted use and tests.
    """
    import ipywidgets as widgets

    image = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
    player = widgets.Audio(format="wav", autoplay=False, loop=False)

    def update(_change=None) -> None:
        fig, waveform = render(**{name: control.value for name, control in controls.items()})
        image.value = figure_png_bytes(fig)
        player.value = b"" if waveform is None else wav_bytes(waveform, sample_rate_hz)
        player.layout.display = "none" if waveform is None else None

    for control in controls.values():
        control.observe(update, names="value")
    update()
    panel = widgets.VBox([widgets.HBox([widgets.VBox(list(controls.values())), player]), image])
    panel.update, panel.controls, panel.image, panel.player = update, controls, image, player
    return panel


def _style() -> dict[str, str]:
    return {"description_width": "9em"}


def song_designer():
    """Sliders for the diagnostic features, the song type, the noise and the seed; shows and plays
    the song (chapter 01). The sliders start at the Eastern means; the Mexican means are faster,
    narrower trills and a narrower buzz."""
    import ipywidgets as widgets

    def feature_slider(name: str, step: float, description: str):
        feature = _FEATURES[name]
        return widgets.FloatSlider(value=feature.dialect_mean(0, 1.6), min=feature.low, max=feature.high,
                                   step=step, description=description, continuous_update=False, style=_style())

    controls = {
        "trill_rate_per_s": feature_slider("trill_rate_per_s", 0.25, "trill rate (/s)"),
        "trill_bandwidth_hz": feature_slider("trill_bandwidth_hz", 50, "trill band (Hz)"),
        "buzz_depth_hz": feature_slider("buzz_depth_hz", 25, "buzz depth (Hz)"),
        "song_type": widgets.IntSlider(value=1, min=1, max=4, description="song type",
                                       continuous_update=False, style=_style()),
        "snr_db": widgets.FloatSlider(value=20, min=0, max=40, step=1, description="SNR (dB)",
                                      continuous_update=False, style=_style()),
        "seed": widgets.BoundedIntText(value=0, min=0, max=10**6, description="seed", style=_style()),
    }

    def render(**values):
        fig, clip = song_designer_figure(**values)
        return fig, clip.waveform

    return live_figure_panel(render, controls)


def front_end_figure(
    waveform: np.ndarray,
    window_samples: int = 512,
    overlap: float = 0.95,
    db_low: float = -40.0,
    db_high: float = 5.0,
    background: str = "black",
    pixel_pooling: str = "mean",
    image_size: tuple[int, int] = (480, 960),
) -> tuple[plt.Figure, dict[str, float]]:
    """One clip through the front end with the chosen settings, and what they cost (chapter 02).

    Returns the figure (the image the CNN would see) and a dict with the hop, the number of
    frames, the time and frequency steps and the STFT time in milliseconds.
    """
    import time

    from .frontend import PAPER_FRONT_END, apply_background, render_levels
    from .spectrogram import StftSettings

    stft = StftSettings(window_samples=window_samples, overlap=overlap)
    front_end = replace(PAPER_FRONT_END, stft=stft, db_range=(db_low, db_high),
                        image_height_px=image_size[0], image_width_px=image_size[1],
                        pixel_pooling=pixel_pooling)
    filtered = bandpass(np.asarray(waveform, np.float32))
    started = time.perf_counter()
    image = apply_background(render_levels(filtered, front_end)[0], background)
    milliseconds = 1000 * (time.perf_counter() - started)
    facts = {
        "hop_samples": stft.hop_samples,
        "frames": stft.n_frames(len(waveform)),
        "time_step_ms": 1000 * stft.hop_samples / stft.sample_rate_hz,
        "frequency_step_hz": stft.sample_rate_hz / window_samples,
        "render_ms": milliseconds,
    }
    fig, ax = plt.subplots(figsize=(10, 3.6))
    duration = len(waveform) / stft.sample_rate_hz
    shown = ax.imshow(image, cmap="gray", vmin=0, vmax=1, aspect="auto",
                      extent=(0, duration, 0, stft.sample_rate_hz / 2000))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    ax.grid(False)
    # a white background inverts the levels (wrenlib.frontend.apply_background): the floor is white
    ends = (0, 1) if background == "black" else (1, 0)
    fig.colorbar(shown, ax=ax, pad=0.01,
                 label=f"pixel value ({db_low:g} dB -> {ends[0]}, {db_high:g} dB -> {ends[1]})")
    ax.set_title(f"window {window_samples}, overlap {overlap:.1%} (hop {stft.hop_samples} samples = "
                 f"{facts['time_step_ms']:.1f} ms, {facts['frames']} frames), "
                 f"{background} background, {pixel_pooling} pooling", fontsize=9)
    return fig, facts


def front_end_explorer(waveform: np.ndarray):
    """Window length, overlap, decibel range, background and pooling on one clip (chapter 02)."""
    import ipywidgets as widgets

    controls = {
        "window_samples": widgets.Dropdown(options=[128, 256, 512, 1024, 2048], value=512,
                                           description="window", style=_style()),
        "overlap": widgets.FloatSlider(value=0.95, min=0.0, max=0.975, step=0.025, description="overlap",
                                       continuous_update=False, style=_style()),
        "db_low": widgets.FloatSlider(value=-40, min=-80, max=-10, step=5, description="floor (dB)",
                                      continuous_update=False, style=_style()),
        "db_high": widgets.FloatSlider(value=5, min=-10, max=20, step=5, description="ceiling (dB)",
                                       continuous_update=False, style=_style()),
        "background": widgets.ToggleButtons(options=["black", "white"], description="background",
                                            style=_style()),
        "pixel_pooling": widgets.ToggleButtons(options=["mean", "max"], description="pooling", style=_style()),
    }

    def render(**values):
        asked = values["db_high"]
        if asked <= values["db_low"]:  # the sliders overlap at -10 dB: the figure says what it drew
            values["db_high"] = values["db_low"] + 5
        fig, _ = front_end_figure(waveform, **values)
        if values["db_high"] != asked:
            ax = fig.axes[0]
            ax.set_title(ax.get_title() + f"\nceiling {asked:g} dB is not above the floor: drawn at "
                         f"{values['db_high']:g} dB", fontsize=9)
        return fig, waveform

    return live_figure_panel(render, controls)


# ------------------------------------------------------------------------------------------
# Explanation browser (chapters 04-07)
# ------------------------------------------------------------------------------------------


def clip_label(dataset, index: int) -> str:
    """A short label of a clip for menus and titles: dialect, song type, bird, background."""
    meta = dataset.metadata(int(index))
    parts = [str(meta.get("dialect", meta.get("label", "")))]
    if "song_type" in meta:
        parts.append(f"type {meta['song_type']}")
    if "individual" in meta:
        parts.append(f"bird {meta['individual']}")
    return f"clip {index}: " + ", ".join(parts) + f" ({meta['background']})"


def clip_waveform(dataset, index: int) -> np.ndarray | None:
    """The sound of a dataset clip where the dataset keeps it (surrogate clips), else None."""
    if getattr(dataset, "surrogate", None) is None:
        return None
    return np.asarray(dataset.surrogate.waveforms[int(dataset.clips.iloc[int(index)]["clip"])])


def explanation_figure(model, dataset, index: int, method: str, profile: str, device=None,
                       **settings: Any) -> tuple[plt.Figure, np.ndarray | None]:
    """One clip explained with one method and settings, from the cache or computed now: the
    image, the map over it with the diagnostic mask, and the model's answer (chapters 04-07).
    ``settings`` change the profile's (:func:`wrenlib.explain.settings_for_profile`), so that
    the chapter's own maps come from the cache."""
    import torch

    from .explain import METHOD_TITLES, explain_dataset, make_settings, settings_for_profile
    from .metrics import relevance_mass
    from .plotting import attribution_colorbar, plot_attribution
    from .surrogate import DIALECTS

    chosen = make_settings(method, settings_for_profile(method, profile), **settings)
    explanation = explain_dataset(model, dataset, [index], method, profile, chosen, device=device, progress=False)
    image = dataset.image(index)
    device = device or next(model.parameters()).device
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.from_numpy(image)[None, None].to(device)), 1)[0].cpu().numpy()
    target = int(explanation.targets[0])
    normalised = explanation.normalised()[0]
    mask = dataset.masks(index).get("diagnostic")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.3), sharey=True)
    plot_attribution(image, None, ax=axes[0], mask=mask, front_end=dataset.front_end, title=clip_label(dataset, index))
    inside = "" if mask is None else (
        f"; {relevance_mass(explanation.maps, mask[None])[0]:.0%} of it inside the mask" if (normalised > 0).any() else "")
    plot_attribution(image, normalised, ax=axes[1], mask=mask, front_end=dataset.front_end,
                     title=f"{METHOD_TITLES[method]} for '{DIALECTS[target]}' (P = {probabilities[target]:.2f}){inside}")
    axes[1].set_ylabel("")
    attribution_colorbar(fig, axes)
    return fig, clip_waveform(dataset, index)


def explanation_browser(model, dataset, indices, method: str, profile: str, choices: dict[str, list],
                        device=None):
    """Browse the explained clips and the method's settings (chapters 04-07). ``choices`` maps a
    setting's name to the values offered; maps come from the cache or are computed once."""
    import ipywidgets as widgets

    controls: dict[str, Any] = {
        "index": widgets.Dropdown(options=[(clip_label(dataset, i), int(i)) for i in indices],
                                  value=int(indices[0]), description="clip", style=_style(),
                                  layout=widgets.Layout(width="32em")),
    }
    for name, values in choices.items():
        controls[name] = widgets.Dropdown(options=[(str(v if v is not None else "default"), v) for v in values],
                                          value=values[0],
                                          description=name.replace("_", " "), style=_style())

    def render(**values):
        return explanation_figure(model, dataset, values.pop("index"), method, profile, device, **values)

    return live_figure_panel(render, controls)


def confident_examples(probabilities: np.ndarray, truth: np.ndarray) -> list[tuple[int, bool]]:
    """(position, right?) of the most confident right and the most confident wrong answer for each
    true dialect, where they exist (the example clips of chapters 04-07)."""
    predicted = probabilities.argmax(1)
    chosen = []
    for label in np.unique(truth):
        for right in (True, False):
            pool = np.flatnonzero((truth == label) & ((predicted == truth) == right))
            if len(pool):
                chosen.append((int(pool[np.argmax(probabilities[pool, predicted[pool]])]), right))
    return chosen


def attribution_gallery(dataset, indices: np.ndarray, probabilities: np.ndarray, maps: np.ndarray,
                        method_title: str):
    """Right and wrong answers of both dialects, each map over its image with the diagnostic mask
    and an audio player (chapters 04-07). ``maps`` are normalised, one per clip of ``indices``."""
    from .metrics import relevance_mass
    from .plotting import figures_with_audio, plot_attribution
    from .surrogate import DIALECTS

    indices = np.asarray(indices)
    truth = dataset.labels[indices]
    figures, sounds, captions = [], [], []
    for position, right in confident_examples(probabilities, truth):
        index = int(indices[position])
        guess = int(probabilities[position].argmax())
        mask = dataset.masks(index).get("diagnostic")
        fig, ax = plt.subplots(figsize=(9, 2.8))
        plot_attribution(dataset.image(index), maps[position], ax=ax, mask=mask, front_end=dataset.front_end,
                         title=f"{clip_label(dataset, index)}: predicted {DIALECTS[guess]} "
                               f"(P = {probabilities[position, guess]:.2f}), {'right' if right else 'WRONG'}")
        figures.append(fig)
        sounds.append(clip_waveform(dataset, index))
        if not (maps[position] > 0).any():
            captions.append(f"{method_title}: all-zero map")
        elif mask is not None:
            captions.append(f"{method_title}: {relevance_mass(maps[position][None], mask[None])[0]:.1%} of the map "
                            f"inside the diagnostic mask, which covers {mask.mean():.1%} of the image")
        else:
            captions.append(method_title)
    if any(sound is None for sound in sounds):
        from IPython.display import display

        for fig in figures:
            display(fig)
        return None
    return figures_with_audio(figures, sounds, captions)


# ------------------------------------------------------------------------------------------
# Every method and ensemble on one clip (chapter 08)
# ------------------------------------------------------------------------------------------


def ensemble_figure(dataset, indices, maps_by_name: dict[str, np.ndarray], position: int,
                    threshold: float = 0.5) -> plt.Figure:
    """Clip ``indices[position]`` with each normalised map of ``maps_by_name`` over it, the
    diagnostic mask, and the pixels above ``threshold`` outlined in black (chapter 08)."""
    from .plotting import image_extent, plot_attribution

    index = int(indices[position])
    image = dataset.image(index)
    mask = dataset.masks(index).get("diagnostic")
    names = list(maps_by_name)
    columns = 4
    rows = -(-(len(names) + 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.3 * columns, 2.7 * rows), sharex=True, sharey=True,
                             squeeze=False)
    flat = axes.ravel()
    plot_attribution(image, None, ax=flat[0], mask=mask, front_end=dataset.front_end, title=clip_label(dataset, index))
    for ax, name in zip(flat[1:], names):
        values = np.asarray(maps_by_name[name][position])
        plot_attribution(image, values, ax=ax, mask=mask, front_end=dataset.front_end,
                         title=f"{name}: {np.mean(values > threshold):.1%} above {threshold:g}")
        if (values > threshold).any():
            ax.contour((values > threshold).astype(float), levels=[0.5], colors="black", linewidths=0.6,
                       extent=image_extent(dataset.front_end), origin="upper")
    for ax in flat[len(names) + 1:]:
        ax.set_visible(False)
    for ax in flat:
        if ax not in axes[:, 0]:
            ax.set_ylabel("")
        if ax not in axes[-1]:
            ax.set_xlabel("")
    fig.tight_layout()
    return fig


def ensemble_browser(dataset, indices, maps_by_name: dict[str, np.ndarray]):
    """Pick a clip and a threshold; every method and ensemble is shown (chapter 08)."""
    import ipywidgets as widgets

    controls = {
        "position": widgets.Dropdown(options=[(clip_label(dataset, int(i)), k) for k, i in enumerate(indices)],
                                     value=0, description="clip", style=_style(), layout=widgets.Layout(width="32em")),
        "threshold": widgets.FloatSlider(value=0.5, min=0.4, max=0.9, step=0.1, description="threshold",
                                         continuous_update=False, style=_style()),
    }

    def render(position: int, threshold: float):
        return ensemble_figure(dataset, indices, maps_by_name, position, threshold), \
            clip_waveform(dataset, int(indices[position]))

    return live_figure_panel(render, controls)


def method_gallery(model, dataset, method: str, profile: str, settings: Any, title: str, device=None):
    """:func:`attribution_gallery` of one method on the test clips it shows: the most confident
    right and wrong answer per dialect, explained now or read from the cache (chapters 06-07)."""
    from .explain import explain_dataset
    from .training import predict

    test = dataset.split_indices("test")
    probabilities = predict(model, dataset, test, device or next(model.parameters()).device)
    chosen = [position for position, _ in confident_examples(probabilities, dataset.labels[test])]
    maps = explain_dataset(model, dataset, test[chosen], method, profile, settings, device=device, progress=False)
    return attribution_gallery(dataset, test[chosen], probabilities[chosen], maps.normalised(), title)


def randomisation_figure(dataset, indices, maps_by_depth: dict[int, dict[str, np.ndarray]], layer_labels: list[str],
                         position: int, names: list[str], depths: list[int] | None = None) -> plt.Figure:
    """The cascading randomisation of clip ``indices[position]`` as a grid (chapter 10): one row
    per map name, one column per depth of ``maps_by_depth`` (0 = the trained model, k = the top
    k layers re-initialised, labelled by ``layer_labels[k - 1]``)."""
    from .plotting import plot_attribution

    depths = sorted(maps_by_depth) if depths is None else list(depths)
    index = int(indices[position])
    image = dataset.image(index)
    fig, axes = plt.subplots(len(names), len(depths), figsize=(2.1 * len(depths) + 0.6, 1.35 * len(names) + 0.8),
                             sharex=True, sharey=True, squeeze=False)
    for row, name in enumerate(names):
        for column, depth in enumerate(depths):
            ax = axes[row, column]
            plot_attribution(image, maps_by_depth[depth][name][position], ax=ax, front_end=dataset.front_end)
            ax.set_title("trained" if depth == 0 else f"down to {layer_labels[depth - 1]}", fontsize=8)
            ax.set_xlabel("")
            ax.set_ylabel(name if column == 0 else "", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"Cascading randomisation, {clip_label(dataset, index)}", fontsize=10)
    fig.tight_layout()
    return fig


def randomisation_browser(dataset, indices, maps_by_depth: dict[int, dict[str, np.ndarray]],
                          layer_labels: list[str], groups: dict[str, list[str]]):
    """Pick a clip and a group of maps (e.g. the four methods, or the ensembles) and see them at
    every depth of the cascading randomisation (chapter 10)."""
    import ipywidgets as widgets

    controls = {
        "position": widgets.Dropdown(options=[(clip_label(dataset, int(i)), k) for k, i in enumerate(indices)],
                                     value=0, description="clip", style=_style(), layout=widgets.Layout(width="32em")),
        "group": widgets.Dropdown(options=list(groups), value=next(iter(groups)), description="maps", style=_style()),
    }

    def render(position: int, group: str):
        return randomisation_figure(dataset, indices, maps_by_depth, layer_labels, position, groups[group]), \
            clip_waveform(dataset, int(indices[position]))

    return live_figure_panel(render, controls)


def cluster_members(clusters, cluster, n_members: int = 4, seed: int = 0) -> np.ndarray:
    """The positions of up to ``n_members`` clips of ``cluster`` (in ``clusters``, one label per
    clip), drawn by ``seed``, in order: the clips :func:`cluster_figure` shows."""
    clusters = np.asarray(clusters)
    members = np.flatnonzero(clusters == cluster)
    if not len(members):
        raise ValueError(f"cluster {cluster!r} has no clips; clusters are {sorted(set(clusters.tolist()))}")
    return np.sort(np.random.default_rng(seed).choice(members, size=min(n_members, len(members)), replace=False))


def cluster_panel(dataset, indices, clusters, maps: np.ndarray, cluster, n_members: int = 4,
                  seed: int = 0) -> tuple[plt.Figure, np.ndarray | None]:
    """:func:`cluster_figure` and the sound of the first clip it shows (chapter 09: the browser's
    panel, and the page's picture of its first setting)."""
    first = int(np.asarray(indices)[cluster_members(clusters, cluster, n_members, seed)[0]])
    return cluster_figure(dataset, indices, clusters, maps, cluster, n_members, seed), clip_waveform(dataset, first)


def cluster_figure(dataset, indices, clusters, maps: np.ndarray, cluster, n_members: int = 4, seed: int = 0) -> plt.Figure:
    """Up to ``n_members`` clips of one latent-space cluster (chapter 09), drawn by ``seed``: each
    spectrogram with its normalised map (N, H, W, aligned with ``indices``) on top and the
    diagnostic mask outlined, titled with the clip's dialect, song type, bird and background."""
    from .plotting import plot_attribution

    indices, clusters = np.asarray(indices), np.asarray(clusters)
    members = np.flatnonzero(clusters == cluster)
    chosen = cluster_members(clusters, cluster, n_members, seed)
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.6 * len(chosen), 2.7), sharey=True, squeeze=False)
    for ax, position in zip(axes[0], chosen):
        index = int(indices[position])
        plot_attribution(dataset.image(index), maps[position], ax=ax, mask=dataset.masks(index).get("diagnostic"),
                         front_end=dataset.front_end, title=clip_label(dataset, index))
        if ax is not axes[0, 0]:
            ax.set_ylabel("")
    fig.suptitle(f"cluster {cluster}: {len(members)} clips, {len(chosen)} shown", fontsize=10)
    fig.tight_layout()
    return fig


def cluster_browser(dataset, indices, clusters, maps: np.ndarray, n_members: int = 4):
    """Pick a latent-space cluster (and another draw of its members) and see a few members'
    spectrograms with their maps, and hear the first one (chapter 09)."""
    import ipywidgets as widgets

    indices, clusters = np.asarray(indices), np.asarray(clusters)
    names = sorted(set(clusters.tolist()))
    controls = {
        "cluster": widgets.Dropdown(options=[(f"cluster {c} ({int((clusters == c).sum())} clips)", c) for c in names],
                                    value=names[0], description="cluster", style=_style()),
        "seed": widgets.IntSlider(value=0, min=0, max=9, description="draw", continuous_update=False, style=_style()),
    }

    def render(cluster, seed: int):
        return cluster_panel(dataset, indices, clusters, maps, cluster, n_members, seed)

    return live_figure_panel(render, controls)
