"""Interactive widgets of the chapters. Each widget's callback is a plain function (tested, and
called once in the chapter for the static figure that the HTML book shows).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

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


def song_designer():
    """Sliders for the diagnostic features, the song type, the noise and the seed; shows and plays
    the song. The sliders start at the Eastern means; the Mexican means are faster, narrower trills
    and a narrower buzz.

    The figure and the sound travel as widget values (an Image and an Audio widget), not as cell
    output, so the widget also builds inside a non-interactive run (papermill).
    """
    import ipywidgets as widgets

    def feature_slider(name: str, step: float, description: str):
        feature = _FEATURES[name]
        return widgets.FloatSlider(
            value=feature.dialect_mean(0, 1.6), min=feature.low, max=feature.high, step=step,
            description=description, continuous_update=False, style={"description_width": "8em"},
        )

    controls = {
        "trill_rate_per_s": feature_slider("trill_rate_per_s", 0.25, "trill rate (/s)"),
        "trill_bandwidth_hz": feature_slider("trill_bandwidth_hz", 50, "trill band (Hz)"),
        "buzz_depth_hz": feature_slider("buzz_depth_hz", 25, "buzz depth (Hz)"),
        "song_type": widgets.IntSlider(value=1, min=1, max=4, description="song type",
                                       continuous_update=False, style={"description_width": "8em"}),
        "snr_db": widgets.FloatSlider(value=20, min=0, max=40, step=1, description="SNR (dB)",
                                      continuous_update=False, style={"description_width": "8em"}),
        "seed": widgets.BoundedIntText(value=0, min=0, max=10**6, description="seed",
                                       style={"description_width": "8em"}),
    }
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
    player = widgets.Audio(format="wav", autoplay=False, loop=False)

    def update(_change=None) -> None:
        fig, clip = song_designer_figure(**{name: control.value for name, control in controls.items()})
        image.value = figure_png_bytes(fig)
        player.value = wav_bytes(clip.waveform)

    for control in controls.values():
        control.observe(update, names="value")
    update()
    panel = widgets.VBox([widgets.HBox([widgets.VBox(list(controls.values())), player]), image])
    panel.update = update  # for tests and scripted use
    panel.controls = controls
    panel.image = image
    panel.player = player
    return panel
