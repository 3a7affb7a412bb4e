"""The paper's STFT settings and the decibel spectrogram (explained in chapter 02).

512-sample Hann window, 95 % overlap: the hop is 512 x 5 % = 25.6 samples, rounded to 26. Frames
are centred (the signal is zero-padded by half a window at both ends). Decibels are measured
against a fixed reference, the STFT magnitude of a unit-amplitude sine at a bin centre, so 0 dB
means "as loud as a full-scale tone" in every clip and the display range -40 .. +5 dB means the
same thing everywhere. The STFT is torch's, batched, and runs on the GPU when given one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .audio import SAMPLE_RATE_HZ


@dataclass(frozen=True)
class StftSettings:
    """How a waveform becomes a time-frequency grid."""

    window_samples: int = 512
    overlap: float = 0.95
    window: str = "hann"
    sample_rate_hz: int = SAMPLE_RATE_HZ

    def __post_init__(self) -> None:
        if self.window_samples < 16:
            raise ValueError(f"window_samples must be at least 16, got {self.window_samples}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must lie in [0, 1), got {self.overlap}")
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {sorted(WINDOWS)}, got {self.window!r}")

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

    def window_array(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The analysis window as a tensor (periodic, as for spectral analysis)."""
        return WINDOWS[self.window](self.window_samples, periodic=True, device=device)

    @property
    def reference_magnitude(self) -> float:
        """STFT magnitude of a unit-amplitude sine at a bin centre: the 0 dB reference."""
        return float(self.window_array().sum() / 2)


WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
}

#: The paper's STFT (chapter 02).
PAPER_STFT = StftSettings()


def stft_power(
    waveforms: np.ndarray | torch.Tensor,
    settings: StftSettings = PAPER_STFT,
    device: torch.device | str | None = None,
) -> np.ndarray | torch.Tensor:
    """The squared STFT magnitude (``|STFT|^2``) of one waveform or a batch: shape
    (..., n_bins, n_frames), rows from 0 Hz upwards.

    NumPy in gives NumPy out (computed on the CPU unless ``device`` says otherwise); a tensor in
    gives a tensor out on the tensor's device.
    """
    as_numpy = not isinstance(waveforms, torch.Tensor)
    with warnings.catch_warnings():  # a read-only array (a cache opened as a memory map) is only read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        signal = torch.as_tensor(np.asarray(waveforms, dtype=np.float32) if as_numpy else waveforms,
                                 device=device)
    shape = signal.shape
    spectrum = torch.stft(
        signal.reshape(-1, shape[-1]).float(),
        n_fft=settings.window_samples,
        hop_length=settings.hop_samples,
        window=settings.window_array(signal.device),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = spectrum.real.square().add_(spectrum.imag.square())  # cheaper than abs() then square
    power = power.reshape(*shape[:-1], *power.shape[-2:])
    return power.cpu().numpy() if as_numpy else power


def stft_magnitude(
    waveforms: np.ndarray | torch.Tensor,
    settings: StftSettings = PAPER_STFT,
    device: torch.device | str | None = None,
) -> np.ndarray | torch.Tensor:
    """The STFT magnitude (``|STFT|``) of one waveform or a batch (see :func:`stft_power`)."""
    power = stft_power(waveforms, settings, device)
    return np.sqrt(power) if isinstance(power, np.ndarray) else power.sqrt()


def decibels(magnitude: np.ndarray | torch.Tensor, settings: StftSettings = PAPER_STFT):
    """Magnitude in dB against the unit-sine reference (a tiny floor avoids log of zero)."""
    floor = settings.reference_magnitude * 1e-8
    if isinstance(magnitude, torch.Tensor):
        return 20 * torch.log10(magnitude.clamp_min(floor) / settings.reference_magnitude)
    return (20 * np.log10(np.maximum(magnitude, floor) / settings.reference_magnitude)).astype(np.float32)



def spectrogram_db(waveform: np.ndarray, settings: StftSettings = PAPER_STFT) -> np.ndarray:
    """The decibel spectrogram of a waveform (unclipped; display clipping is the image's job)."""
    return decibels(stft_magnitude(waveform, settings), settings)
