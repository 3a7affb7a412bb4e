"""The front end: filter, clips, images, backgrounds, and masks on the image's own pixels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from wrenlib.audio import bandpass, bandpass_sos
from wrenlib.frontend import (
    PAPER_FRONT_END,
    FrontEnd,
    apply_background,
    assign_backgrounds,
    pixel_frequencies_hz,
    pixel_times_s,
    render_levels,
    render_mask,
    segment,
    spectrogram_images,
)
from wrenlib.spectrogram import stft_magnitude

RATE = PAPER_FRONT_END.sample_rate_hz
SMALL = PAPER_FRONT_END.with_image_size(120, 240)


@pytest.mark.parametrize("filter_type, order", [("butter", 4), ("cheby2", 6), ("ellip", 4)])
def test_filter_passes_the_band_and_stops_outside(filter_type, order):
    frequencies, response = signal.sosfreqz(bandpass_sos(RATE, (1_500.0, 9_000.0), order, filter_type),
                                            worN=[500, 4_000, 10_500], fs=RATE)
    gain_db = 20 * np.log10(np.abs(response) ** 2)  # forwards and backwards: squared magnitude
    assert abs(gain_db[1]) < 2.1
    assert gain_db[0] < -20 and gain_db[2] < -10


def test_bad_filter_settings_are_refused():
    with pytest.raises(ValueError, match="filter_type"):
        bandpass(np.zeros(100), filter_type="magic")
    with pytest.raises(ValueError, match="order"):
        bandpass(np.zeros(100), order=0)


def tone(frequency_hz: float, start_s: float, stop_s: float, seconds: float = 4.0) -> np.ndarray:
    wave = np.zeros(int(seconds * RATE), dtype=np.float32)
    start, stop = int(start_s * RATE), int(stop_s * RATE)
    wave[start:stop] = 0.5 * np.sin(2 * np.pi * frequency_hz * np.arange(stop - start) / RATE)
    return wave


def test_segmentation_pads_a_long_tail_drops_a_short_one_and_drops_silent_clips():
    rng = np.random.default_rng(0)
    recording = (0.1 * rng.standard_normal(int(10.5 * RATE))).astype(np.float32)
    recording[4 * RATE:8 * RATE] = 0  # the second clip is silent
    pieces = segment(recording, PAPER_FRONT_END)
    assert pieces.clips.shape == (2, 4 * RATE)  # 0-4 s kept, 4-8 s silent, 8-10.5 s padded
    np.testing.assert_allclose(pieces.starts_s, [0.0, 8.0])
    assert pieces.dropped_quiet == 1
    assert np.all(pieces.clips[1, int(2.6 * RATE):] == 0)
    strict = FrontEnd(min_tail_seconds=3.0)
    assert len(segment(recording, strict).clips) == 1 and segment(recording, strict).dropped_tail_s == 2.5
    overlapping = FrontEnd(clip_hop_seconds=2.0)
    assert len(segment(recording, overlapping).starts_s) > 2


def test_image_is_frequency_up_time_across_and_floor_takes_the_background():
    front = SMALL
    image = render_levels(bandpass(tone(7_000, 1.0, 2.0)), front)[0]
    assert image.shape == (120, 240)
    rows, columns = np.nonzero(image > 0.5)
    frequencies, times = pixel_frequencies_hz(front), pixel_times_s(front)
    assert abs(np.median(frequencies[rows]) - 7_000) < 2 * 11_025 / 120
    assert times[columns].min() >= 1.0 - 0.03 and times[columns].max() <= 2.0 + 0.03
    assert image[-1].max() == 0.0  # the lowest row holds nothing: the floor, black
    white = apply_background(image, "white")
    assert white[-1].min() == 1.0
    np.testing.assert_allclose(white, 1 - image)


def test_levels_follow_the_decibel_range():
    front = PAPER_FRONT_END  # 480 rows >= 257 bins: no averaging across frequency bins
    loud = render_levels(bandpass(tone(5_000, 0.5, 3.5)), front)[0].max()
    quiet_wave = tone(5_000, 0.5, 3.5) * 10 ** (-30 / 20)
    quiet = render_levels(bandpass(quiet_wave), front)[0].max()
    # a unit sine at a bin centre is 0 dB = 40/45 of the range; 0.5 amplitude is -6 dB
    assert loud == pytest.approx((-6.02 + 40) / 45, abs=0.05)
    assert quiet == pytest.approx((-36.02 + 40) / 45, abs=0.05)


@pytest.mark.parametrize("size", [(120, 240), (480, 960)])
def test_a_tone_and_its_mask_land_on_the_same_pixels(size):
    front = PAPER_FRONT_END.with_image_size(*size)
    wave = tone(4_000, 1.5, 2.5)
    magnitude = stft_magnitude(wave)
    mask = magnitude >= magnitude.max() * 10 ** (-30 / 20)
    image = render_levels(wave, front)[0]
    on_image = render_mask(mask, front)
    bright = image > (-36 + 40) / 45  # within 30 dB of the tone's -6 dB peak
    assert on_image.any()
    assert (bright & on_image).sum() >= 0.9 * bright.sum()
    rows = np.flatnonzero(on_image.any(axis=1))
    columns = np.flatnonzero(on_image.any(axis=0))
    row_hz = 11_025 / size[0]
    assert pixel_frequencies_hz(front)[rows].min() - row_hz <= 4_000 <= pixel_frequencies_hz(front)[rows].max() + row_hz
    assert abs(pixel_times_s(front)[columns].min() - 1.5) < 0.03
    assert abs(pixel_times_s(front)[columns].max() - 2.5) < 0.03
    strict = render_mask(mask, front, rule="majority")
    assert strict.sum() <= on_image.sum() and not (strict & ~on_image).any()


def test_mixed_backgrounds_are_seeded_and_use_both():
    first = assign_backgrounds(200, "mixed", seed=1)
    assert set(first) == {"black", "white"}
    np.testing.assert_array_equal(first, assign_backgrounds(200, "mixed", seed=1))
    assert not np.array_equal(first, assign_backgrounds(200, "mixed", seed=2))
    with pytest.raises(ValueError):
        assign_backgrounds(3, "grey", seed=0)


def test_whole_front_end_applies_per_clip_backgrounds():
    clips = np.stack([tone(3_000, 1, 2), tone(6_000, 1, 2)])
    black = spectrogram_images(clips, SMALL, background="black")
    white = spectrogram_images(clips, SMALL, background="white")
    np.testing.assert_allclose(white, 1 - black, atol=1e-6)


def test_max_pooling_keeps_a_thin_stroke_at_its_level():
    wave = bandpass(tone(5_000, 1.0, 1.02))  # a 20 ms blip: a few frames of a 4 s clip
    mean = render_levels(wave, SMALL)[0].max()
    peak = render_levels(wave, FrontEnd(image_height_px=120, image_width_px=240, pixel_pooling="max"))[0].max()
    assert peak > mean + 0.05


def test_explicit_device_gives_the_same_levels():
    wave = bandpass(tone(4_000, 1.0, 2.0))
    np.testing.assert_array_equal(render_levels(wave, SMALL), render_levels(wave, SMALL, device="cpu", batch_size=8))


def test_clips_keep_every_sample_a_tail_of_exactly_the_minimum_is_padded_and_overlap_drops_no_tail():
    """A clip is the recording's samples, to the last; a tail of exactly min_tail_seconds is kept
    (padded); with overlapping hops the tail the last clip covers is not counted as dropped."""
    rng = np.random.default_rng(0)
    length = PAPER_FRONT_END.clip_samples
    x = (0.3 * rng.standard_normal(int(6.0 * RATE))).astype(np.float32)  # 4 s + a 2.0 s tail
    pieces = segment(x, filtered=True)
    np.testing.assert_array_equal(pieces.clips[0], x[:length])
    assert len(pieces.clips) == 2 and pieces.dropped_tail_s == 0.0
    overlapping = FrontEnd(clip_hop_seconds=2.0)
    pieces = segment((0.3 * rng.standard_normal(int(10.5 * RATE))).astype(np.float32), overlapping, filtered=True)
    assert pieces.starts_s.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0] and pieces.dropped_tail_s == 0.0


def test_loud_sound_stays_within_the_level_range_and_pixel_centres_are_the_grids():
    """Sound above the top of the dB range is drawn at level 1, never above (a white background
    would go negative); at the STFT's own size a pixel's centre is its bin's and frame's."""
    loud = 40 * tone(5_000, 0.0, 4.0)[None]  # +32 dB over a unit sine, above the range's top (+5 dB)
    assert render_levels(loud, PAPER_FRONT_END.with_image_size(64, 128)).max() <= 1.0
    stft = PAPER_FRONT_END.stft
    n_frames = stft.n_frames(PAPER_FRONT_END.clip_samples)
    native = PAPER_FRONT_END.with_image_size(stft.n_bins, n_frames)
    np.testing.assert_allclose(pixel_frequencies_hz(native), stft.bin_frequencies_hz()[::-1], atol=1e-6)
    np.testing.assert_allclose(pixel_times_s(native), stft.frame_times_s(n_frames), atol=1e-9)


@pytest.mark.parametrize("settings", [{"db_range": (0.0, 0.0)}, {"image_height_px": 4}, {"clip_hop_seconds": -1.0}])
def test_a_front_end_that_could_draw_nothing_is_refused(settings):
    with pytest.raises(ValueError):
        FrontEnd(**settings)


def test_an_unknown_background_is_refused_by_name():
    with pytest.raises(ValueError, match="grey"):
        apply_background(np.zeros((2, 8, 8)), "grey")


def test_a_recordings_loudest_level_is_its_loudest_clips_however_quiet_the_clips_after_it():
    """The level a quiet file's message quotes is its loudest clip's, not its last clip's."""
    loud = tone(5_000, 0.0, 4.0)
    x = np.concatenate([loud, 1e-3 * loud]).astype(np.float32)
    pieces = segment(x, filtered=True)
    assert pieces.loudest_db == pytest.approx(segment(loud.astype(np.float32), filtered=True).loudest_db)
    assert pieces.loudest_db > segment((1e-3 * loud).astype(np.float32), filtered=True).loudest_db + 50


def test_rows_above_the_stfts_resolution_show_the_bin_under_their_centre():
    """At 480 rows the paper's 257 bins are repeated: each row shows the bin whose span holds
    the row's centre frequency (``pixel_frequencies_hz``), not the one under its top edge."""
    front = PAPER_FRONT_END.with_image_size(480, 8)
    n_bins = front.stft.n_bins
    even_bins = np.zeros((n_bins, 16), dtype=bool)
    even_bins[::2] = True
    rows = render_mask(even_bins, front)[:, 0]
    bin_hz = front.sample_rate_hz / front.stft.window_samples
    nearest_bin = np.rint(pixel_frequencies_hz(front) / bin_hz).astype(int)
    assert np.array_equal(rows, nearest_bin % 2 == 0)


def test_a_majority_mask_takes_a_pixel_covered_exactly_half():
    """Each 8 x 8 pixel pools 2 x 2 cells; a column pair covered 2/4 is in, 1/4 out, 3/4 in."""
    front = PAPER_FRONT_END.with_image_size(8, 8)
    mask = np.zeros((16, 16), dtype=bool)
    mask[:, 0] = True  # pixel column 0: half of every pixel
    mask[::2, 2] = True  # pixel column 1: a quarter
    mask[:, 4] = True  # pixel column 2: three quarters
    mask[::2, 5] = True
    strict = render_mask(mask, front, rule="majority")
    assert strict[:, :3].tolist() == [[True, False, True]] * 8
    assert not strict[:, 3:].any()
    assert render_mask(mask, front)[:, :3].all()
