"""The confound switch (chapter 11): presence rates, additivity, masks in the source's band."""

from __future__ import annotations

import numpy as np
import pytest

from wrenlib.confound import SOURCE_NAME, Confound, add_confound, confound_draw, confounded_images
from wrenlib.frontend import PAPER_FRONT_END, pixel_frequencies_hz
from wrenlib.spectrogram import PAPER_STFT, decibels, stft_magnitude


def test_rates_follow_the_strength_and_flip_with_the_dialect():
    np.testing.assert_allclose(Confound(0.0).rates(), [0.0, 0.0])
    assert Confound(0.0).is_clean and not Confound(0.0, base_rate=0.5).is_clean
    np.testing.assert_allclose(Confound(0.5).rates(), [0.0, 0.5])
    np.testing.assert_allclose(Confound(1.0).rates(), [0.0, 1.0])
    np.testing.assert_allclose(Confound(0.0, base_rate=0.5).rates(), [0.5, 0.5])
    np.testing.assert_allclose(Confound(0.4, base_rate=0.5).rates(), [0.3, 0.7])
    np.testing.assert_allclose(Confound(0.4, base_rate=0.5).flipped().rates(), [0.7, 0.3])
    np.testing.assert_allclose(Confound(1.0, base_rate=0.5).rates(), [0.0, 1.0])
    assert Confound(0.4).flipped().flipped() == Confound(0.4)
    for bad in (dict(strength=1.5), dict(base_rate=-0.1), dict(favoured="Western"), dict(centre_hz=9_500.0), dict(level_db_range=(0, -5))):
        with pytest.raises(ValueError, match="invalid confound"):
            Confound(**bad)


def test_presence_only_grows_with_strength_and_matches_the_rates():
    draws = {s: np.array([[confound_draw(Confound(s, base_rate=0.5), clip, label)[0] for clip in range(2000)]
                          for label in (0, 1)]) for s in (0.0, 0.5, 1.0)}
    assert np.all(draws[0.5][1] >= draws[0.0][1]) and np.all(draws[1.0][1] >= draws[0.5][1])  # favoured: nested
    assert np.all(draws[0.5][0] <= draws[0.0][0])                                             # other: nested
    np.testing.assert_allclose(draws[0.5].mean(axis=1), [0.25, 0.75], atol=0.03)
    assert draws[1.0][1].all() and not draws[1.0][0].any()


def test_the_source_is_added_alone_and_its_mask_lies_in_its_band(small_dataset):
    confound = Confound(1.0)
    mixed = add_confound(small_dataset, confound)
    clean = add_confound(small_dataset, None)
    carries = mixed.clips["confound"].to_numpy()
    np.testing.assert_array_equal(carries, mixed.clips["dialect"].to_numpy() == "Mexican")
    np.testing.assert_array_equal(clean.waveforms, np.asarray(small_dataset.waveforms))  # None: the clean data
    np.testing.assert_array_equal(mixed.waveforms[~carries], np.asarray(small_dataset.waveforms)[~carries])
    assert not np.array_equal(mixed.waveforms[carries], np.asarray(small_dataset.waveforms)[carries])
    assert "confound" not in small_dataset.clips  # the source dataset is left as it was
    frequencies = np.fft.rfftfreq(PAPER_STFT.window_samples, 1 / PAPER_STFT.sample_rate_hz)
    for index in np.flatnonzero(carries)[:3]:
        mask = mixed.confound_mask(index)
        rows = np.flatnonzero(mask.any(axis=1))
        assert mask.mean() > 0.002  # a narrow band, and only where the image shows it
        low, high = confound.centre_hz - confound.width_hz / 2, confound.centre_hz + confound.width_hz / 2
        assert frequencies[rows].min() >= low - 300 and frequencies[rows].max() <= high + 300
        assert low <= frequencies[mask.sum(axis=1).argmax()] <= high  # most cells inside the source's band
        # the chorus plays through the clip, but its quieter stretches lie below the image's floor:
        # the mask holds the cells within 30 dB of its peak that the image can show, no others
        source = np.asarray(mixed.waveforms[index], np.float64) - np.asarray(small_dataset.waveforms[index], np.float64)
        levels = decibels(stft_magnitude(source[None])[0])
        config = small_dataset.config
        expected = levels >= max(levels.max() - config.mask_floor_db, config.mask_visible_db)
        assert (mask != expected).sum() <= 0.002 * expected.sum()  # float32 rounding at the threshold
        assert levels[mask].min() >= config.mask_visible_db - 0.05
        # in pulses through the whole clip: masked time columns from end to end, in many separate
        # stretches (their share of the columns varies with the seed's levels, 5 % to 60 %)
        columns = np.flatnonzero(mask.any(axis=0))
        assert columns[-1] - columns[0] > 0.9 * mask.shape[1] and (np.diff(columns) > 1).sum() >= 20
    for index in np.flatnonzero(~carries):
        assert not mixed.confound_mask(index).any()
    listed = mixed.background[mixed.background["source"] == SOURCE_NAME]
    assert sorted(listed["clip"]) == sorted(np.flatnonzero(carries))
    assert small_dataset.confound_cells is None and not small_dataset.confound_mask(0).any()


def test_a_subset_keeps_the_draws_of_its_clips_and_is_renumbered(small_dataset):
    confound = Confound(0.5, base_rate=0.4, seed=3)
    whole = add_confound(small_dataset, confound)
    chosen = np.array([5, 2, 17])
    part = add_confound(small_dataset, confound, clips=chosen)
    assert part.clips["clip"].tolist() == [0, 1, 2] and part.clips["source_clip"].tolist() == chosen.tolist()
    np.testing.assert_array_equal(part.waveforms, whole.waveforms[chosen])
    np.testing.assert_array_equal(part.clips["confound"], whole.clips["confound"].to_numpy()[chosen])
    for position, index in enumerate(chosen):
        np.testing.assert_array_equal(part.diagnostic_mask(position), small_dataset.diagnostic_mask(index))
        np.testing.assert_array_equal(part.confound_mask(position), whole.confound_mask(index))
    assert set(part.elements["clip"]) == {0, 1, 2}
    flipped = add_confound(part, confound.flipped())  # a copy of a copy draws by the original clip
    np.testing.assert_array_equal(flipped.clips["source_clip"], chosen)


def test_images_carry_the_confound_mask_on_the_rows_of_its_band(small_dataset):
    front = PAPER_FRONT_END.with_image_size(60, 120)
    confound = Confound(1.0)
    images = confounded_images(small_dataset, confound, front, background="white")
    carries = np.flatnonzero(images.clips["confound"].to_numpy())
    masks = images.stacked_masks(carries, "confound")
    rows = np.flatnonzero(masks.any(axis=(0, 2)))
    frequencies = pixel_frequencies_hz(front)
    assert frequencies[rows].min() > 5_000 and frequencies[rows].max() < 8_000
    assert set(images.backgrounds) == {"white"} and images.surrogate.waveforms.size == 0
    # the source darkens its band on a white page: the band is darker where the confound is
    clean = confounded_images(small_dataset, None, front, background="white")
    band = masks[0]
    assert images.image(int(carries[0]))[band].mean() < clean.image(int(carries[0]))[band].mean() - 0.02
    assert "confound" not in clean.masks(0) or not clean.masks(0)["confound"].any()


def test_the_experiment_tests_every_model_three_ways_and_caches_it(isolated_artifacts, monkeypatch, other_masks):
    from wrenlib import profiles, training
    from wrenlib.confound import confound_experiment

    tiny = profiles.PROFILES["quick"].with_overrides(
        name="tiny", individuals_per_dialect=5, clips_per_individual=4, image_height_px=32, image_width_px=64,
        max_epochs=1, patience=1)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    models, images, accuracy = confound_experiment("tiny", (0.0, 1.0), progress=False, device="cpu")
    assert sorted(models) == [0.0, 1.0]
    assert accuracy[["strength", "test set"]].values.tolist() == [
        [s, name] for s in (0.0, 1.0) for name in ("confounded", "clean", "flipped")]
    mexican = images[(1.0, "confounded")].clips["dialect"].to_numpy() == "Mexican"
    np.testing.assert_array_equal(images[(1.0, "confounded")].clips["confound"], mexican)
    np.testing.assert_array_equal(images[(1.0, "flipped")].clips["confound"], ~mexican)
    assert not images["clean"].clips["confound"].any() and not images[(0.0, "confounded")].clips["confound"].any()
    shares = accuracy.set_index(["strength", "test set"])["with source"]
    assert shares[(1.0, "confounded")] == pytest.approx(mexican.mean()) and shares[(1.0, "clean")] == 0
    assert ((accuracy["ci_low"] <= accuracy["accuracy"]) & (accuracy["accuracy"] <= accuracy["ci_high"])).all()
    # each row keeps which test clips it got right, the same clips in every row
    for row in accuracy.itertuples():
        assert len(row.correct) == len(images["clean"]) and row.correct.mean() == pytest.approx(row.accuracy)
    assert (isolated_artifacts / "tiny" / "models" / "cnn_confound100M_black_seed0.pt").is_file()
    assert (isolated_artifacts / "tiny" / "models" / "cnn_black_seed0.pt").is_file()  # strength 0: chapter 03's

    def refuse(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    from wrenlib import confound, images as image_module

    rendered = []
    real_render = image_module.render_level_cache

    def counting(waveforms, *args, **kwargs):
        rendered.append(len(waveforms))
        return real_render(waveforms, *args, **kwargs)

    monkeypatch.setattr(training, "train_model", refuse)
    monkeypatch.setattr(image_module, "render_level_cache", counting)
    again, repeated_images, repeated = confound_experiment("tiny", (0.0, 1.0), progress=False, device="cpu")
    assert repeated["accuracy"].tolist() == accuracy["accuracy"].tolist()
    # the confounded training images were kept by the first call: loaded, not rendered again
    every_clip = len(images[(1.0, "train")])
    assert every_clip not in rendered and len(rendered) == 5  # clean, then confounded and flipped per strength
    np.testing.assert_array_equal(np.asarray(repeated_images[(1.0, "train")].levels), images[(1.0, "train")].levels)
    assert list(repeated_images[(1.0, "train")].clips["confound"]) == list(images[(1.0, "train")].clips["confound"])
    assert confound.confound_model_name(confound.Confound(1.0), "black", 0) == "cnn_confound100M_black_seed0"
    # masks drawn by another rule: the clips' masks are made again, no training image and no CNN
    other_masks(monkeypatch)
    rendered.clear()
    _, remasked, _ = confound_experiment("tiny", (0.0, 1.0), progress=False, device="cpu")
    assert remasked[(1.0, "train")].surrogate.config.mask_floor_db == 20.0
    assert every_clip not in rendered and len(rendered) == 5



def test_the_clean_strength_is_not_trained_as_a_confound_model(isolated_artifacts):
    """Strength 0 is chapter 03's model; asking the confound trainer for it is a clear error,
    raised before any data is loaded (in a cache of its own: were the check gone, the training
    would not write into the checkout's)."""
    import pytest

    from wrenlib.confound import load_or_train_confounded

    with pytest.raises(ValueError, match="load_or_train_model"):
        load_or_train_confounded("quick", 0.0)


def test_the_confound_maps_are_every_models_maps_of_the_same_carriers_and_are_cached(isolated_artifacts, monkeypatch,
                                                                                     other_masks):
    """Chapter 11's explanations as a cached preparation: each strength's model explains the
    first carriers of the strongest strength's test clips, with SHAP's references from the clips
    it was trained on, as explain_methods does in the chapter; a second call loads them."""
    from wrenlib import explain as explain_module
    from wrenlib import profiles
    from wrenlib.confound import confound_experiment, confound_maps
    from wrenlib.explain import METHODS, explain_methods

    tiny = profiles.PROFILES["quick"].with_overrides(
        name="tiny", individuals_per_dialect=5, clips_per_individual=4, image_height_px=32, image_width_px=64,
        max_epochs=1, patience=1, lime_samples=16, shap_background=2, confound_strengths=(0.0, 1.0), confound_clips=3)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    carriers, chosen, maps = confound_maps("tiny", device="cpu")
    models, images, _ = confound_experiment("tiny", (0.0, 1.0), progress=False, device="cpu")
    assert len(chosen) == 3 and carriers.clips["confound"].to_numpy()[chosen].all()
    assert np.flatnonzero(carriers.clips["confound"].to_numpy())[:3].tolist() == chosen.tolist()
    np.testing.assert_array_equal(carriers.images(chosen), images[(1.0, "confounded")].images(chosen))
    assert sorted(maps) == [0.0, 1.0]
    for strength in (0.0, 1.0):
        expected = explain_methods(models[strength], carriers.images(chosen), "tiny", images[(strength, "train")],
                                   device="cpu")
        assert sorted(maps[strength]) == sorted(METHODS)
        for method in METHODS:
            np.testing.assert_allclose(maps[strength][method], expected[method], atol=1e-6,
                                       err_msg=f"{method} at strength {strength}")

    calls, real_explain = [], explain_module.explain

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real_explain(*args, **kwargs)

    monkeypatch.setattr(explain_module, "explain", counting)
    _, _, again = confound_maps("tiny", device="cpu")
    _, given_chosen, given = confound_maps("tiny", device="cpu", experiment=(models, images))  # the chapter's way
    assert calls == [] and given_chosen.tolist() == chosen.tolist()  # both loaded
    with monkeypatch.context() as remasking:  # masks drawn by another rule: the same maps, loaded
        other_masks(remasking)
        confound_maps("tiny", device="cpu")
    assert calls == []
    for strength in (0.0, 1.0):
        for method in METHODS:
            np.testing.assert_array_equal(again[strength][method], maps[strength][method])
            np.testing.assert_array_equal(given[strength][method], maps[strength][method])
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny.with_overrides(lime_samples=8))
    _, _, fewer = confound_maps("tiny", device="cpu")
    assert calls.count("lime") == 2  # other settings, other maps: both strengths again
    assert not np.array_equal(fewer[1.0]["lime"], maps[1.0]["lime"])
    folder = isolated_artifacts / "tiny" / "confound_maps"
    assert not list(folder.glob("*.parts"))  # each strength's piece goes once the whole is saved

    calls.clear()  # a build cut short while the second strength's model explains keeps the first's maps
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny.with_overrides(lime_samples=12))

    def stopped_at_the_second_strength(*args, **kwargs):
        calls.append(args[2])
        if calls.count("gradcam") == 2:
            raise KeyboardInterrupt  # a time limit
        return real_explain(*args, **kwargs)

    monkeypatch.setattr(explain_module, "explain", stopped_at_the_second_strength)
    with pytest.raises(KeyboardInterrupt):
        confound_maps("tiny", device="cpu")
    assert len(list(folder.glob("*.parts/*.npz"))) == 1
    calls.clear()
    monkeypatch.setattr(explain_module, "explain", counting)
    confound_maps("tiny", device="cpu")
    assert calls.count("lime") == 1  # the second strength only
    # fewer clips asked for: maps of those clips, not the cached maps of the three
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny.with_overrides(lime_samples=12, confound_clips=2))
    _, two, maps_of_two = confound_maps("tiny", device="cpu")
    assert two.tolist() == chosen[:2].tolist() and all(maps_of_two[s]["lime"].shape[0] == 2 for s in (0.0, 1.0))


def test_the_source_peaks_at_its_level_against_the_songs_peak(small_dataset):
    """``level_db_range`` is the source's peak against the song's peak: the song peaks at
    ``song_level_db`` (dBFS), so what the confound adds to a clip peaks at
    10 ** ((song_level_db + confound_level_db) / 20), a louder song bringing a louder source."""
    mixed = add_confound(small_dataset, Confound(1.0))
    carries = np.flatnonzero(mixed.clips["confound"].to_numpy())
    assert len(carries) >= 3
    levels = mixed.clips["confound_level_db"].to_numpy()
    assert np.isnan(levels[~mixed.clips["confound"].to_numpy()]).all()
    for index in carries:
        added = np.asarray(mixed.waveforms[index], np.float64) - np.asarray(small_dataset.waveforms[index], np.float64)
        song_level_db = mixed.clips["song_level_db"].iloc[index]
        assert -14.0 <= levels[index] <= -6.0
        assert np.abs(added).max() == pytest.approx(10 ** ((song_level_db + levels[index]) / 20), rel=1e-4)


def test_the_experiment_counts_predictions_of_the_favoured_dialect(monkeypatch):
    """The ``predicted <favoured>`` column is the share of test clips the model *predicts* as the
    dialect the source is tied to (chapter 11: how far the model follows the source), whichever
    dialect that is, not the share of clips that belong to it. The data, models and predictions
    are stand-ins: 8 clips, half of each dialect, of which the model predicts 5 Mexican."""
    from types import SimpleNamespace

    import pandas as pd

    from wrenlib import confound as confound_module
    from wrenlib import dataset, frontend, training
    from wrenlib.confound import confound_experiment

    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predicted = np.array([1, 1, 1, 0, 0, 0, 1, 1])

    class StandInImages:
        """What the experiment reads of a test set: its labels, its clips table and its length."""

        def __init__(self, *args, **kwargs):
            self.labels = labels
            self.clips = pd.DataFrame({"individual": np.arange(8) // 2, "confound": np.zeros(8, bool)})

        def __len__(self):
            return len(self.labels)

    monkeypatch.setattr(dataset, "load_surrogate_dataset", lambda profile, seed=0: SimpleNamespace(
        split_indices=lambda split: np.arange(8)))
    monkeypatch.setattr(frontend, "front_end_for_profile", lambda profile: None)
    monkeypatch.setattr(confound_module, "confounded_images", StandInImages)
    monkeypatch.setattr(confound_module, "model_at_strength", lambda profile, strength, *args: ("model", None))
    monkeypatch.setattr(training, "predict", lambda model, images, indices, device: np.eye(2)[predicted])
    for favoured, share in (("Mexican", 5 / 8), ("Eastern", 3 / 8)):
        _, _, table = confound_experiment("tiny", (1.0,), device="cpu", progress=False,
                                          confound=Confound(favoured=favoured))
        assert len(table) == 3
        np.testing.assert_allclose(table[f"predicted {favoured}"], share)
        np.testing.assert_allclose(table["accuracy"], np.mean(predicted == labels))
        # the interval is over the test birds (two clips each here), not over clips
        over_birds = training.accuracy_with_interval(predicted == labels, groups=np.arange(8) // 2)
        np.testing.assert_allclose(table[["ci_low", "ci_high"]].to_numpy(), [over_birds[1:]] * 3)
        assert not np.allclose(over_birds[1:], training.accuracy_with_interval(predicted == labels)[1:])


# ------------------------------------------------------------------------------------------
# Properties of confound.py a mutation review found unguarded
# ------------------------------------------------------------------------------------------


def test_a_confound_is_refused_outside_its_ranges_and_taken_at_their_edges():
    """A base rate above 1 and a source below the kept band are refused; a source whose band just
    fits the 1.5-9 kHz band at either end, and a fixed level (both ends of the range equal), are not."""
    for bad in (dict(base_rate=1.5), dict(centre_hz=1_000.0), dict(centre_hz=1_600.0), dict(centre_hz=8_900.0)):
        with pytest.raises(ValueError, match="invalid confound"):
            Confound(**bad)
    for edge in (1_650.0, 8_850.0):  # 300 Hz wide: 1.5-1.8 kHz, 8.7-9 kHz
        assert Confound(1.0, centre_hz=edge).centre_hz == edge
    assert Confound(1.0, base_rate=1.0).rates().tolist() == [0.0, 1.0]
    fixed = Confound(1.0, level_db_range=(-10.0, -10.0))
    assert confound_draw(fixed, 7, 1) == (True, -10.0)


def test_the_confounds_seed_draws_which_clips_carry_it():
    """Another ``seed`` draws another set of carriers (at the same rate); the same seed the same set."""
    def carriers(seed):
        return np.array([confound_draw(Confound(0.5, seed=seed), clip, 1)[0] for clip in range(200)])

    np.testing.assert_array_equal(carriers(0), carriers(0))
    assert not np.array_equal(carriers(0), carriers(1))
    assert abs(carriers(1).mean() - 0.5) < 0.1


def test_the_source_pulses_at_its_rate_and_fades_in_and_out():
    """The chorus's loudness swings ``pulse_rate_hz`` times a second (the strongest line of its
    power's spectrum below 300 Hz), and each clip's source starts and ends in silence (20 ms fades)."""
    from wrenlib.confound import confound_waveform

    rate = 22_050
    for pulse_rate_hz in (45.0, 30.0):
        for clip in range(3):
            source = confound_waveform(Confound(pulse_rate_hz=pulse_rate_hz), clip, 4 * rate, rate).astype(np.float64)
            assert np.abs(source).max() == pytest.approx(1.0, rel=1e-5)
            power = np.abs(np.fft.rfft(source ** 2))
            frequencies = np.fft.rfftfreq(len(source), 1 / rate)
            band = (frequencies > 5) & (frequencies < 300)
            assert frequencies[band][power[band].argmax()] == pytest.approx(pulse_rate_hz, abs=0.5)
            assert np.abs(source[:20]).max() < 0.01 and np.abs(source[-20:]).max() < 0.01


def test_a_subset_keeps_its_clips_song_masks_and_backgrounds_and_lists_the_sources_band(small_dataset):
    """A confounded subset's song masks and background table belong to its own clips, renumbered;
    the source's row gives its band and the whole clip; the copy records its confound."""
    confound = Confound(1.0)
    chosen = np.array([5, 2, 17, 30])
    part = add_confound(small_dataset, confound, clips=chosen)
    assert part.confound == confound and add_confound(small_dataset, None).confound is None
    for position, index in enumerate(chosen):
        np.testing.assert_array_equal(part.song_mask(position), small_dataset.song_mask(index))
        own = part.background[(part.background["clip"] == position) & (part.background["source"] != SOURCE_NAME)]
        theirs = small_dataset.background[small_dataset.background["clip"] == index]
        assert own["source"].tolist() == theirs["source"].tolist()
        np.testing.assert_array_equal(own["low_hz"], theirs["low_hz"])
    listed = part.background[part.background["source"] == SOURCE_NAME]
    assert sorted(listed["clip"]) == np.flatnonzero(part.clips["confound"]).tolist() and len(listed)
    assert (listed["low_hz"] == confound.centre_hz - confound.width_hz / 2).all()
    assert (listed["high_hz"] == confound.centre_hz + confound.width_hz / 2).all()
    assert (listed["start_s"] == 0).all() and (listed["end_s"] == small_dataset.config.clip_seconds).all()


def test_cached_confounded_images_are_keyed_by_the_confound_and_the_clips(small_dataset, tmp_path):
    """One cache folder asked for another confound, or for other clips, renders them: it does not
    hand back the images of the first; a mixed set's backgrounds follow the seed."""
    from wrenlib.frontend import assign_backgrounds

    front = PAPER_FRONT_END.with_image_size(30, 60)
    folder = tmp_path / "images"
    for confound, clips in ((Confound(1.0).flipped(), [0, 1, 2, 3]), (Confound(1.0), [4, 5, 6, 7])):
        first = confounded_images(small_dataset, Confound(1.0), front, clips=[0, 1, 2, 3], cache=folder)  # kept
        cached = confounded_images(small_dataset, confound, front, clips=clips, cache=folder)
        fresh = confounded_images(small_dataset, confound, front, clips=clips)
        np.testing.assert_array_equal(np.asarray(cached.levels), fresh.levels)
        assert not np.array_equal(np.asarray(cached.levels), np.asarray(first.levels))
    mixed = confounded_images(small_dataset, Confound(1.0), front, clips=range(12), background="mixed", seed=4)
    np.testing.assert_array_equal(mixed.backgrounds, assign_backgrounds(12, "mixed", 4))
    assert not np.array_equal(mixed.backgrounds, assign_backgrounds(12, "mixed", 0))


def test_each_confound_gets_its_own_checkpoint(isolated_artifacts, monkeypatch):
    """The checkpoint's name tells apart the favoured dialect and the base rate (a base rate of 0
    keeping the plain name), and its configuration the rest of the source: two confounds that
    share a name are never taken for each other."""
    from types import SimpleNamespace

    from wrenlib import confound as confound_module
    from wrenlib import training
    from wrenlib.confound import confound_model_name, load_or_train_confounded

    names = {confound_model_name(c, "black", 0) for c in (
        Confound(0.5), Confound(0.5).flipped(), Confound(0.5, base_rate=0.25), Confound(0.5, base_rate=0.5))}
    assert len(names) == 4 and "cnn_confound050M_black_seed0" in names
    asked = []
    monkeypatch.setattr(confound_module, "confounded_images", lambda *args, **kwargs: None)
    monkeypatch.setattr(training, "load_or_train_on", lambda images, profile, name, config, *args: (
        asked.append((name, config)), ("model", None))[1])
    surrogate = SimpleNamespace(config=SimpleNamespace(image_key=lambda: "clips"))
    for source in (Confound(), Confound(level_db_range=(-20.0, -10.0)), Confound(centre_hz=5_000.0)):
        load_or_train_confounded("quick", 1.0, device="cpu", confound=source, surrogate=surrogate)
    assert len({name for name, _ in asked}) == 1  # the name is the same ...
    assert len({training.config_hash(config) for _, config in asked}) == 3  # ... the key is not


def test_strength_0_with_a_base_rate_is_a_confounded_model_not_chapter_03s(monkeypatch):
    """Only a confound that no clip carries is the clean data: strength 0 with a base rate above 0
    (the source at both sites alike) is trained on its own confounded clips."""
    from wrenlib import confound as confound_module
    from wrenlib import training

    monkeypatch.setattr(training, "load_or_train_model", lambda *args, **kwargs: ("clean", None, "clean images"))
    monkeypatch.setattr(confound_module, "load_or_train_confounded", lambda *args, **kwargs: ("confounded", "its images"))
    assert confound_module.model_at_strength("quick", 0.0) == ("clean", "clean images")
    assert confound_module.model_at_strength("quick", 0.0, confound=Confound(base_rate=0.3)) == ("confounded", "its images")
    assert confound_module.model_at_strength("quick", 0.5) == ("confounded", "its images")


def test_a_subset_names_each_clip_once(small_dataset):
    """A repeated clip would share one set of element and background rows between its copies
    (the renumbering maps the clip to one copy): refused by name."""
    with pytest.raises(ValueError, match=r"clips must name each clip once; repeated: \[2\]"):
        add_confound(small_dataset, Confound(1.0), clips=[2, 5, 2])
    subset = add_confound(small_dataset, Confound(1.0), clips=[5, 2])
    assert subset.clips["source_clip"].tolist() == [5, 2] and sorted(set(subset.elements["clip"])) == [0, 1]
