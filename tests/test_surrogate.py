"""Properties a wrong surrogate generator would break (chapter 01)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from wrenlib.audio import BAND_HZ, bandpass, power
from wrenlib.spectrogram import PAPER_STFT, stft_magnitude
from wrenlib.surrogate import (
    DIAGNOSTIC_FEATURES,
    SHARED_FEATURES,
    SurrogateConfig,
    build_population,
    design_song,
    mexican_probability,
    plan_song,
    render_song,
    synthesise_clip,
)

FREQUENCIES = PAPER_STFT.bin_frequencies_hz()


def test_masks_lie_inside_the_band_and_the_clip(small_dataset):
    n_frames = PAPER_STFT.n_frames(small_dataset.config.clip_samples)
    assert small_dataset.mask_shape == (PAPER_STFT.n_bins, n_frames)
    for index in range(len(small_dataset)):
        for mask in (small_dataset.diagnostic_mask(index), small_dataset.song_mask(index)):
            assert mask.any(), f"clip {index} has an empty mask"
            rows = np.flatnonzero(mask.any(axis=1))
            assert FREQUENCIES[rows].min() >= BAND_HZ[0]
            assert FREQUENCIES[rows].max() <= BAND_HZ[1]


def test_diagnostic_mask_is_empty_where_no_diagnostic_element_plays(small_dataset):
    # a frame sees half a window either side; the reverberation tail lasts at most 80 ms
    margin_s = PAPER_STFT.window_samples / 2 / PAPER_STFT.sample_rate_hz + 0.08
    times = PAPER_STFT.frame_times_s(small_dataset.mask_shape[1])
    for index in range(len(small_dataset)):
        elements = small_dataset.elements_of(index)
        diagnostic = elements[elements["role"] == "diagnostic"]
        assert set(diagnostic["kind"]) == {"trill", "buzz"}
        playing = np.zeros(len(times), dtype=bool)
        for row in diagnostic.itertuples():
            playing |= (times >= row.start_s - margin_s) & (times <= row.end_s + margin_s)
        columns = small_dataset.diagnostic_mask(index).any(axis=0)
        assert not (columns & ~playing).any(), f"clip {index}: diagnostic mask outside its elements"
        assert (columns & playing).any()


def test_a_mask_holds_only_cells_that_the_image_can_show():
    """Within 30 dB of the song's peak is not enough: a cell below the image's -40 dB floor is drawn
    at the floor, showing none of the song (for a quiet song, a fifth of the 30 dB rule's cells)."""
    from wrenlib.frontend import PAPER_FRONT_END
    from wrenlib.spectrogram import decibels
    from wrenlib.surrogate import build_population, element_masks, synthesise_clip

    config = SurrogateConfig.for_clip_count(16, seed=3)
    assert config.mask_visible_db == PAPER_FRONT_END.db_range[0]
    for unreachable in (float("inf"), float("nan")):  # a floor no cell reaches would empty every mask
        with pytest.raises(ValueError, match="mask_visible_db must be a level in dB"):
            SurrogateConfig(mask_visible_db=unreachable)
    population = build_population(config)
    left_out = 0
    for clip_id in range(4):
        clip = synthesise_clip(population, clip_id)
        levels = decibels(stft_magnitude(clip.song[None])[0])
        floored = element_masks(np.zeros_like(clip.song), clip.song, config.mask_floor_db,
                                visible_db=config.mask_visible_db)[1]
        unfloored = element_masks(np.zeros_like(clip.song), clip.song, config.mask_floor_db)[1]
        assert levels[floored].min() >= config.mask_visible_db - 1e-3
        assert (floored <= unfloored).all() and levels[unfloored & ~floored].max(initial=-99) < config.mask_visible_db
        # the clip's own mask is the floored one (up to float32 rounding of the song at the threshold)
        assert (clip.song_mask != floored).sum() <= 0.001 * floored.sum()
        left_out += int((unfloored & ~floored).sum())
    assert left_out > 0


def test_the_mask_only_fields_change_the_masks_and_not_one_sample():
    """The caches of images, CNNs and maps leave MASK_ONLY_FIELDS out of their keys (image_key):
    that is right only while those fields change which cells a mask holds and nothing else."""
    from dataclasses import asdict, replace

    from wrenlib.surrogate import MASK_ONLY_FIELDS

    config = SurrogateConfig(seed=5, individuals_per_dialect=2, clips_per_individual=2)
    remasked = replace(config, mask_floor_db=12.0, mask_visible_db=-20.0)
    assert set(MASK_ONLY_FIELDS) <= set(asdict(config))
    assert config.image_key() == remasked.image_key() != replace(config, seed=6).image_key()
    changed = 0
    for clip_id in range(3):
        clip, again = synthesise_clip(build_population(config), clip_id), synthesise_clip(build_population(remasked), clip_id)
        np.testing.assert_array_equal(clip.waveform, again.waveform)
        changed += int((clip.song_mask != again.song_mask).sum() + (clip.diagnostic_mask != again.diagnostic_mask).sum())
    assert changed > 0


def test_diagnostic_mask_lies_within_the_song_mask(small_dataset):
    for index in range(len(small_dataset)):
        diagnostic = small_dataset.diagnostic_mask(index)
        song = small_dataset.song_mask(index)
        assert (diagnostic & song).sum() >= 0.95 * diagnostic.sum()
        assert song.sum() > diagnostic.sum()  # the shared elements add cells


def test_elements_lie_inside_the_clip_and_the_band(small_dataset):
    elements = small_dataset.elements
    assert (elements["start_s"] >= 0).all()
    assert (elements["end_s"] <= small_dataset.config.clip_seconds).all()
    assert (elements["low_hz"] >= BAND_HZ[0]).all() and (elements["high_hz"] <= BAND_HZ[1]).all()
    assert (elements["low_hz"] < elements["high_hz"]).all()


def test_same_seed_gives_identical_audio_and_another_seed_does_not():
    config = SurrogateConfig(seed=11, individuals_per_dialect=2, clips_per_individual=2)
    first = synthesise_clip(build_population(config), 1)
    again = synthesise_clip(build_population(config), 1)
    other = synthesise_clip(build_population(SurrogateConfig(seed=12, individuals_per_dialect=2,
                                                             clips_per_individual=2)), 1)
    np.testing.assert_array_equal(first.waveform, again.waveform)
    np.testing.assert_array_equal(first.diagnostic_mask, again.diagnostic_mask)
    assert not np.allclose(first.waveform, other.waveform)


def test_a_clip_does_not_depend_on_generation_order(small_dataset):
    population = build_population(small_dataset.config)
    last = len(small_dataset) - 1
    clip = synthesise_clip(population, last)
    np.testing.assert_array_equal(clip.waveform, small_dataset.waveforms[last])


def test_no_individual_crosses_splits_and_every_split_has_both_dialects(small_dataset):
    clips = small_dataset.clips
    assert clips.groupby("individual")["split"].nunique().max() == 1
    assert clips.groupby("individual")["dialect"].nunique().max() == 1
    for split in ("train", "validation", "test"):
        assert set(clips.loc[clips["split"] == split, "dialect"]) == {"Eastern", "Mexican"}


def test_each_dialect_has_several_song_types_and_shares_their_templates():
    population = build_population(SurrogateConfig())
    for dialect in (0, 1):
        assert len({t.index for t in population.song_types if t.dialect == dialect}) >= 3
    for index in range(population.config.song_types_per_dialect):
        assert population.song_type(0, index).template == population.song_type(1, index).template


def _plans(n_clips: int = 2_000, **changes):
    config = SurrogateConfig(seed=5, individuals_per_dialect=100, clips_per_individual=10, **changes)
    population = build_population(config)
    return [plan_song(population, clip_id) for clip_id in range(min(n_clips, config.total_clips))]


def test_dialects_differ_in_the_diagnostic_features_and_not_in_the_shared_ones():
    plans = _plans()
    by_dialect = [[p for p in plans if p.dialect == d] for d in (0, 1)]
    for feature in DIAGNOSTIC_FEATURES:
        eastern = [p.features[feature.name] for p in by_dialect[0]]
        mexican = [p.features[feature.name] for p in by_dialect[1]]
        assert stats.mannwhitneyu(eastern, mexican).pvalue < 1e-10, feature.name
        assert np.sign(np.mean(eastern) - np.mean(mexican)) == feature.eastern_direction
        # the distributions overlap: the task is learnable, not trivial
        assert max(min(eastern), min(mexican)) < min(max(eastern), max(mexican))
    for name in SHARED_FEATURES:
        eastern = [p.features[name] for p in by_dialect[0]]
        mexican = [p.features[name] for p in by_dialect[1]]
        assert stats.mannwhitneyu(eastern, mexican).pvalue > 1e-3, name


def test_element_placement_does_not_depend_on_the_dialect():
    plans = _plans(800)
    for kind in ("peep", "whistle", "buzz", "terminal"):
        starts = [[e.start_s - p.features["song_onset_s"] for p in plans if p.dialect == d
                   for e in p.elements if e.kind == kind] for d in (0, 1)]
        if min(len(s) for s in starts) > 20:
            assert stats.mannwhitneyu(*starts).pvalue > 1e-3, kind


def _band_profile(waveform: np.ndarray) -> np.ndarray:
    """Mean log energy in 24 bands across 1.5-9 kHz: what a simple classifier could learn from."""
    magnitude = stft_magnitude(waveform)
    edges = np.linspace(BAND_HZ[0], BAND_HZ[1], 25)
    band = np.digitize(FREQUENCIES, edges)
    return np.array([np.log(np.mean(magnitude[band == b] ** 2) + 1e-12) for b in range(1, 25)])


@pytest.mark.slow
def test_a_classifier_that_hears_only_the_shared_elements_is_at_chance():
    config = SurrogateConfig(seed=8, individuals_per_dialect=40, clips_per_individual=2)
    population = build_population(config)
    shared_profiles, diagnostic_profiles, labels = [], [], []
    for clip_id in range(config.total_clips):
        plan = plan_song(population, clip_id)
        diagnostic, shared = render_song(plan, config)
        shared_profiles.append(_band_profile(shared))
        diagnostic_profiles.append(_band_profile(diagnostic))
        labels.append(plan.dialect)

    def accuracy(features) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2_000))
        return float(cross_val_score(model, np.array(features), labels, cv=5).mean())

    assert abs(accuracy(shared_profiles) - 0.5) < 0.15
    assert accuracy(diagnostic_profiles) > 0.75


def test_snr_is_the_planned_in_band_ratio():
    config = SurrogateConfig(seed=2, individuals_per_dialect=2, clips_per_individual=2)
    clip = synthesise_clip(build_population(config), 3)
    start = int(min(e.start_s for e in clip.plan.elements) * config.sample_rate_hz)
    stop = int(max(e.end_s for e in clip.plan.elements) * config.sample_rate_hz)
    song = bandpass(clip.song)[start:stop]
    noise = bandpass(clip.waveform - clip.song)
    measured = 10 * np.log10(power(song) / power(noise))
    assert measured == pytest.approx(clip.plan.snr_db, abs=0.2)


def test_zero_separation_gives_identical_dialect_means():
    for feature in DIAGNOSTIC_FEATURES:
        assert feature.dialect_mean(0, 0.0) == feature.dialect_mean(1, 0.0)
        assert feature.dialect_mean(0, 1.6) != feature.dialect_mean(1, 1.6)


def test_ideal_observer_reads_the_dialect_means_correctly():
    eastern = {f.name: f.dialect_mean(0, 1.6) for f in DIAGNOSTIC_FEATURES}
    mexican = {f.name: f.dialect_mean(1, 1.6) for f in DIAGNOSTIC_FEATURES}
    assert mexican_probability(eastern) < 0.1 < 0.9 < mexican_probability(mexican)
    faster = dict(eastern, trill_rate_per_s=eastern["trill_rate_per_s"] + 2)
    assert mexican_probability(faster) > mexican_probability(eastern)


def test_design_song_uses_the_chosen_diagnostic_values():
    clip = design_song(trill_rate_per_s=15.0, trill_bandwidth_hz=2_000.0, buzz_depth_hz=300.0)
    trill = next(e for e in clip.plan.elements if e.kind == "trill")
    assert trill.params["rate_per_s"] == 15.0
    assert clip.plan.features["buzz_depth_hz"] == 300.0


@pytest.mark.parametrize("changes, message", [
    ({"individuals_per_dialect": 0}, "individuals_per_dialect"),
    ({"separation": -1.0}, "separation"),
    ({"separation": float("nan")}, "separation must be a finite number"),  # NaN is not below 0 either
    ({"snr_db_range": (5.0, float("inf"))}, "must be finite"),
    ({"sample_rate_hz": 16_000}, "sample_rate_hz"),
    ({"sample_rate_hz": 44_100}, "sample_rate_hz must be 22050"),  # the masks' STFT is at 22.05 kHz
    ({"clip_seconds": 3.0}, "clip_seconds must be at least 4"),  # a 3.3 s song would not fit
    ({"split_fractions": (0.5, 0.5, 0.5)}, "split_fractions"),
    ({"n_clips": 0}, "n_clips"),
])
def test_bad_configuration_is_refused_with_a_clear_message(changes, message):
    with pytest.raises(ValueError, match=message):
        SurrogateConfig(**changes)


def test_for_clip_count_gives_exactly_that_many_balanced_clips():
    config = SurrogateConfig.for_clip_count(10, clips_per_individual=3)
    assert config.total_clips == 10
    population = build_population(config)
    dialects = [population.individuals[population.clip_assignment(i)[0]].dialect for i in range(10)]
    assert dialects.count(0) == dialects.count(1) == 5


def test_one_synthesis_remixed_at_each_snr_equals_a_synthesis_at_that_snr():
    from wrenlib.surrogate import build_population, plan_song, synthesise_clip, waveforms_at_snrs

    config = SurrogateConfig(seed=5, individuals_per_dialect=2, clips_per_individual=2)
    population = build_population(config)
    plan = plan_song(population, 3)
    mixed = waveforms_at_snrs(plan, config, [0.0, 25.0, plan.snr_db])
    np.testing.assert_array_equal(mixed[2], synthesise_clip(population, 3).waveform)
    for row, snr in zip(mixed[:2], (0.0, 25.0)):
        fixed = build_population(SurrogateConfig(seed=5, individuals_per_dialect=2, clips_per_individual=2,
                                                 snr_db_range=(snr, snr)))
        np.testing.assert_array_equal(row, synthesise_clip(fixed, 3).waveform)
    assert np.std(mixed[0] - mixed[1]) > 0  # the noise level did change


def test_generating_in_this_process_leaves_its_torch_threads_alone():
    import torch

    from wrenlib.dataset import generate_surrogate_dataset
    from wrenlib.surrogate import SurrogateConfig

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generate_surrogate_dataset(SurrogateConfig.for_clip_count(4, seed=0), n_jobs=1, progress=False)
        assert torch.get_num_threads() == 2  # only worker processes are pinned to one thread
    finally:
        torch.set_num_threads(before)


def test_worker_processes_synthesise_the_same_clips_as_this_process():
    """generate_surrogate_dataset over 2 worker processes (wrenlib.runtime.map_batches, each worker
    on one torch thread) gives the clips of a run in this process, in the same order, and leaves
    this process's torch threads alone."""
    import torch

    from wrenlib.dataset import generate_surrogate_dataset
    from wrenlib.surrogate import SurrogateConfig

    config = SurrogateConfig.for_clip_count(12, seed=3)
    here = generate_surrogate_dataset(config, n_jobs=1, progress=False, batch_size=4)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        workers = generate_surrogate_dataset(config, n_jobs=2, progress=False, batch_size=4)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(here.waveforms, workers.waveforms)
    pd.testing.assert_frame_equal(here.clips, workers.clips)


def test_dialect_means_sit_separation_total_sds_apart_around_the_centre():
    """The documented geometry of a diagnostic feature: the two dialect means lie ``separation``
    total standard deviations apart, symmetric about ``centre``, Eastern on its stated side. A
    lost factor of 2 would double every dialect difference (and make the task too easy)."""
    for feature in DIAGNOSTIC_FEATURES:
        for separation in (0.5, 1.6, 3.0):
            eastern, mexican = feature.dialect_mean(0, separation), feature.dialect_mean(1, separation)
            assert mexican - eastern == pytest.approx(-feature.eastern_direction * separation * feature.total_sd)
            assert (eastern + mexican) / 2 == pytest.approx(feature.centre)


def test_ideal_observer_is_the_bayes_posterior_of_the_documented_model():
    """P(Mexican | values) for independent Gaussian features (the dialect's mean, the total SD) and
    equal priors, computed here from the densities themselves; at the Eastern means the
    log-odds are -0.5 * separation² per feature (a squared distance, not an absolute one)."""
    separation = 1.6
    rng = np.random.default_rng(0)

    def means(feature, dialect):  # centre +- separation / 2 total SDs, Eastern on its side
        side = feature.eastern_direction * (1 if dialect == 0 else -1)
        return feature.centre + side * separation * feature.total_sd / 2

    for _ in range(5):
        values = {f.name: float(f.centre + rng.normal(0, 2 * f.total_sd)) for f in DIAGNOSTIC_FEATURES}
        log_mexican = sum(stats.norm.logpdf(values[f.name], means(f, 1), f.total_sd) for f in DIAGNOSTIC_FEATURES)
        log_eastern = sum(stats.norm.logpdf(values[f.name], means(f, 0), f.total_sd) for f in DIAGNOSTIC_FEATURES)
        expected = 1 / (1 + np.exp(log_eastern - log_mexican))
        assert mexican_probability(values, separation) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    eastern = {f.name: means(f, 0) for f in DIAGNOSTIC_FEATURES}
    closed_form = 1 / (1 + np.exp(len(DIAGNOSTIC_FEATURES) * 0.5 * separation**2))
    assert mexican_probability(eastern, separation) == pytest.approx(closed_form, rel=1e-9)


def test_planned_values_split_their_variance_as_configured():
    """Between renditions of one bird's song type the diagnostic values vary by the rendition
    share (1 - type share - individual share) of the total variance, and between birds by the
    individual share: the shares decide how much a bird, versus a song, tells about its dialect.
    Measured from 4,800 planned songs (no audio), within 15 % of the configured shares."""
    config = SurrogateConfig(seed=5, individuals_per_dialect=300, clips_per_individual=8)
    population = build_population(config)
    plans = [plan_song(population, clip_id) for clip_id in range(config.total_clips)]
    rendition_share = 1 - config.type_variance_share - config.individual_variance_share
    for feature in DIAGNOSTIC_FEATURES:
        by_bird: dict[int, list[tuple[int, float]]] = {}
        for plan in plans:  # the value less its song type's mean: the bird's offset plus the rendition's jitter
            mean = population.song_type(plan.dialect, plan.song_type).diagnostic_means[feature.name]
            by_bird.setdefault(plan.individual, []).append((plan.song_type, plan.features[feature.name] - mean))
        squares, freedom, bird_means = 0.0, 0, []
        for songs in by_bird.values():
            types, residuals = np.array([t for t, _ in songs]), np.array([r for _, r in songs])
            bird_means.append(residuals.mean())
            for song_type in np.unique(types):
                group = residuals[types == song_type]
                squares += float(((group - group.mean()) ** 2).sum())
                freedom += len(group) - 1
        total = feature.total_sd**2
        within = squares / freedom
        between = np.var(bird_means, ddof=1) - within / config.clips_per_individual
        assert within / total == pytest.approx(rendition_share, rel=0.15), feature.name
        assert between / total == pytest.approx(config.individual_variance_share, rel=0.15), feature.name


def test_element_masks_measure_every_part_against_the_whole_songs_peak():
    """The diagnostic mask holds the cells where the diagnostic elements come within ``floor_db`` of
    the *song's* loudest cell, not of their own: a diagnostic part 40 dB below the song's peak
    has no cell in a 30 dB mask, one 20 dB below has some."""
    from wrenlib.surrogate import element_masks

    rate = PAPER_STFT.sample_rate_hz
    t = np.arange(int(1.0 * rate)) / rate
    shared = np.sin(2 * np.pi * 6_000 * t)
    for below_db, expect_cells in ((40.0, False), (20.0, True)):
        diagnostic = 10 ** (-below_db / 20) * np.sin(2 * np.pi * 3_000 * t)
        diagnostic_mask, song_mask = element_masks(diagnostic, diagnostic + shared, floor_db=30.0)
        assert song_mask.any()
        assert diagnostic_mask.any() == expect_cells, f"diagnostic part {below_db} dB below the song's peak"


def test_every_clips_row_agrees_with_its_dialect_and_its_song_type(small_dataset):
    """The label the CNN learns is the dialect the tables show (0 Eastern, 1 Mexican), and a clip's
    song type is named as the population names it (E1..E4, M1..M4): a label flipped against its
    dialect, or a song type off by one, would change every figure that groups clips by them."""
    from wrenlib.surrogate import DIALECTS

    clips = small_dataset.clips
    np.testing.assert_array_equal(small_dataset.labels, (clips["dialect"] == "Mexican").astype(int))
    population = build_population(small_dataset.config)
    for row in clips.itertuples():
        assert row.dialect == DIALECTS[row.label]
        assert row.song_type == population.song_type(row.label, row.song_template).name
    assert set(clips["song_type"]) <= {f"{d[0]}{i}" for d in DIALECTS
                                       for i in range(1, small_dataset.config.song_types_per_dialect + 1)}


def test_a_clips_element_table_holds_its_own_elements_and_the_splits_part_the_clips(small_dataset):
    """``elements_of`` and ``split_indices`` are how chapters read one clip's elements and one
    split's clips: each must hold exactly its own, or maps would be scored against another clip's
    elements and a model tested on its training clips."""
    parts = [small_dataset.elements_of(index) for index in range(len(small_dataset))]
    assert all(len(part) and (part["clip"] == index).all() for index, part in enumerate(parts))
    assert sum(len(part) for part in parts) == len(small_dataset.elements)
    splits = {name: small_dataset.split_indices(name) for name in ("train", "validation", "test")}
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(len(small_dataset)))
    for name, indices in splits.items():
        assert len(indices) and (small_dataset.clips["split"].to_numpy()[indices] == name).all()


def test_a_clip_count_that_leaves_one_clip_in_the_last_batch_is_generated_whole(monkeypatch):
    """Every clip is made, however the clips fall into batches, and the record names the processes
    that had work (one batch: one process, whatever was asked) and the time in UTC."""
    import os
    import time

    from wrenlib import dataset
    from wrenlib.surrogate import SurrogateConfig

    # worker processes would take seconds to start: the batches run here, as map_batches does with 1
    monkeypatch.setattr(dataset, "map_batches", lambda function, batches, n_jobs, *args:
                        (function(*args, batch) for batch in batches))
    config = SurrogateConfig.for_clip_count(5, seed=2)
    made = dataset.generate_surrogate_dataset(config, n_jobs=1, progress=False, batch_size=2)
    assert len(made) == len(made.diagnostic_cells) == 5 and made.clips["clip"].tolist() == list(range(5))
    assert np.abs(made.waveforms).max(axis=1).min() > 0  # no clip left silent
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kathmandu"  # 5:45 ahead of UTC: a local time would be far off
    time.tzset()
    try:
        one_batch = dataset.generate_surrogate_dataset(SurrogateConfig.for_clip_count(2, seed=2), n_jobs=3,
                                                       progress=False)
        made_at = time.strptime(one_batch.made, "%Y-%m-%d %H:%M UTC")
    finally:
        os.environ.pop("TZ") if zone is None else os.environ.__setitem__("TZ", zone)
        time.tzset()
    assert one_batch.processes == 1
    assert abs(time.mktime(made_at) - time.mktime(time.gmtime())) < 300


def test_the_profiles_configuration_takes_its_sizes_seed_and_changes():
    """Chapter 01's data for a profile: its individuals and clips per individual (not swapped), the
    seed asked for, and any change on top."""
    from wrenlib.dataset import surrogate_config_for_profile
    from wrenlib.profiles import get_profile

    sizes = get_profile("quick")
    assert sizes.individuals_per_dialect != sizes.clips_per_individual
    config = surrogate_config_for_profile("quick", seed=7, snr_db_range=(5.0, 10.0))
    assert (config.individuals_per_dialect, config.clips_per_individual) == (sizes.individuals_per_dialect,
                                                                             sizes.clips_per_individual)
    assert config.seed == 7 and config.snr_db_range == (5.0, 10.0)
    assert config.total_clips == 2 * sizes.individuals_per_dialect * sizes.clips_per_individual
