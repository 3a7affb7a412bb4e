"""Audio basics shared by the generator and the front end: the paper's band and band-pass filter.

Chapter 02 explains the front end; chapter 01 uses the filter to define the signal-to-noise ratio
in-band, where the noise actually competes with the song.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

SAMPLE_RATE_HZ = 22_050
BAND_HZ = (1_500.0, 9_000.0)


def bandpass(
    waveform: np.ndarray,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    band_hz: tuple[float, float] = BAND_HZ,
    order: int = 4,
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (order ``order`` forwards and backwards) along the last axis."""
    low, high = band_hz
    nyquist = sample_rate_hz / 2
    if not 0 < low < high < nyquist:
        raise ValueError(f"band {band_hz} Hz must lie inside (0, {nyquist:g}) Hz")
    sos = signal.butter(order, band_hz, btype="bandpass", fs=sample_rate_hz, output="sos")
    return signal.sosfiltfilt(sos, waveform, axis=-1).astype(np.float32)


def power(waveform: np.ndarray) -> float:
    """Mean square of a signal (0 for an empty one)."""
    return float(np.mean(np.square(waveform, dtype=np.float64))) if waveform.size else 0.0
