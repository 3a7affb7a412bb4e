"""The confound switch: a background source that comes with one dialect more often (chapter 11).

Real regional recordings confound dialect with site: another insect, another bird, another
microphone. A classifier can then score well by listening to the background. The surrogate
stages this on purpose with one source, a pulsed insect chorus in a fixed narrow band (one
"site species"), added to a share of each dialect's clips:

* ``strength`` s in [0, 1]: the source is in a share s of the *favoured* dialect's clips more
  than of the other's. With the default ``base_rate`` b = 0 it is in s of the favoured dialect's
  clips and in none of the other's, so strength 0 is the book's clean data, exactly; with b > 0
  the other dialect's clips carry it at (1 - s) b and the favoured one's at (1 - s) b + s (the
  field case: cicadas at both sites, more at one).
* :meth:`Confound.flipped` ties it to the other dialect, at the same strength;
  ``confound=None`` (or strength 0 with b = 0) is the book's clean data, the default everywhere else.

The source is *added* to the clean clip with its own random stream per clip (presence, level,
pulse phase and noise), so the same clip with and without it differs by the source alone, and a
clip that carries it at strength s carries it at every larger strength. Its time-frequency mask
is recorded like the song masks: the STFT cells within ``mask_floor_db`` of the source's peak
that reach the image's floor (``mask_visible_db``; ``wrenlib.surrogate.mask_threshold``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .surrogate import DIALECTS, _band_noise, _raised_cosine_envelope, mask_threshold

SOURCE_NAME = "confound: insect chorus"


@dataclass(frozen=True)
class Confound:
    """One confound: how strongly a background source is tied to which dialect, and the source."""

    strength: float = 0.0
    favoured: str = "Mexican"
    base_rate: float = 0.0  # share of the other dialect's clips that carry it at strength 0
    centre_hz: float = 6_500.0  # inside the band-pass (1.5-9 kHz) and above every song element's peak
    width_hz: float = 300.0
    pulse_rate_hz: float = 45.0
    level_db_range: tuple[float, float] = (-14.0, -6.0)  # source peak against the song's peak
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.strength <= 1.0:
            problems.append(f"strength must lie in [0, 1], got {self.strength!r}")
        if not 0.0 <= self.base_rate <= 1.0:
            problems.append(f"base_rate must lie in [0, 1], got {self.base_rate!r}")
        if self.favoured not in DIALECTS:
            problems.append(f"favoured must be one of {', '.join(DIALECTS)}, got {self.favoured!r}")
        if not 1_500 + self.width_hz / 2 <= self.centre_hz <= 9_000 - self.width_hz / 2:
            problems.append(f"the source ({self.centre_hz:g} Hz +- {self.width_hz / 2:g}) must lie inside "
                            f"the 1.5-9 kHz band that the front end keeps")
        if self.level_db_range[0] > self.level_db_range[1]:
            problems.append(f"level_db_range {self.level_db_range} is empty")
        if problems:
            raise ValueError("invalid confound: " + "; ".join(problems))

    def rates(self) -> np.ndarray:
        """Probability that a clip carries the source, by label (0 Eastern, 1 Mexican)."""
        favoured = DIALECTS.index(self.favoured)
        rates = np.full(len(DIALECTS), (1 - self.strength) * self.base_rate)
        rates[favoured] += self.strength
        return rates

    @property
    def is_clean(self) -> bool:
        """True when no clip can carry the source (strength 0 and base rate 0)."""
        return not np.any(self.rates() > 0)

    def flipped(self) -> "Confound":
        """The same source and strength, tied to the other dialect."""
        return replace(self, favoured=next(d for d in DIALECTS if d != self.favoured))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clip_stream(confound: Confound, clip_id: int) -> np.random.Generator:
    return np.random.default_rng([confound.seed, int(clip_id), 0xC0F])


def confound_draw(confound: Confound, clip_id: int, label: int) -> tuple[bool, float]:
    """Whether clip ``clip_id`` (of dialect ``label``) carries the source, and its level in dB
    against the song's peak. The uniform number that decides presence does not depend on the
    strength, so presence only grows with it."""
    rng = _clip_stream(confound, clip_id)
    draw, level_db = rng.random(), rng.uniform(*confound.level_db_range)
    return bool(draw < confound.rates()[int(label)]), float(level_db)


def confound_waveform(confound: Confound, clip_id: int, n_samples: int, sample_rate_hz: int) -> np.ndarray:
    """The source of one clip at unit peak: band noise at ``centre_hz``, pulsed at ``pulse_rate_hz``."""
    rng = _clip_stream(confound, clip_id)
    rng.random(2)  # the presence and level draws of confound_draw come first in the same stream
    t = np.arange(n_samples) / sample_rate_hz
    phase = rng.uniform(0, 2 * np.pi)
    chorus = _band_noise(n_samples, np.full(n_samples, confound.centre_hz), confound.width_hz, sample_rate_hz, rng)
    # smooth pulses (a raised sine, not an on/off gate, whose clicks would splatter across the band)
    chorus *= (0.5 + 0.5 * np.sin(2 * np.pi * confound.pulse_rate_hz * t + phase)) ** 2
    ramp = int(0.02 * sample_rate_hz)  # 20 ms fades: no click at the clip's edges
    chorus *= _raised_cosine_envelope(n_samples, ramp, ramp)
    return (chorus / (np.max(np.abs(chorus)) + 1e-12)).astype(np.float32)


def add_confound(dataset, confound: Confound | None, clips=None):
    """The surrogate dataset with the confound's source added (``None``: the clean data, as is).

    Returns a new :class:`~wrenlib.dataset.SurrogateDataset` whose clips table gains the columns
    ``confound`` (whether the clip carries the source) and ``confound_level_db``, whose background
    table lists the source, and whose :meth:`~wrenlib.dataset.SurrogateDataset.confound_mask`
    gives its cells. ``clips`` (indices, each once) keeps only those clips, e.g. a test set: they are
    numbered 0..n-1 in the copy, with the original number in the column ``source_clip`` (the
    draws follow the original number, so a clip is confounded alike in every copy).
    """
    import pandas as pd

    from .spectrogram import PAPER_STFT, stft_magnitude

    chosen = np.arange(len(dataset)) if clips is None else np.asarray(clips, dtype=np.int64).ravel()
    repeated = np.unique(chosen)[np.unique(chosen, return_counts=True)[1] > 1]
    if len(repeated):  # each copy would need its own elements and background rows, renumbered apart
        raise ValueError(f"clips must name each clip once; repeated: {repeated[:8].tolist()}")
    table = dataset.clips.iloc[chosen].reset_index(drop=True)
    source_ids = table["source_clip"].to_numpy() if "source_clip" in table else table["clip"].to_numpy()
    renumber = dict(zip(table["clip"].tolist(), range(len(table))))
    waveforms = np.array(dataset.waveforms[chosen], dtype=np.float32)  # a copy: the cache stays clean
    elements = dataset.elements[dataset.elements["clip"].isin(renumber)].assign(
        clip=lambda t: t["clip"].map(renumber)).reset_index(drop=True)
    background = dataset.background[dataset.background["clip"].isin(renumber)].assign(
        clip=lambda t: t["clip"].map(renumber)).reset_index(drop=True)
    table = table.assign(clip=np.arange(len(table)), source_clip=source_ids)
    config = dataset.config
    present, levels, cells, rows = [], [], [], []
    for position, (source_id, label, song_level_db) in enumerate(
            zip(source_ids, table["label"], table["song_level_db"])):
        carries, level_db = confound_draw(confound, source_id, label) if confound is not None else (False, 0.0)
        present.append(carries)
        levels.append(level_db if carries else np.nan)
        if not carries:
            cells.append(np.zeros(0, np.int32))
            continue
        source = confound_waveform(confound, source_id, config.clip_samples, config.sample_rate_hz)
        source *= 10 ** ((song_level_db + level_db) / 20)
        waveforms[position] += source
        magnitude = stft_magnitude(source, PAPER_STFT)
        threshold = mask_threshold(float(magnitude.max()), config.mask_floor_db, config.mask_visible_db)
        cells.append(np.flatnonzero(magnitude >= threshold).astype(np.int32))
        rows.append({"clip": position, "source": SOURCE_NAME, "start_s": 0.0, "end_s": config.clip_seconds,
                     "low_hz": confound.centre_hz - confound.width_hz / 2,
                     "high_hz": confound.centre_hz + confound.width_hz / 2,
                     "detail": f"{confound.pulse_rate_hz:g} pulses/s, {level_db:.1f} dB"})
    if rows:
        background = pd.concat([background, pd.DataFrame(rows)], ignore_index=True)
    return replace(dataset, waveforms=waveforms, clips=table.assign(confound=present, confound_level_db=levels),
                   elements=elements, background=background,
                   diagnostic_cells=[dataset.diagnostic_cells[i] for i in chosen],
                   song_cells=[dataset.song_cells[i] for i in chosen], confound_cells=cells, confound=confound)


def confounded_images(surrogate, confound: Confound | None, front_end, clips=None, background: str = "black",
                      seed: int = 0, device=None, progress: bool = False, cache=None):
    """:func:`add_confound`, rendered straight to a :class:`~wrenlib.images.SpectrogramDataset`
    (its masks include ``confound``); the confounded waveforms are dropped once rendered, so
    several strengths fit in memory side by side (chapter 11). With a ``cache`` folder the
    rendered images are kept there and loaded on the next call (:func:`~wrenlib.cache.load_or_build`)."""
    from .frontend import assign_backgrounds
    from .images import SpectrogramDataset, load_or_render_levels, render_level_cache

    mixed = add_confound(surrogate, confound, clips)
    if cache is None:
        levels = render_level_cache(mixed.waveforms, front_end, device, progress=progress)
    else:
        described = {"front_end": front_end.to_dict(), "surrogate": surrogate.config.image_key(),
                     "confound": None if confound is None else confound.to_dict(),
                     "clips": None if clips is None else [int(i) for i in clips]}
        levels = load_or_render_levels(cache, described, mixed.waveforms, front_end, device, progress)
    kept = replace(mixed, waveforms=np.zeros((len(mixed), 0), np.float32))
    return SpectrogramDataset(levels, kept.clips, assign_backgrounds(len(levels), background, seed), front_end, kept)


def confound_model_name(confound: Confound, background: str, seed: int) -> str:
    """The checkpoint name of the CNN trained on ``confound``'s data (artifacts/<profile>/models)."""
    base = f"_base{round(confound.base_rate * 100):03d}" if confound.base_rate else ""
    return f"cnn_confound{round(confound.strength * 100):03d}{confound.favoured[0]}{base}_{background}_seed{seed}"


def load_or_train_confounded(profile: str, strength: float, seed: int = 0, background: str = "black",
                             device=None, progress: bool = True, confound: Confound = Confound(),
                             surrogate=None):
    """The paper CNN trained on the profile's clips (every clip rendered) with ``confound`` at
    ``strength`` (above 0): from the model cache, or trained now (chapter 11; ``wrenlib execute``
    trains it beside the chapters before chapter 11 asks for it). Returns ``(model, images)``, the
    images being every clip as trained on. ``surrogate`` saves loading the profile's clips again."""
    from .cache import profile_dir
    from .dataset import load_surrogate_dataset
    from .frontend import front_end_for_profile
    from .model import ModelConfig
    from .runtime import choose_device
    from .training import load_or_train_on, training_config_for_profile

    tied = replace(confound, strength=float(strength))
    if tied.is_clean:
        raise ValueError("a confound strength of 0 is the clean data: chapter 03's model "
                         "(wrenlib.training.load_or_train_model)")
    device = device or choose_device()
    surrogate = surrogate if surrogate is not None else load_surrogate_dataset(profile, seed=seed)
    front_end = front_end_for_profile(profile)
    training_config = training_config_for_profile(profile, seed)
    # rendered once: the preparation that trains the model keeps the images for chapter 11's SHAP references
    folder = profile_dir(profile) / (f"images_{front_end.image_height_px}x{front_end.image_width_px}_"
                                     + confound_model_name(tied, background, seed).removeprefix("cnn_"))
    train = confounded_images(surrogate, tied, front_end, None, background, seed, device, progress, cache=folder)
    config = {"model": ModelConfig(*front_end.image_size).to_dict(), "training": training_config.to_dict(),
              "data": {"surrogate": surrogate.config.image_key(), "front_end": front_end.to_dict(),
                       "background": background, "seed": seed, "confound": tied.to_dict()}}
    model, _ = load_or_train_on(train, profile, confound_model_name(tied, background, seed), config,
                                training_config, device, progress)
    return model, train


def model_at_strength(profile: str, strength: float, seed: int = 0, background: str = "black", device=None,
                      progress: bool = True, confound: Confound = Confound(), surrogate=None):
    """``(model, images)`` of one strength of chapter 11's experiment: at strength 0 (the clean
    data) chapter 03's CNN on ``background`` and its images, above it
    :func:`load_or_train_confounded`'s; both from the cache, or trained now."""
    from .training import load_or_train_model

    if replace(confound, strength=float(strength)).is_clean:
        model, _, images = load_or_train_model(profile, background, seed, device, progress)
        return model, images
    return load_or_train_confounded(profile, strength, seed, background, device, progress, confound, surrogate)


def confound_carriers(images, n: int) -> np.ndarray:
    """The first ``n`` clips of ``images`` that carry the source: the clips chapter 11 explains."""
    return np.flatnonzero(images.clips["confound"].to_numpy())[:n]


def confound_maps(profile: str, seed: int = 0, background: str = "black", device=None, progress: bool = False,
                  confound: Confound = Confound(), strengths=None,
                  experiment: tuple[dict, dict] | None = None) -> tuple[Any, np.ndarray, dict[float, dict[str, np.ndarray]]]:
    """Chapter 11's explanations: every strength's model explains the same clips, the first
    ``confound_clips`` test clips that carry the source at the strongest strength, with the
    four methods (:func:`wrenlib.explain.explain_methods`: the profile's settings, SHAP's
    references from the clips that model was trained on, each model's predicted class).

    Returns ``(carriers, chosen, raw maps by strength)``: the strongest strength's confounded test
    images, the positions of the explained clips among them, and each strength's raw maps
    (N, H, W) by method. The maps are cached (keyed by the models, the confound, the clips, the
    settings and the device type), so that ``wrenlib execute`` makes them as a preparation of
    their own, once the CNNs are trained, instead of chapter 11 making them after chapter 08.
    ``strengths`` default to the profile's. ``experiment``, the models and images that
    :func:`confound_experiment` returned for these strengths, saves loading and rendering them again."""
    import torch

    from .cache import config_hash, kept_maps, load_map_groups, load_or_build, parts_folder, profile_dir, save_map_groups
    from .dataset import load_surrogate_dataset
    from .explain import METHODS, explain_methods, explainer_version, model_fingerprint, settings_for_profile
    from .frontend import front_end_for_profile
    from .profiles import get_profile
    from .runtime import choose_device

    sizes = get_profile(profile)
    strengths = [float(s) for s in (sizes.confound_strengths if strengths is None else strengths)]
    device = device or choose_device()
    surrogate = load_surrogate_dataset(profile, seed=seed)
    front_end = front_end_for_profile(profile)
    strongest = replace(confound, strength=max(strengths))
    if experiment is not None:
        models, images = experiment
        carriers = images[(max(strengths), "confounded")]
        trained = {s: (models[s], images[(s, "train")]) for s in strengths}
    else:
        carriers = confounded_images(surrogate, strongest, front_end, surrogate.split_indices("test"), background,
                                     seed, device)
        trained = {s: model_at_strength(profile, s, seed, background, device, progress, confound, surrogate)
                   for s in strengths}
    chosen = confound_carriers(carriers, sizes.confound_clips)
    config = {"models": {str(s): model_fingerprint(model) for s, (model, _) in trained.items()},
              "surrogate": surrogate.config.image_key(), "front_end": front_end.to_dict(), "background": background,
              "seed": seed, "confound": strongest.to_dict(), "clips": chosen.tolist(), "device": torch.device(device).type,
              "settings": {m: asdict(settings_for_profile(m, profile, seed)) for m in METHODS},
              "version": explainer_version()}

    def build():
        pictures = carriers.images(chosen)
        # each strength's maps are kept as soon as they are made (a run cut short goes on from there)
        return {s: kept_maps(parts, repr(s), lambda model=model, images=images: explain_methods(
                    model, pictures, profile, images, device=device, seed=seed))
                for s, (model, images) in trained.items()}

    def save(maps, folder):
        save_map_groups(folder, {repr(s): raw for s, raw in maps.items()}, list(maps))

    def load(folder):
        groups, kept = load_map_groups(folder)
        return {s: groups[repr(s)] for s in kept}

    folder = profile_dir(profile) / "confound_maps" / f"{background}-seed{seed}-{config_hash(config)}"
    parts = parts_folder(folder)
    return carriers, chosen, load_or_build(folder, config, build, save, load)


def confound_experiment(profile: str, strengths, seed: int = 0, background: str = "black",
                        device=None, progress: bool = True, confound: Confound = Confound()):
    """Chapter 11's experiment: one paper CNN per confound strength, trained on the profile's
    clips with ``confound`` at that strength, each tested three ways on the same test clips:
    with the confound as trained (``confounded``), without the source (``clean``) and with the
    source tied to the other dialect (``flipped``).

    Returns ``(models, images, accuracy)``: the models by strength (cached, see
    :func:`~wrenlib.training.load_or_train_on`), the images by ``(strength, set)`` — ``train``
    (every clip, as trained on: SHAP draws its references there), ``confounded`` and ``flipped``
    (the test clips), and ``"clean"`` for the clean test clips — and one accuracy row per
    strength and test set, with a 95 % interval over the test birds (a bird's clips share its
    voice: :func:`~wrenlib.training.accuracy_with_interval` with groups) and, in ``correct``,
    which test clips it got right, the same clips in every row: two rows compare clip by clip
    (:func:`~wrenlib.training.accuracy_difference_with_interval`).
    """
    import pandas as pd

    from .dataset import load_surrogate_dataset
    from .frontend import front_end_for_profile
    from .runtime import choose_device
    from .training import accuracy_with_interval, predict

    device = device or choose_device()
    surrogate = load_surrogate_dataset(profile, seed=seed)
    front_end = front_end_for_profile(profile)
    test = surrogate.split_indices("test")
    test_sets = {"clean": confounded_images(surrogate, None, front_end, test, background, seed, device)}
    models, rows = {}, []
    for strength in strengths:
        tied = replace(confound, strength=float(strength))
        models[strength], test_sets[(strength, "train")] = model_at_strength(profile, strength, seed, background,
                                                                             device, progress, confound, surrogate)
        test_sets[(strength, "confounded")] = confounded_images(surrogate, tied, front_end, test, background, seed, device)
        test_sets[(strength, "flipped")] = confounded_images(surrogate, tied.flipped(), front_end, test, background,
                                                             seed, device)
        for name in ("confounded", "clean", "flipped"):
            images = test_sets[(strength, name)] if name != "clean" else test_sets["clean"]
            everything = np.arange(len(images))
            predicted = predict(models[strength], images, everything, device).argmax(1)
            correct = predicted == images.labels
            accuracy, low, high = accuracy_with_interval(correct, groups=images.clips["individual"].to_numpy(),
                                                         seed=seed)
            favoured = DIALECTS.index(tied.favoured)
            rows.append({"strength": float(strength), "test set": name, "accuracy": accuracy, "ci_low": low,
                         "ci_high": high, "clips": len(images),
                         "with source": float(images.clips["confound"].mean()),
                         f"predicted {tied.favoured}": float(np.mean(predicted == favoured)), "correct": correct})
    return models, test_sets, pd.DataFrame(rows)
