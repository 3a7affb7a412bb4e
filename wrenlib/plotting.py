"""Plot helpers: spectrograms with units, masks and element boxes, and audio beside figures.

Every helper takes ``ax=None`` and returns the axes it drew on (chapter 01 introduces them).
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from .audio import BAND_HZ, SAMPLE_RATE_HZ
from .spectrogram import PAPER_STFT, StftSettings, spectrogram_db

DISPLAY_RANGE_DB = (-40.0, 5.0)
ROLE_COLOURS = {"diagnostic": "#00e5ff", "shared": "#ffd54f"}


def plot_spectrogram(
    waveform: np.ndarray,
    ax: plt.Axes | None = None,
    settings: StftSettings = PAPER_STFT,
    db_range: tuple[float, float] = DISPLAY_RANGE_DB,
    title: str | None = None,
    colorbar: bool = True,
    show_band: bool = True,
) -> plt.Axes:
    """Decibel spectrogram of a waveform, time in s across, frequency in kHz up."""
    ax = ax or plt.gca()
    db = spectrogram_db(waveform, settings)
    duration = len(waveform) / settings.sample_rate_hz
    image = ax.imshow(
        np.clip(db, *db_range), origin="lower", aspect="auto", cmap="magma",
        vmin=db_range[0], vmax=db_range[1],
        extent=(0, duration, 0, settings.sample_rate_hz / 2000),
    )
    if show_band:
        for edge in BAND_HZ:
            ax.axhline(edge / 1000, color="white", lw=0.6, ls=":", alpha=0.7)
    ax.grid(False)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="level (dB re unit sine)", pad=0.01)
    return ax


def overlay_mask(
    mask: np.ndarray,
    ax: plt.Axes | None = None,
    settings: StftSettings = PAPER_STFT,
    color: str = ROLE_COLOURS["diagnostic"],
    label: str | None = None,
) -> plt.Axes:
    """Outline a boolean (n_bins, n_frames) mask on a spectrogram drawn by :func:`plot_spectrogram`."""
    ax = ax or plt.gca()
    if not mask.any():
        return ax
    times = settings.frame_times_s(mask.shape[1])
    frequencies = settings.bin_frequencies_hz() / 1000
    ax.contour(times, frequencies, mask.astype(float), levels=[0.5], colors=[color], linewidths=0.8)
    if label:
        ax.plot([], [], color=color, lw=1.2, label=label)
    return ax


def annotate_elements(elements: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Draw a labelled box around every song element (cyan: diagnostic, yellow: shared)."""
    ax = ax or plt.gca()
    previous_kind = None
    for row in elements.itertuples():
        colour = ROLE_COLOURS[row.role]
        ax.add_patch(Rectangle((row.start_s, row.low_hz / 1000), row.end_s - row.start_s,
                               (row.high_hz - row.low_hz) / 1000, fill=False, ec=colour, lw=1.0))
        if row.kind != previous_kind:  # one label per run of the same element
            ax.text(row.start_s, row.high_hz / 1000 + 0.15, row.kind, color=colour, fontsize=7,
                    va="bottom")
        previous_kind = row.kind
    for role, colour in ROLE_COLOURS.items():
        ax.plot([], [], color=colour, lw=1.5, label=f"{role} element")
    return ax


def figure_png_bytes(fig: plt.Figure, dpi: int = 90) -> bytes:
    """A figure as PNG bytes (closes the figure)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def wav_bytes(waveform: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """A waveform as a peak-normalised 16-bit WAV file in memory (for players and downloads)."""
    import soundfile

    samples = np.asarray(waveform, dtype=np.float64)
    peak = np.max(np.abs(samples)) if samples.size else 0.0
    buffer = io.BytesIO()
    soundfile.write(buffer, samples / peak * 0.9 if peak > 0 else samples, sample_rate_hz,
                    format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def audio_html(waveform: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> str:
    """An HTML ``<audio>`` player with the waveform embedded as a WAV file."""
    encoded = base64.b64encode(wav_bytes(waveform, sample_rate_hz)).decode()
    return f'<audio controls preload="none" src="data:audio/wav;base64,{encoded}"></audio>'


def figures_with_audio(
    figures: Sequence[plt.Figure],
    waveforms: Sequence[np.ndarray],
    captions: Sequence[str],
    sample_rate_hz: int = SAMPLE_RATE_HZ,
):
    """Spectrogram figures each with its audio player beside it, as one HTML block."""
    from IPython.display import HTML

    from html import escape

    blocks = []
    for fig, waveform, caption in zip(figures, waveforms, captions):
        picture = base64.b64encode(figure_png_bytes(fig)).decode()
        caption = escape(caption)  # the alt text and the caption: a quote or a < in it would break the HTML
        blocks.append(
            '<figure style="margin:0 0 1.2em 0">'
            f'<img style="max-width:100%" src="data:image/png;base64,{picture}" alt="{caption}"/>'
            '<figcaption style="display:flex;flex-wrap:wrap;align-items:center;gap:0.8em">'
            f"{audio_html(waveform, sample_rate_hz)}<span>{caption}</span></figcaption>"
            "</figure>"
        )
    return HTML("\n".join(blocks))


# ------------------------------------------------------------------------------------------
# Attribution maps (chapters 04-08)
# ------------------------------------------------------------------------------------------

def _attribution_cmap():
    """Yellow (weak) to dark red (strong), without the palest yellows, drawn on a white page."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(plt.get_cmap("YlOrRd")(np.linspace(0.3, 1.0, 256)), name="attribution")


MASK_ON_PAGE = "#0077b6"


ATTRIBUTION_CMAP = _attribution_cmap()


def image_extent(front_end=None) -> tuple[float, float, float, float] | None:
    """``imshow`` extent of a spectrogram image: time (s) across, frequency (kHz) up."""
    if front_end is None:
        return None
    return (0.0, front_end.clip_samples / front_end.sample_rate_hz, 0.0, front_end.sample_rate_hz / 2000)


def plot_attribution(
    image: np.ndarray,
    attribution: np.ndarray | None,
    ax: plt.Axes | None = None,
    mask: np.ndarray | None = None,
    front_end=None,
    title: str | None = None,
    alpha: float = 0.75,
    floor: float = 0.05,
    signed: bool = False,
    display_quantile: float | None = 0.99,
) -> plt.Axes:
    """A spectrogram image in grey with a normalised map on top and the diagnostic mask outlined.

    For display only, the map is stretched so that its ``display_quantile`` of non-zero values
    reaches full colour (one hot pixel would otherwise leave a pixel-sharp map invisible; None
    turns this off). Values below ``floor`` stay transparent so the song remains visible; with
    ``signed`` the map is drawn in red (for) and blue (against). A map without positive values
    is labelled "all zero" instead of being drawn as an empty picture.
    """
    ax = ax or plt.gca()
    extent = image_extent(front_end)
    image = np.asarray(image, dtype=float)
    mask_colour = ROLE_COLOURS["diagnostic"]
    if attribution is None:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, aspect="auto", extent=extent, interpolation="nearest")
    else:  # the song in light grey on a white page, whatever the image's background, the map on top
        song = image if np.median(image) < 0.5 else 1 - image
        ax.imshow(song, cmap="Greys", vmin=0, vmax=1.8, aspect="auto", extent=extent, interpolation="nearest")
        mask_colour = MASK_ON_PAGE
        attribution = np.asarray(attribution, dtype=float)
        magnitude = np.abs(attribution)
        if display_quantile is not None and (magnitude > 0).any():
            attribution = np.clip(attribution / np.quantile(magnitude[magnitude > 0], display_quantile), -1, 1)
        if signed:
            shown = np.ma.masked_where(np.abs(attribution) < floor, attribution)
            ax.imshow(shown, cmap="RdBu_r", vmin=-1, vmax=1, alpha=alpha, aspect="auto", extent=extent,
                      interpolation="nearest")
        elif not (attribution > 0).any():
            ax.text(0.5, 0.5, "all zero: no evidence for this class", transform=ax.transAxes, ha="center",
                    va="center", color="#d62728", fontsize=9,
                    bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#d62728"})
        else:
            shown = np.ma.masked_where(attribution < floor, attribution)
            ax.imshow(shown, cmap=ATTRIBUTION_CMAP, vmin=0, vmax=1, alpha=alpha, aspect="auto", extent=extent,
                      interpolation="nearest")
    if mask is not None and np.asarray(mask).any():
        ax.contour(np.asarray(mask, dtype=float), levels=[0.5], colors=[mask_colour],
                   linewidths=0.8, extent=extent, origin="upper")
    ax.grid(False)
    if front_end is not None:
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (kHz)")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def attribution_colorbar(fig: plt.Figure, axes, label: str = "normalised attribution") -> None:
    """One colour bar for a row of :func:`plot_attribution` panels."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.colorbar(ScalarMappable(Normalize(0, 1), ATTRIBUTION_CMAP), ax=axes, label=label, pad=0.01, fraction=0.03)
