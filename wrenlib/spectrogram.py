"""The paper's STFT settings and the decibel spectrogram (explained in chapter 02).

512-sample Hann window, 95 % overlap: the hop is 512 x 5 % = 25.6 samples, rounded to 26. Decibels
are measured against a fixed reference, the STFT magnitude of a unit-amplitude sine, so 0 dB means
"as loud as a full-scale tone" in every clip and the display range -40 .. +5 dB means the same
thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

from .audio import SAMPLE_RATE_HZ


@dataclass(frozen=True)
class StftSettings:
    """How a waveform becomes a time-frequency grid."""

    window_samples: int = 512
    overlap: float = 0.95
    window: str = "hann"
    sample_rate_hz: int = SAMPLE_RATE_HZ

    @property
    def hop_samples(self) -> int:
        """Hop between frames: window x (1 - overlap), rounded to whole samples (25.6 -> 26)."""
        return max(1, int(round(self.window_samples * (1 - self.overlap))))

    @property
    def n_bins(self) -> int:
        """Number of frequency rows (0 Hz .. Nyquist)."""
        return self.window_samples // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Number of time frames for a signal of ``n_samples`` (frames centred, edges padded)."""
        return 1 + n_samples // self.hop_samples

    def bin_frequencies_hz(self) -> np.ndarray:
        """Centre frequency of each row."""
        return np.arange(self.n_bins) * self.sample_rate_hz / self.window_samples

    def frame_times_s(self, n_frames: int) -> np.ndarray:
        """Centre time of each frame."""
        return np.arange(n_frames) * self.hop_samples / self.sample_rate_hz

    @property
    def reference_magnitude(self) -> float:
        """STFT magnitude of a unit-amplitude sine at a bin centre: the 0 dB reference."""
        window = librosa.filters.get_window(self.window, self.window_samples, fftbins=True)
        return float(np.sum(window) / 2)


PAPER_STFT = StftSettings()


def stft_magnitude(waveform: np.ndarray, settings: StftSettings = PAPER_STFT) -> np.ndarray:
    """|STFT| with shape (..., n_bins, n_frames), rows from 0 Hz upwards (librosa.stft)."""
    spectrum = librosa.stft(
        np.asarray(waveform, dtype=np.float32),
        n_fft=settings.window_samples,
        hop_length=settings.hop_samples,
        window=settings.window,
        center=True,
    )
    return np.abs(spectrum)


def decibels(magnitude: np.ndarray, settings: StftSettings = PAPER_STFT) -> np.ndarray:
    """Magnitude in dB against the unit-sine reference (a tiny floor avoids log of zero)."""
    floor = settings.reference_magnitude * 1e-8
    return (20 * np.log10(np.maximum(magnitude, floor) / settings.reference_magnitude)).astype(
        np.float32
    )


def spectrogram_db(waveform: np.ndarray, settings: StftSettings = PAPER_STFT) -> np.ndarray:
    """The decibel spectrogram of a waveform (unclipped; display clipping is the image's job)."""
    return decibels(stft_magnitude(waveform, settings), settings)
