"""The STFT grid the masks live on: settings, reference level and alignment."""

from __future__ import annotations

import numpy as np
import pytest

from wrenlib.audio import bandpass
from wrenlib.spectrogram import PAPER_STFT, spectrogram_db


def test_paper_settings_and_hop_rounding():
    assert PAPER_STFT.window_samples == 512
    assert PAPER_STFT.hop_samples == 26  # 512 x 5 % = 25.6, rounded
    assert PAPER_STFT.n_bins == 257
    assert PAPER_STFT.n_frames(88_200) == 3_393


def test_unit_sine_at_a_bin_centre_is_zero_decibels():
    rate = PAPER_STFT.sample_rate_hz
    frequency = 100 * rate / PAPER_STFT.window_samples  # the centre of row 100
    tone = np.sin(2 * np.pi * frequency * np.arange(rate) / rate)
    db = spectrogram_db(tone)
    assert db[:, 100:-100].max() == pytest.approx(0.0, abs=0.05)
    assert np.argmax(db[:, db.shape[1] // 2]) == 100


def test_a_tone_burst_lands_in_the_expected_row_and_frames():
    rate = PAPER_STFT.sample_rate_hz
    signal = np.zeros(rate * 2)
    start, stop = int(0.5 * rate), int(0.8 * rate)
    signal[start:stop] = np.sin(2 * np.pi * 5_000 * np.arange(stop - start) / rate)
    db = spectrogram_db(signal)
    row = int(round(5_000 * PAPER_STFT.window_samples / rate))
    assert np.argmax(db.max(axis=1)) == row
    loud = np.flatnonzero(db[row] > -20)
    times = PAPER_STFT.frame_times_s(db.shape[1])[loud]
    half_window_s = PAPER_STFT.window_samples / 2 / rate
    assert times.min() >= 0.5 - half_window_s and times.max() <= 0.8 + half_window_s


def test_bandpass_keeps_the_band_and_removes_hum():
    rate = PAPER_STFT.sample_rate_hz
    t = np.arange(rate) / rate
    in_band, hum = np.sin(2 * np.pi * 4_000 * t), np.sin(2 * np.pi * 60 * t)
    assert np.std(bandpass(in_band)[2000:-2000]) == pytest.approx(np.std(in_band), rel=0.02)
    assert np.std(bandpass(hum)[2000:-2000]) < 1e-3
    with pytest.raises(ValueError):
        bandpass(in_band, band_hz=(1_500, 20_000))


def test_torch_stft_matches_librosa_golden_reference():
    import librosa

    rng = np.random.default_rng(0)
    signal = rng.standard_normal((2, 5_000)).astype(np.float32)
    reference = np.abs(librosa.stft(signal, n_fft=512, hop_length=26, window="hann", center=True,
                                    pad_mode="constant"))
    from wrenlib.spectrogram import stft_magnitude

    np.testing.assert_allclose(stft_magnitude(signal), reference, rtol=1e-4, atol=1e-4)


def test_bin_frequencies_reach_nyquist_and_decibels_have_a_floor():
    """The top row is Nyquist (11,025 Hz at 22,050 Hz), ten times the reference is +20 dB in
    either array type, and silence sits at the floor (-160 dB), not at minus infinity."""
    import torch

    from wrenlib.spectrogram import StftSettings, decibels

    assert PAPER_STFT.bin_frequencies_hz()[-1] == pytest.approx(11_025.0)
    reference = PAPER_STFT.reference_magnitude
    assert float(decibels(torch.tensor([10 * reference]))[0]) == pytest.approx(20.0, abs=1e-4)
    assert float(decibels(np.array([10 * reference]))[0]) == pytest.approx(20.0, abs=1e-4)
    np.testing.assert_allclose(decibels(np.zeros(3)), -160.0)
    with pytest.raises(ValueError, match="overlap"):
        StftSettings(overlap=1.0)
