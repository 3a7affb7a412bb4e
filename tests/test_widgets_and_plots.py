"""Widget callbacks and plot helpers, called as plain functions."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

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
