"""Audio basics: the paper's band and its band-pass filter (chapter 02 explains them; chapter 01
uses the filter to define the signal-to-noise ratio in-band, where noise competes with the song).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

SAMPLE_RATE_HZ = 22_050
BAND_HZ = (1_500.0, 9_000.0)
FILTER_TYPES = ("butter", "cheby1", "cheby2", "ellip", "bessel")


@lru_cache(maxsize=32)
def bandpass_sos(
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    band_hz: tuple[float, float] = BAND_HZ,
    order: int = 4,
    filter_type: str = "butter",
) -> np.ndarray:
    """Second-order sections of the band-pass filter (ripple 1 dB, stop band 40 dB where the type
    has them)."""
    low, high = band_hz
    nyquist = sample_rate_hz / 2
    if not 0 < low < high < nyquist:
        raise ValueError(f"band {band_hz} Hz must lie inside (0, {nyquist:g}) Hz")
    if filter_type not in FILTER_TYPES:
        raise ValueError(f"filter_type must be one of {FILTER_TYPES}, got {filter_type!r}")
    if not 1 <= order <= 12:
        raise ValueError(f"filter order must be between 1 and 12, got {order}")
    return signal.iirfilter(order, band_hz, rp=1, rs=40, btype="bandpass", ftype=filter_type,
                            fs=sample_rate_hz, output="sos")


def bandpass(
    waveform: np.ndarray,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    band_hz: tuple[float, float] = BAND_HZ,
    order: int = 4,
    filter_type: str = "butter",
) -> np.ndarray:
    """Zero-phase band-pass (the filter run forwards and backwards) along the last axis."""
    sos = bandpass_sos(sample_rate_hz, tuple(band_hz), order, filter_type)
    return signal.sosfiltfilt(sos, waveform, axis=-1).astype(np.float32)


def power(waveform: np.ndarray) -> float:
    """Mean square of a signal (0 for an empty one)."""
    return float(np.mean(np.square(waveform, dtype=np.float64))) if waveform.size else 0.0


def level_db(waveform: np.ndarray) -> float:
    """RMS level in dB against a unit-amplitude sine (RMS 1/sqrt 2); -inf for silence."""
    mean_square = power(waveform)
    return float(10 * np.log10(mean_square / 0.5)) if mean_square > 0 else float("-inf")
