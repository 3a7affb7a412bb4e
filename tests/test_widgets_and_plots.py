"""Widget callbacks and plot helpers, called as plain functions."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from wrenlib.plotting import annotate_elements, audio_html, overlay_mask, plot_spectrogram, wav_bytes
from wrenlib.widgets import song_designer, song_designer_figure


def test_song_designer_figure_reports_the_ideal_observer():
    fig, clip = song_designer_figure(trill_rate_per_s=15.0, trill_bandwidth_hz=2_400.0,
                                     buzz_depth_hz=400.0, song_type=2)
    title = fig.axes[0].get_title()
    probability = float(title.split("P(Mexican) = ")[1])
    assert probability > 0.9
    assert clip.diagnostic_mask.any()
    plt.close(fig)
    fig, _ = song_designer_figure()  # the Eastern means
    assert float(fig.axes[0].get_title().split("P(Mexican) = ")[1]) < 0.1
    plt.close(fig)


def test_song_designer_widget_updates_picture_and_sound():
    panel = song_designer()
    picture, sound = panel.image.value, panel.player.value
    assert picture[:4] == b"\x89PNG" and sound[:4] == b"RIFF"
    panel.controls["trill_rate_per_s"].value = 15.0
    assert panel.image.value != picture and panel.player.value != sound


def test_a_panel_without_sound_for_a_picture_hides_its_player_and_never_plays_the_last_sound():
    import ipywidgets as widgets

    from wrenlib.widgets import live_figure_panel

    def render(with_sound: bool):
        fig, _ = plt.subplots()
        return fig, (np.sin(np.arange(2205) / 5.0).astype(np.float32) if with_sound else None)

    panel = live_figure_panel(render, {"with_sound": widgets.Checkbox(value=True)})
    assert panel.player.value[:4] == b"RIFF" and panel.player.layout.display is None
    panel.controls["with_sound"].value = False
    assert panel.player.value == b"" and panel.player.layout.display == "none"
    panel.controls["with_sound"].value = True
    assert panel.player.value[:4] == b"RIFF" and panel.player.layout.display is None


def test_plot_helpers_draw_on_the_given_axes(small_dataset):
    fig, ax = plt.subplots()
    assert plot_spectrogram(small_dataset.waveforms[0], ax=ax) is ax
    assert overlay_mask(small_dataset.diagnostic_mask(0), ax=ax) is ax
    assert overlay_mask(np.zeros((257, 10), dtype=bool), ax=ax) is ax  # an empty mask draws nothing
    assert annotate_elements(small_dataset.elements_of(0), ax=ax) is ax
    assert len(ax.patches) == len(small_dataset.elements_of(0))
    plt.close(fig)


def test_audio_player_embeds_a_wav():
    html = audio_html(np.sin(np.arange(2_000) / 3))
    assert html.startswith("<audio") and "data:audio/wav;base64," in html
    assert wav_bytes(np.zeros(100))[:4] == b"RIFF"  # silence does not divide by zero


def test_a_figure_with_its_player_carries_its_caption_as_alt_text_safely():
    """The caption is the figure's alt text (what a screen reader says); a quote or a < in it must
    not end the attribute or open a tag."""
    from wrenlib.plotting import figures_with_audio

    fig, _ = plt.subplots()
    html = figures_with_audio([fig], [np.zeros(2_205)], ['the "clean" clip <no source>']).data
    plt.close(fig)
    assert 'alt="the &quot;clean&quot; clip &lt;no source&gt;"' in html and "<no source>" not in html
    assert html.count("<audio") == 1


def test_front_end_figure_reports_hop_and_frames_and_the_explorer_reacts(small_dataset):
    from wrenlib.widgets import front_end_explorer, front_end_figure

    waveform = np.asarray(small_dataset.waveforms[0])
    fig, facts = front_end_figure(waveform, image_size=(60, 120))
    assert facts["hop_samples"] == 26 and facts["frames"] == 3_393
    plt.close(fig)
    fig, facts = front_end_figure(waveform, overlap=0.5, image_size=(60, 120))
    assert facts["hop_samples"] == 256 and facts["frames"] == 345
    plt.close(fig)
    panel = front_end_explorer(waveform)
    before = panel.image.value
    panel.controls["background"].value = "white"
    assert panel.image.value != before
    # the colour bar follows the background: on white the floor is drawn white (1), the ceiling black
    for background, label in (("black", "-40 dB -> 0, 5 dB -> 1"), ("white", "-40 dB -> 1, 5 dB -> 0")):
        fig, _ = front_end_figure(waveform, background=background, image_size=(60, 120))
        assert label in fig.axes[1].get_ylabel()
        image = np.ma.getdata(fig.axes[0].images[0].get_array())
        assert float(np.median(image)) == (0.0 if background == "black" else 1.0)  # mostly silence at the floor
        plt.close(fig)


# ---------------------------------------------------------------- attribution plots and the browser


def _tiny_model_and_data(small_dataset):
    import torch

    from wrenlib.frontend import PAPER_FRONT_END, assign_backgrounds
    from wrenlib.images import SpectrogramDataset, render_level_cache
    from wrenlib.model import DialectCNN, ModelConfig

    front_end = PAPER_FRONT_END.with_image_size(32, 64)
    levels = render_level_cache(np.asarray(small_dataset.waveforms), front_end, progress=False)
    data = SpectrogramDataset(levels, small_dataset.clips, assign_backgrounds(len(levels), "mixed", 0),
                              front_end, small_dataset)
    torch.manual_seed(0)
    model = DialectCNN(ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,))).eval()
    return model, data


def test_plot_attribution_labels_an_all_zero_map_instead_of_drawing_nothing():
    from wrenlib.plotting import plot_attribution

    fig, ax = plt.subplots()
    plot_attribution(np.zeros((8, 16)), -np.ones((8, 16)), ax=ax, mask=np.eye(8, 16, dtype=bool))
    assert any("all zero" in text.get_text() for text in ax.texts)
    plt.close(fig)
    fig, ax = plt.subplots()
    plot_attribution(np.zeros((8, 16)), np.eye(8, 16), ax=ax)
    assert not ax.texts and len(ax.images) == 2  # the song page and the map
    plt.close(fig)


def test_confident_examples_pick_right_and_wrong_answers_per_dialect():
    from wrenlib.widgets import confident_examples

    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.95, 0.05]])
    truth = np.array([0, 0, 0, 1, 1])
    chosen = confident_examples(probabilities, truth)
    assert chosen == [(0, True), (2, False), (3, True), (4, False)]


def test_explanation_browser_renders_from_the_cache(small_dataset, isolated_artifacts):
    from wrenlib.widgets import explanation_browser, explanation_figure

    model, data = _tiny_model_and_data(small_dataset)
    fig, sound = explanation_figure(model, data, 0, "gradcam", "quick")
    assert "Grad-CAM" in fig.axes[1].get_title() and sound is not None and len(sound) > 0
    plt.close(fig)
    assert len(list((isolated_artifacts / "quick" / "explanations").rglob("clip0-*.npz"))) == 1
    panel = explanation_browser(model, data, np.array([0, 1]), "deeplift", "quick", {"baseline": ["white", "blurred"]})
    picture = panel.image.value
    assert picture[:4] == b"\x89PNG"
    panel.controls["baseline"].value = "blurred"
    assert panel.image.value != picture


def test_ensemble_browser_outlines_pixels_above_the_threshold(small_dataset):
    from wrenlib.widgets import ensemble_browser, ensemble_figure

    _, data = _tiny_model_and_data(small_dataset)
    ramp = np.tile(np.linspace(0, 1, 64), (2, 32, 1))
    maps = {"ramp": ramp, "zero": np.zeros_like(ramp)}
    fig = ensemble_figure(data, np.array([0, 1]), maps, 1, threshold=0.75)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert any(title.startswith("ramp: 2") and "above 0.75" in title for title in titles)  # 16 of 64 columns
    plt.close(fig)
    panel = ensemble_browser(data, np.array([0, 1]), maps)
    picture = panel.image.value
    panel.controls["threshold"].value = 0.9
    assert panel.image.value != picture


def test_randomisation_figure_has_a_row_per_map_and_a_column_per_depth(small_dataset):
    from wrenlib.widgets import randomisation_browser, randomisation_figure

    _, data = _tiny_model_and_data(small_dataset)
    ramp = np.tile(np.linspace(0, 1, 64), (2, 32, 1))
    by_depth = {depth: {"a": ramp * (depth + 1) / 3, "b": ramp[:, ::-1]} for depth in range(3)}
    fig = randomisation_figure(data, np.array([0, 1]), by_depth, ["dense 2 (output)", "dense 1"], 1, ["a", "b"])
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert len(fig.axes) == 6 and titles == ["trained", "down to dense 2 (output)", "down to dense 1"]
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["a", "b"]
    plt.close(fig)
    panel = randomisation_browser(data, np.array([0, 1]), by_depth, ["dense 2 (output)", "dense 1"],
                                  {"both": ["a", "b"], "only a": ["a"]})
    picture = panel.image.value
    panel.controls["group"].value = "only a"
    assert panel.image.value != picture


def test_cluster_figure_shows_members_of_the_chosen_cluster_only(small_dataset):
    from wrenlib.widgets import cluster_browser, cluster_figure

    _, data = _tiny_model_and_data(small_dataset)
    indices = np.arange(len(data))
    clusters = np.array(["a", "b"] * (len(data) // 2) + ["a"] * (len(data) % 2))
    maps = np.tile(np.linspace(0, 1, 64), (len(data), 32, 1))
    fig = cluster_figure(data, indices, clusters, maps, "b", n_members=2)
    titles = [ax.get_title() for ax in fig.axes]
    shown = [int(title.split(":")[0].split()[-1]) for title in titles]  # "clip N: ..." from clip_label
    assert len(shown) == 2 and all(clusters[i] == "b" for i in shown)
    plt.close(fig)
    with pytest.raises(ValueError, match="no clips"):
        cluster_figure(data, indices, clusters, maps, "c")
    panel = cluster_browser(data, indices, clusters, maps, n_members=2)
    picture = panel.image.value
    panel.controls["cluster"].value = "b"
    assert panel.image.value != picture
    # the page's picture of the first setting plays the first clip it shows, as the browser's player does
    from wrenlib.widgets import cluster_panel, clip_waveform

    fig, sound = cluster_panel(data, indices, clusters, maps, "b", n_members=2, seed=3)
    first = int(fig.axes[0].get_title().split(":")[0].split()[-1])
    np.testing.assert_array_equal(sound, clip_waveform(data, first))
    plt.close(fig)


def test_method_gallery_shows_test_clips_with_their_masks(small_dataset, isolated_artifacts):
    from wrenlib.widgets import method_gallery

    model, data = _tiny_model_and_data(small_dataset)
    test = data.split_indices("test")
    masks = data.stacked_masks(test)
    assert masks.shape == (len(test), 32, 64) and masks.dtype == bool
    assert np.array_equal(masks[0], data.masks(int(test[0]))["diagnostic"])
    html = method_gallery(model, data, "gradcam", "quick", None, "Grad-CAM").data
    assert html.count("<audio") >= 2 and "Grad-CAM" in html
