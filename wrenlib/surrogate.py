"""The surrogate wren dialects: songs synthesised from known parts (chapter 01).

A song is a sequence of elements (introductory peeps, breathy notes, clicks, a whistle, a buzz, a
trill and a terminal note) in the 1.5-9 kHz band. Only two elements are *diagnostic*: the trill
(note rate and note bandwidth) and the buzz (frequency-modulation depth, seen as the width of its
band). Their parameters come from dialect-specific, overlapping distributions; every other element,
and the placement of all elements, comes from one distribution shared by both dialects.

Sub-populations are song types. Song type ``k`` of both dialects uses the same shared-element
template (so the shared elements carry no class information), and its own diagnostic values drawn
from its dialect's distribution (so the types of one dialect form clusters). Individuals sing a few
types with their own pitch and tempo offsets.

Everything is drawn in two stages: :func:`plan_song` draws the parameters (cheap, no audio) and
:func:`render_clip` turns a plan into a waveform and its ground-truth masks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from .audio import BAND_HZ, SAMPLE_RATE_HZ, bandpass, power
from .spectrogram import PAPER_STFT, StftSettings, stft_magnitude

#: The two dialects, in label order (0, 1).
DIALECTS: tuple[str, str] = ("Eastern", "Mexican")
SPLITS: tuple[str, str, str] = ("train", "validation", "test")

# Highest frequency any synthesised component may reach: keeps harmonics and sweeps (with their
# spectral spread) inside the paper's 9 kHz band edge.
MAX_ELEMENT_HZ = 8_600.0
MIN_ELEMENT_HZ = 1_900.0


@dataclass(frozen=True)
class DiagnosticFeature:
    """One dialect-diagnostic song feature and its distribution.

    The dialect means sit ``separation`` total standard deviations apart around ``centre``; the
    total variance is split between song types, individuals and renditions.
    """

    name: str
    unit: str
    centre: float
    total_sd: float
    low: float
    high: float
    eastern_direction: int  # +1: Eastern value above the centre, -1: below

    def dialect_mean(self, dialect: int, separation: float) -> float:
        """Mean of the feature in dialect 0 (Eastern) or 1 (Mexican)."""
        sign = self.eastern_direction if dialect == 0 else -self.eastern_direction
        return self.centre + sign * separation * self.total_sd / 2


#: The three song features that tell the dialects apart, with their centre, spread and limits (chapter 01).
DIAGNOSTIC_FEATURES: tuple[DiagnosticFeature, ...] = (
    DiagnosticFeature("trill_rate_per_s", "notes/s", 11.75, 1.6, 7.0, 17.0, -1),
    DiagnosticFeature("trill_bandwidth_hz", "Hz", 3_200.0, 500.0, 1_800.0, 4_600.0, +1),
    DiagnosticFeature("buzz_depth_hz", "Hz", 675.0, 200.0, 150.0, 1_300.0, +1),
)

#: Song features drawn alike in both dialects (chapter 01).
SHARED_FEATURES: tuple[str, ...] = (
    "trill_top_hz",
    "trill_duration_s",
    "buzz_carrier_hz",
    "buzz_rate_hz",
    "buzz_duration_s",
    "n_intro_notes",
    "song_duration_s",
    "song_onset_s",
)


#: SurrogateConfig fields that decide which STFT cells a clip's masks hold and never a sample of
#: its waveform (the tests check): the caches of images, CNNs and maps leave them out of their keys
MASK_ONLY_FIELDS = ("mask_floor_db", "mask_visible_db")


@dataclass(frozen=True)
class SurrogateConfig:
    """Everything that determines a surrogate dataset; equal configs give identical datasets."""

    seed: int = 0
    individuals_per_dialect: int = 40
    clips_per_individual: int = 6
    n_clips: int | None = None  # None: every clip of every individual
    song_types_per_dialect: int = 4
    types_per_individual: int = 2
    separation: float = 1.6  # distance of the dialect means, in total standard deviations
    type_variance_share: float = 0.5
    individual_variance_share: float = 0.3  # the rest of the variance is rendition jitter
    snr_db_range: tuple[float, float] = (5.0, 30.0)
    song_level_db_range: tuple[float, float] = (-12.0, -3.0)
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    mask_floor_db: float = 30.0  # mask = element energy within this many dB of the song's peak,
    # ... and at or above the image's floor (the paper's -40 dB, wrenlib.frontend.PAPER_FRONT_END):
    # a cell the image draws at the floor shows none of the element, so it holds no evidence to find
    mask_visible_db: float = -40.0
    sample_rate_hz: int = SAMPLE_RATE_HZ
    clip_seconds: float = 4.0

    def __post_init__(self) -> None:
        problems = []
        if self.individuals_per_dialect < 1:
            problems.append("individuals_per_dialect must be at least 1")
        if self.clips_per_individual < 1:
            problems.append("clips_per_individual must be at least 1")
        if self.n_clips is not None and self.n_clips < 1:
            problems.append(f"n_clips must be at least 1, got {self.n_clips}")
        if self.song_types_per_dialect < 1:
            problems.append("song_types_per_dialect must be at least 1")
        if not 1 <= self.types_per_individual <= self.song_types_per_dialect:
            problems.append("types_per_individual must be between 1 and song_types_per_dialect")
        if not self.mask_floor_db > 0 or not np.isfinite(self.mask_floor_db):
            problems.append(f"mask_floor_db must be a finite number of dB > 0, got {self.mask_floor_db!r}")
        if np.isnan(self.mask_visible_db) or self.mask_visible_db == np.inf:
            problems.append(f"mask_visible_db must be a level in dB (-inf: no floor), got {self.mask_visible_db!r}: "
                            "no cell would reach it")
        if not np.isfinite(self.separation) or self.separation < 0:
            problems.append(f"separation must be a finite number >= 0, got {self.separation!r}")
        if self.sample_rate_hz != 22_050:
            problems.append(f"sample_rate_hz must be 22050, got {self.sample_rate_hz!r}: the masks and the "
                            "front end use the paper's STFT at that rate (resample recordings instead)")
        if self.clip_seconds < 4.0:
            problems.append(f"clip_seconds must be at least 4, got {self.clip_seconds!r} (a song lasts up to "
                            "3.3 s and starts at least 0.15 s in and ends 0.25 s before the clip's end)")
        low, high = self.snr_db_range
        if not (np.isfinite(low) and np.isfinite(high)):
            problems.append(f"snr_db_range {self.snr_db_range} must be finite")
        elif low > high:
            problems.append(f"snr_db_range {self.snr_db_range} is empty")
        if abs(sum(self.split_fractions) - 1) > 1e-9 or min(self.split_fractions) < 0:
            problems.append("split_fractions must be non-negative and sum to 1")
        if problems:
            raise ValueError("invalid surrogate configuration: " + "; ".join(problems))

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate_hz))

    @property
    def total_clips(self) -> int:
        full = 2 * self.individuals_per_dialect * self.clips_per_individual
        return full if self.n_clips is None else min(self.n_clips, full)

    @classmethod
    def for_clip_count(cls, n_clips: int, **changes: Any) -> "SurrogateConfig":
        """A configuration with exactly ``n_clips`` clips, balanced between the dialects."""
        if n_clips < 1:
            raise ValueError(f"the number of clips must be at least 1, got {n_clips}")
        per_individual = changes.pop("clips_per_individual", cls.clips_per_individual)
        individuals = max(1, -(-n_clips // (2 * per_individual)))
        return cls(
            individuals_per_dialect=individuals,
            clips_per_individual=per_individual,
            n_clips=n_clips,
            **changes,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def image_key(self) -> dict[str, Any]:
        """:meth:`to_dict` without :data:`MASK_ONLY_FIELDS`: what keys the caches of images, CNNs
        and maps, so that redefining the masks rebuilds the clips' masks and nothing trained on them."""
        return {name: value for name, value in self.to_dict().items() if name not in MASK_ONLY_FIELDS}


# --------------------------------------------------------------------------------------------
# Stage 1: the population (song types, individuals) and song plans -- parameters only.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedTemplate:
    """The shared (non-diagnostic) part of a song type, identical for type k of both dialects."""

    n_peeps: int
    peep_shape: str  # "hook" (fast rise to a plateau) or "downslur"
    peep_plateau_hz: float
    peep_second_voice: bool
    n_breathy: int
    breathy_centre_hz: float
    n_clicks: int
    has_whistle: bool
    whistle_start_hz: float
    whistle_end_hz: float
    buzz_after_trill: bool
    has_terminal: bool
    terminal_centre_hz: float
    terminal_shape: str  # "chevron" or "upslur"
    trill_top_hz: float
    trill_duration_s: float
    trill_duty: float
    buzz_carrier_hz: float
    buzz_rate_hz: float
    buzz_duration_s: float


@dataclass(frozen=True)
class SongType:
    """A sub-population: one dialect's song type."""

    dialect: int
    index: int  # 0 .. song_types_per_dialect - 1; same index = same shared template
    template: SharedTemplate
    diagnostic_means: dict[str, float]

    @property
    def name(self) -> str:
        return f"{DIALECTS[self.dialect][0]}{self.index + 1}"


@dataclass(frozen=True)
class Individual:
    """One singing male with his song types and his own small offsets."""

    id: int
    dialect: int
    song_types: tuple[int, ...]
    pitch_factor: float
    tempo_factor: float
    diagnostic_offsets: dict[str, float]
    split: str


@dataclass(frozen=True)
class Population:
    """All song types and individuals of a surrogate dataset."""

    config: SurrogateConfig
    song_types: tuple[SongType, ...]  # indexed by dialect * K + type index
    individuals: tuple[Individual, ...]

    def song_type(self, dialect: int, index: int) -> SongType:
        return self.song_types[dialect * self.config.song_types_per_dialect + index]

    def clip_assignment(self, clip_id: int) -> tuple[int, int]:
        """(individual id, rendition number) of a clip. Clips are interleaved over the birds
        (clip i is bird i mod n), so a truncated set stays balanced between the dialects."""
        if not 0 <= clip_id < self.config.total_clips:
            raise IndexError(f"clip {clip_id} is outside 0..{self.config.total_clips - 1}")
        n_individuals = len(self.individuals)
        return clip_id % n_individuals, clip_id // n_individuals


@dataclass
class ElementPlan:
    """One element of a song: what it is, when it plays and its synthesis parameters."""

    kind: str
    diagnostic: bool
    start_s: float
    duration_s: float
    low_hz: float
    high_hz: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass
class SongPlan:
    """All parameters of one clip's song and background, before any audio exists."""

    clip_id: int
    individual: int
    dialect: int
    song_type: int
    split: str
    elements: list[ElementPlan]
    features: dict[str, float]
    snr_db: float
    song_level_db: float
    reverb_t60_s: float
    reverb_level_db: float
    low_noise_db: float  # wind and hum level against the song, below the band
    noise_seed: int


def _stratified_offsets(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    """n offsets at the quantiles of N(0, sd), shuffled: stable spread even for few song types."""
    quantiles = (np.arange(n) + 0.5) / n
    offsets = np.array([NormalDist(0, sd).inv_cdf(q) for q in quantiles]) if n > 1 else np.zeros(1)
    return rng.permutation(offsets)


def _draw_template(rng: np.random.Generator) -> SharedTemplate:
    return SharedTemplate(
        n_peeps=int(rng.integers(1, 4)),
        peep_shape=str(rng.choice(["hook", "downslur"], p=[0.65, 0.35])),
        peep_plateau_hz=float(rng.uniform(7_000, 8_100)),
        peep_second_voice=bool(rng.random() < 0.3),
        n_breathy=int(rng.integers(0, 3)),
        breathy_centre_hz=float(rng.uniform(3_400, 5_000)),
        n_clicks=int(rng.choice([0, 0, 2, 3])),
        has_whistle=bool(rng.random() < 0.5),
        whistle_start_hz=float(rng.uniform(2_400, 3_000)),
        whistle_end_hz=float(rng.uniform(3_800, 4_500)),
        buzz_after_trill=bool(rng.random() < 0.25),
        has_terminal=bool(rng.random() < 0.6),
        terminal_centre_hz=float(rng.uniform(5_200, 7_200)),
        terminal_shape=str(rng.choice(["chevron", "upslur"])),
        trill_top_hz=float(rng.uniform(7_000, 8_100)),
        trill_duration_s=float(rng.uniform(0.4, 0.75)),
        trill_duty=float(rng.uniform(0.4, 0.6)),
        buzz_carrier_hz=float(rng.uniform(3_600, 5_600)),
        buzz_rate_hz=float(rng.uniform(60, 150)),
        buzz_duration_s=float(rng.uniform(0.15, 0.32)),
    )


def build_population(config: SurrogateConfig) -> Population:
    """Draw the song types and individuals of a dataset (deterministic in ``config.seed``)."""
    rng = np.random.default_rng([config.seed, 0])
    n_types = config.song_types_per_dialect
    templates = [_draw_template(rng) for _ in range(n_types)]
    song_types = []
    for dialect in (0, 1):
        offsets = {
            feature.name: _stratified_offsets(
                rng, n_types, feature.total_sd * np.sqrt(config.type_variance_share)
            )
            for feature in DIAGNOSTIC_FEATURES
        }
        for index in range(n_types):
            means = {
                feature.name: feature.dialect_mean(dialect, config.separation)
                + offsets[feature.name][index]
                for feature in DIAGNOSTIC_FEATURES
            }
            song_types.append(SongType(dialect, index, templates[index], means))

    rng = np.random.default_rng([config.seed, 1])
    splits = _individual_splits(config, rng)
    individuals = []
    n_per_dialect = config.individuals_per_dialect
    for position in range(n_per_dialect):
        for dialect in (0, 1):  # interleaved ids: E, M, E, M, ...
            identifier = len(individuals)
            first = position % n_types  # the same rotation in both dialects keeps types balanced
            types = tuple((first + step) % n_types for step in range(config.types_per_individual))
            individuals.append(
                Individual(
                    id=identifier,
                    dialect=dialect,
                    song_types=types,
                    pitch_factor=float(rng.uniform(0.97, 1.03)),
                    tempo_factor=float(rng.uniform(0.95, 1.05)),
                    diagnostic_offsets={
                        feature.name: float(
                            rng.normal(0, feature.total_sd * np.sqrt(config.individual_variance_share))
                        )
                        for feature in DIAGNOSTIC_FEATURES
                    },
                    split=splits[dialect][position],
                )
            )
    return Population(config, tuple(song_types), tuple(individuals))


def split_names(n_groups: int, fractions: tuple[float, float, float]) -> list[str]:
    """Split name per group (bird or recording) in order: train first, then validation, then
    test; every split gets at least one group when there are three or more."""
    n_validation = int(round(n_groups * fractions[1]))
    n_test = int(round(n_groups * fractions[2]))
    if n_groups >= 3:
        n_validation, n_test = max(1, n_validation), max(1, n_test)
    n_validation = min(n_validation, n_groups)
    n_test = min(n_test, n_groups - n_validation)
    return ["train"] * (n_groups - n_validation - n_test) + ["validation"] * n_validation + ["test"] * n_test


def _individual_splits(config: SurrogateConfig, rng: np.random.Generator) -> list[list[str]]:
    """Split names per dialect and individual: whole individuals go to one split."""
    names = split_names(config.individuals_per_dialect, config.split_fractions)
    return [list(rng.permutation(names)) for _ in (0, 1)]


def _clip_rng(config: SurrogateConfig, clip_id: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, 2, clip_id])


def plan_song(population: Population, clip_id: int) -> SongPlan:
    """Draw every parameter of one clip: element timings and frequencies, noise level, reverb."""
    config = population.config
    individual_id, rendition = population.clip_assignment(clip_id)
    individual = population.individuals[individual_id]
    type_index = individual.song_types[rendition % len(individual.song_types)]
    song_type = population.song_type(individual.dialect, type_index)
    rng = _clip_rng(config, clip_id)
    return _plan_from_parts(config, song_type, individual, rng, clip_id)


def _plan_from_parts(
    config: SurrogateConfig,
    song_type: SongType,
    individual: Individual,
    rng: np.random.Generator,
    clip_id: int,
    diagnostic_values: dict[str, float] | None = None,
) -> SongPlan:
    template = song_type.template
    pitch = individual.pitch_factor * rng.uniform(0.99, 1.01)
    tempo = individual.tempo_factor

    def jitter_time(seconds: float) -> float:
        return seconds * tempo * rng.uniform(0.97, 1.03)

    if diagnostic_values is None:
        diagnostic_values = {}
        for feature in DIAGNOSTIC_FEATURES:
            value = (
                song_type.diagnostic_means[feature.name]
                + individual.diagnostic_offsets[feature.name]
                + rng.normal(0, feature.total_sd * np.sqrt(_rendition_share(config)))
            )
            diagnostic_values[feature.name] = float(np.clip(value, feature.low, feature.high))

    elements: list[ElementPlan] = []
    clock = 0.0

    def gap(low: float = 0.02, high: float = 0.08) -> float:
        return jitter_time(rng.uniform(low, high))

    for _ in range(template.n_clicks):
        duration = rng.uniform(0.006, 0.014)
        elements.append(ElementPlan("click", False, clock, duration, 3_000, 8_400,
                                    {"direction": "up", "seed": int(rng.integers(2**31))}))
        clock += duration + jitter_time(rng.uniform(0.08, 0.12))
    for _ in range(template.n_peeps):
        duration = jitter_time(rng.uniform(0.08, 0.2))
        plateau = min(template.peep_plateau_hz * pitch * rng.uniform(0.99, 1.01), 8_300)
        if template.peep_shape == "hook":
            start_hz = plateau - rng.uniform(1_300, 2_000)
            low, high = start_hz, plateau
        else:
            start_hz, plateau = min(plateau + 400, 8_400), plateau - 900
            low, high = plateau, start_hz
        params = {"shape": template.peep_shape, "start_hz": start_hz, "end_hz": plateau,
                  "second_voice": template.peep_second_voice}
        if template.peep_second_voice:
            low = low * 0.82
        elements.append(ElementPlan("peep", False, clock, duration, low, high, params))
        clock += duration + gap(0.04, 0.15)
    for _ in range(template.n_breathy):
        duration = jitter_time(rng.uniform(0.05, 0.13))
        centre = template.breathy_centre_hz * pitch
        rise = rng.uniform(0, 900)
        width = rng.uniform(400, 900)
        elements.append(ElementPlan("breathy", False, clock, duration, centre - width / 2,
                                    centre + rise + width / 2,
                                    {"centre_hz": centre, "rise_hz": rise, "width_hz": width,
                                     "seed": int(rng.integers(2**31))}))
        clock += duration + gap()
    clock += gap(0.05, 0.12)
    if template.has_whistle:
        duration = jitter_time(rng.uniform(0.16, 0.28))
        start_hz, end_hz = template.whistle_start_hz * pitch, template.whistle_end_hz * pitch
        elements.append(ElementPlan("whistle", False, clock, duration, start_hz, end_hz,
                                    {"start_hz": start_hz, "end_hz": end_hz}))
        clock += duration + gap(0.05, 0.12)

    def add_buzz() -> None:
        nonlocal clock
        duration = jitter_time(template.buzz_duration_s)
        carrier = template.buzz_carrier_hz * pitch
        depth = diagnostic_values["buzz_depth_hz"] * pitch
        rate = template.buzz_rate_hz * rng.uniform(0.97, 1.03)
        # the box reaches up to the second harmonic where it stays in band (the mask does too)
        top = carrier + depth + 200
        top = 2 * top if 2 * (carrier - depth) < MAX_ELEMENT_HZ else top
        elements.append(ElementPlan("buzz", True, clock, duration, carrier - depth, top,
                                    {"carrier_hz": carrier, "depth_hz": depth, "rate_hz": rate,
                                     "rise_hz": 200.0, "seed": int(rng.integers(2**31))}))
        clock += duration + gap(0.05, 0.12)

    def add_trill() -> None:
        nonlocal clock
        duration = jitter_time(template.trill_duration_s)
        rate = diagnostic_values["trill_rate_per_s"]
        top = min(template.trill_top_hz * pitch, 8_300)
        bandwidth = diagnostic_values["trill_bandwidth_hz"] * pitch
        n_notes = max(3, int(duration * rate))  # as many notes as fit in the (shared) slot
        elements.append(ElementPlan("trill", True, clock, n_notes / rate, top - bandwidth, top,
                                    {"rate_per_s": rate, "top_hz": top, "bandwidth_hz": bandwidth,
                                     "n_notes": n_notes, "duty": template.trill_duty,
                                     "slot_s": duration}))
        clock += duration + gap(0.05, 0.12)

    if template.buzz_after_trill:
        add_trill()
        add_buzz()
    else:
        add_buzz()
        add_trill()
    if template.has_terminal:
        duration = jitter_time(rng.uniform(0.08, 0.18))
        centre = template.terminal_centre_hz * pitch
        swing = rng.uniform(1_000, 1_800)
        elements.append(ElementPlan("terminal", False, clock, duration, centre - swing / 2,
                                    centre + swing / 2,
                                    {"shape": template.terminal_shape, "centre_hz": centre,
                                     "swing_hz": swing}))
        clock += duration

    song_duration = max(element.end_s for element in elements)
    onset = rng.uniform(0.15, config.clip_seconds - song_duration - 0.25)
    for element in elements:
        element.start_s += onset
        element.low_hz = float(max(element.low_hz, MIN_ELEMENT_HZ))
        element.high_hz = float(min(element.high_hz, MAX_ELEMENT_HZ))

    trill = next(e for e in elements if e.kind == "trill")
    buzz = next(e for e in elements if e.kind == "buzz")
    features = dict(diagnostic_values)
    features.update(
        trill_top_hz=trill.params["top_hz"],
        trill_duration_s=trill.params["slot_s"],
        buzz_carrier_hz=buzz.params["carrier_hz"],
        buzz_rate_hz=buzz.params["rate_hz"],
        buzz_duration_s=buzz.duration_s,
        n_intro_notes=float(template.n_peeps + template.n_breathy),
        song_duration_s=song_duration,
        song_onset_s=onset,
    )
    return SongPlan(
        clip_id=clip_id,
        individual=individual.id,
        dialect=individual.dialect,
        song_type=song_type.index,
        split=individual.split,
        elements=elements,
        features=features,
        snr_db=float(rng.uniform(*config.snr_db_range)),
        song_level_db=float(rng.uniform(*config.song_level_db_range)),
        reverb_t60_s=float(rng.uniform(0.02, 0.08)),
        reverb_level_db=float(rng.uniform(-20, -10)),
        low_noise_db=float(rng.uniform(-10, 10)),
        noise_seed=int(rng.integers(2**31)),
    )


def _rendition_share(config: SurrogateConfig) -> float:
    return max(0.0, 1 - config.type_variance_share - config.individual_variance_share)


# --------------------------------------------------------------------------------------------
# Stage 2: audio. Each element is a phase-continuous oscillator following its frequency track.
# --------------------------------------------------------------------------------------------


def _raised_cosine_envelope(n: int, attack: int, release: int) -> np.ndarray:
    envelope = np.ones(n)
    attack, release = min(attack, n // 2), min(release, n // 2)
    if attack > 0:
        envelope[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    if release > 0:
        envelope[n - release:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, release + 1) / release)
    return envelope


def _oscillator(frequency_hz: np.ndarray, sample_rate_hz: int, harmonics: dict[int, float] | None = None,
                phase0: float = 0.0) -> np.ndarray:
    """A tone following ``frequency_hz`` sample by sample; harmonics only where they stay in band."""
    phase = phase0 + 2 * np.pi * np.cumsum(frequency_hz) / sample_rate_hz
    wave = np.sin(phase)
    for number, level_db in (harmonics or {}).items():
        audible = (frequency_hz * number) < MAX_ELEMENT_HZ
        wave = wave + 10 ** (level_db / 20) * np.sin(number * phase) * audible
    return wave


def _band_noise(n: int, centre_hz: np.ndarray, width_hz: float, sample_rate_hz: int,
                rng: np.random.Generator) -> np.ndarray:
    """Noise of bandwidth ``width_hz`` around a (moving) centre: low-pass noise on a carrier."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    frequencies = np.fft.rfftfreq(n, 1 / sample_rate_hz)
    spectrum[frequencies > width_hz / 2] = 0
    lowpass = np.fft.irfft(spectrum, n)
    lowpass /= np.std(lowpass) + 1e-12
    return lowpass * _oscillator(centre_hz, sample_rate_hz) * np.sqrt(2)


def _render_element(element: ElementPlan, sample_rate_hz: int) -> np.ndarray:
    """Samples of one element (peak amplitude near 1 before the element's relative level)."""
    n = max(8, int(round(element.duration_s * sample_rate_hz)))
    t = np.arange(n) / sample_rate_hz
    p = element.params
    ms = sample_rate_hz // 1000
    if element.kind == "peep":
        if p["shape"] == "hook":
            rise = 0.02
            track = p["end_hz"] - (p["end_hz"] - p["start_hz"]) * np.exp(-t / (rise / 3))
        else:
            track = np.linspace(p["start_hz"], p["end_hz"], n)
        wave = _oscillator(track, sample_rate_hz, {2: -25.0})
        if p["second_voice"]:
            wave = wave + 0.5 * _oscillator(track * 0.82, sample_rate_hz, phase0=1.0)
            wave /= 1.5
        return wave * _raised_cosine_envelope(n, 5 * ms, 6 * ms) * 10 ** (-4 / 20)
    if element.kind == "breathy":
        rng = np.random.default_rng(p["seed"])
        track = p["centre_hz"] + p["rise_hz"] * t / t[-1]
        wave = _band_noise(n, track, p["width_hz"], sample_rate_hz, rng) / 2.5
        return wave * _raised_cosine_envelope(n, 6 * ms, 8 * ms) * 10 ** (-5 / 20)
    if element.kind == "click":
        track = np.linspace(3_000, 8_400, n)
        return _oscillator(track, sample_rate_hz) * _raised_cosine_envelope(n, 2 * ms, 2 * ms) * 10 ** (-8 / 20)
    if element.kind == "whistle":
        knee = int(0.4 * n)
        track = np.concatenate([
            p["start_hz"] + (p["end_hz"] - p["start_hz"]) * np.sin(np.linspace(0, np.pi / 2, knee)),
            np.full(n - knee, p["end_hz"]),
        ])
        wave = _oscillator(track, sample_rate_hz, {2: -24.0})
        return wave * _raised_cosine_envelope(n, 8 * ms, 10 * ms) * 10 ** (-4 / 20)
    if element.kind == "buzz":
        rng = np.random.default_rng(p["seed"])
        modulation = np.sin(2 * np.pi * p["rate_hz"] * t)
        track = p["carrier_hz"] + p["rise_hz"] * t / t[-1] + p["depth_hz"] * modulation
        wave = _oscillator(track, sample_rate_hz, {2: -12.0})
        wave *= 1 - 0.25 * (1 + np.cos(2 * np.pi * p["rate_hz"] * t))  # AM at the FM rate
        wave += 0.15 * _band_noise(n, np.full(n, p["carrier_hz"]), 2 * p["depth_hz"], sample_rate_hz, rng)
        return wave * _raised_cosine_envelope(n, 6 * ms, 8 * ms) * 10 ** (-4 / 20)
    if element.kind == "trill":
        wave = np.zeros(n)
        period = 1 / p["rate_per_s"]
        note_n = int(round(p["duty"] * period * sample_rate_hz))
        note_t = np.arange(note_n) / note_n
        # a steep, slightly concave downsweep from the top to the bottom of the note band
        track = p["top_hz"] - p["bandwidth_hz"] * note_t ** 0.8
        note = _oscillator(track, sample_rate_hz, {2: -30.0}) * _raised_cosine_envelope(note_n, 2 * ms, 2 * ms)
        for index in range(p["n_notes"]):
            start = int(round(index * period * sample_rate_hz))
            gain = min(1.0, 0.6 + 0.2 * index) * (0.85 if index >= p["n_notes"] - 2 else 1.0)
            stop = min(start + note_n, n)
            wave[start:stop] += gain * note[: stop - start]
        return wave
    if element.kind == "terminal":
        if p["shape"] == "chevron":
            shape = 1 - np.abs(2 * t / t[-1] - 1)
        else:
            shape = t / t[-1]
        track = p["centre_hz"] - p["swing_hz"] / 2 + p["swing_hz"] * shape
        return _oscillator(track, sample_rate_hz) * _raised_cosine_envelope(n, 5 * ms, 8 * ms) * 10 ** (-3 / 20)
    raise ValueError(f"unknown element kind {element.kind!r}")


def render_song(plan: SongPlan, config: SurrogateConfig) -> tuple[np.ndarray, np.ndarray]:
    """The dry diagnostic-only and shared-only song waveforms of a plan (clip length, unit level)."""
    rate = config.sample_rate_hz
    diagnostic = np.zeros(config.clip_samples)
    shared = np.zeros(config.clip_samples)
    for element in plan.elements:
        samples = _render_element(element, rate)
        start = int(round(element.start_s * rate))
        stop = min(start + len(samples), config.clip_samples)
        target = diagnostic if element.diagnostic else shared
        target[start:stop] += samples[: stop - start]
    return diagnostic, shared


def _reverb(waveform: np.ndarray, t60_s: float, level_db: float, sample_rate_hz: int,
            rng: np.random.Generator) -> np.ndarray:
    """Dry signal plus a short exponentially decaying noise tail (vegetation smear)."""
    from scipy.signal import fftconvolve

    n = int(t60_s * sample_rate_hz)
    tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    tail *= 10 ** (level_db / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    response = np.concatenate([[1.0], tail])
    return fftconvolve(waveform, response)[: len(waveform)]


# --------------------------------------------------------------------------------------------
# Field-like background: broadband coloured noise, wind gusts and hum (mostly below the band),
# an insect chorus and other birds' calls (in-band, where noise really competes with the song).
# --------------------------------------------------------------------------------------------


def field_noise(
    n: int, sample_rate_hz: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Background of ``n`` samples: (in-band noise, low-frequency noise, list of its sources).

    The in-band group (coloured noise, an insect chorus, other birds' calls) is what competes with
    the song after the band-pass; the low group (wind gusts, mains hum) lies below 1.5 kHz and is
    what the band-pass removes. Both come at an arbitrary level; :func:`render_clip` sets them.
    """
    t = np.arange(n) / sample_rate_hz
    duration = n / sample_rate_hz
    frequencies = np.fft.rfftfreq(n, 1 / sample_rate_hz)
    exponent = float(rng.uniform(0.3, 1.5))
    spectrum = np.fft.rfft(rng.standard_normal(n)) / np.maximum(frequencies, 20.0) ** (exponent / 2)
    in_band = np.fft.irfft(spectrum, n)
    in_band /= np.std(in_band) + 1e-12
    sources: list[dict[str, Any]] = [
        {"source": "coloured noise", "start_s": 0.0, "end_s": duration, "low_hz": 0.0,
         "high_hz": sample_rate_hz / 2, "detail": f"1/f^{exponent:.2f}"}
    ]
    if rng.random() < 0.5:
        centre = float(rng.uniform(3_000, 7_000))
        pulse_rate = float(rng.uniform(10, 30))
        chorus = _band_noise(n, np.full(n, centre), 150.0, sample_rate_hz, rng)
        chorus *= np.sin(2 * np.pi * pulse_rate * t) > 0.3
        in_band += rng.uniform(0.3, 1.0) * chorus
        sources.append({"source": "insect chorus", "start_s": 0.0, "end_s": duration,
                        "low_hz": centre - 75, "high_hz": centre + 75,
                        "detail": f"{pulse_rate:.0f} pulses/s"})
    for _ in range(int(rng.integers(0, 4))):
        start = float(rng.uniform(0, duration - 0.4))
        low = float(rng.uniform(2_000, 5_000))
        high = low + float(rng.uniform(800, 3_000))
        n_notes = int(rng.integers(2, 6))
        note_n = int(rng.uniform(0.02, 0.06) * sample_rate_hz)
        spacing = float(rng.uniform(0.07, 0.15))
        for index in range(n_notes):
            begin = int((start + index * spacing) * sample_rate_hz)
            if begin + note_n >= n:
                break
            track = np.linspace(low, high, note_n) if index % 2 else np.linspace(high, low, note_n)
            note = _oscillator(track, sample_rate_hz) * _raised_cosine_envelope(note_n, 40, 40)
            in_band[begin:begin + note_n] += rng.uniform(1.5, 4.0) * note
        sources.append({"source": "other bird", "start_s": start,
                        "end_s": min(duration, start + n_notes * spacing), "low_hz": low,
                        "high_hz": high, "detail": f"{n_notes} notes"})

    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[frequencies > 400] = 0
    wind = np.fft.irfft(spectrum, n)
    gusts = np.convolve(rng.random(n // 2000 + 2), np.ones(2) / 2, "same")
    wind *= np.interp(t, np.linspace(0, t[-1], len(gusts)), gusts) ** 2
    low = wind / (np.std(wind) + 1e-12)
    mains = float(rng.choice([50.0, 60.0]))
    low += sum(0.5 / k * np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 6.3)) for k in (1, 2, 3))
    sources.append({"source": "wind gusts", "start_s": 0.0, "end_s": duration, "low_hz": 0.0,
                    "high_hz": 400.0, "detail": ""})
    sources.append({"source": "mains hum", "start_s": 0.0, "end_s": duration, "low_hz": mains,
                    "high_hz": 3 * mains, "detail": f"{mains:.0f} Hz"})
    return in_band, low, sources


# --------------------------------------------------------------------------------------------
# Stage 3: a whole clip -- mixture, masks and metadata.
# --------------------------------------------------------------------------------------------


@dataclass
class SurrogateClip:
    """One synthesised clip with its ground truth."""

    plan: SongPlan
    waveform: np.ndarray  # float32, the field recording the pipeline sees
    song: np.ndarray  # float32, the song alone (after reverb and level)
    diagnostic_mask: np.ndarray  # bool (n_bins, n_frames) on the STFT grid
    song_mask: np.ndarray
    background: list[dict[str, Any]]


def mask_threshold(peak: float, floor_db: float, visible_db: float, settings: StftSettings = PAPER_STFT) -> float:
    """The magnitude an STFT cell needs to belong to a mask: within ``floor_db`` of ``peak`` (the
    source's loudest cell) and at or above ``visible_db`` (the image's floor, in dB against the
    unit-sine reference): the surrogate's song and element masks, and chapter 11's confound mask."""
    return max(peak * 10 ** (-floor_db / 20), settings.reference_magnitude * 10 ** (visible_db / 20))


def element_masks(diagnostic: np.ndarray, song: np.ndarray, floor_db: float,
                  settings: StftSettings = PAPER_STFT, visible_db: float = -np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Masks on the STFT grid: cells where the diagnostic elements (or all song elements), alone,
    come within ``floor_db`` of the song's loudest cell and reach ``visible_db`` (see
    :func:`mask_threshold`). Computed without the noise, so exact."""
    magnitudes = stft_magnitude(np.stack([diagnostic, song]), settings)  # one batched STFT
    threshold = mask_threshold(float(magnitudes[1].max()), floor_db, visible_db, settings)  # in magnitude: no log
    return magnitudes[0] >= threshold, magnitudes[1] >= threshold


def _clip_parts(plan: SongPlan, config: SurrogateConfig):
    """Song (diagnostic and shared parts), in-band noise at its raw level, low noise at its final
    level, the background's sources and the song's in-band power: everything :func:`render_clip`
    mixes, drawn from the plan's noise seed."""
    rate = config.sample_rate_hz
    rng = np.random.default_rng(plan.noise_seed)
    diagnostic, shared = render_song(plan, config)
    reverb_seed = int(rng.integers(2**31))
    diagnostic = _reverb(diagnostic, plan.reverb_t60_s, plan.reverb_level_db, rate, np.random.default_rng(reverb_seed))
    shared = _reverb(shared, plan.reverb_t60_s, plan.reverb_level_db, rate, np.random.default_rng(reverb_seed))
    level = 10 ** (plan.song_level_db / 20) / (np.max(np.abs(diagnostic + shared)) + 1e-12)
    diagnostic, shared = diagnostic * level, shared * level
    song = diagnostic + shared

    in_band, low, background = field_noise(config.clip_samples, rate, rng)
    start = int(min(e.start_s for e in plan.elements) * rate)
    stop = int(max(e.end_s for e in plan.elements) * rate)
    song_power = power(bandpass(song, rate)[start:stop])
    low *= np.sqrt(power(song[start:stop]) / power(low)) * 10 ** (plan.low_noise_db / 20)
    return diagnostic, song, in_band, low, background, song_power


def _mix(song: np.ndarray, in_band: np.ndarray, low: np.ndarray, song_power: float, snr_db: float,
         rate: int) -> np.ndarray:
    """Song plus noise, the in-band noise scaled to ``snr_db``: SNR is defined in-band, song power
    while it sings over noise power, both band-passed."""
    scaled = in_band * np.sqrt(song_power / (power(bandpass(in_band, rate)) * 10 ** (snr_db / 10)))
    return (song + (scaled + low)).astype(np.float32)


def render_clip(plan: SongPlan, config: SurrogateConfig, settings: StftSettings = PAPER_STFT) -> SurrogateClip:
    """Audio and masks of one planned clip: song with reverb, background at the planned in-band SNR."""
    diagnostic, song, in_band, low, background, song_power = _clip_parts(plan, config)
    diagnostic_mask, song_mask = element_masks(diagnostic, song, config.mask_floor_db, settings, config.mask_visible_db)
    return SurrogateClip(
        plan=plan,
        waveform=_mix(song, in_band, low, song_power, plan.snr_db, config.sample_rate_hz),
        song=song.astype(np.float32),
        diagnostic_mask=diagnostic_mask,
        song_mask=song_mask,
        background=background,
    )


def waveforms_at_snrs(plan: SongPlan, config: SurrogateConfig, snrs_db) -> np.ndarray:
    """The planned clip re-recorded at each in-band SNR (len(snrs_db), samples): the same song and
    noise sources, only the noise level changed. Synthesises once; equal, sample for sample, to
    :func:`render_clip` of the plan with ``snr_db`` replaced (chapter 03's SNR sweep)."""
    _, song, in_band, low, _, song_power = _clip_parts(plan, config)
    return np.stack([_mix(song, in_band, low, song_power, float(snr), config.sample_rate_hz) for snr in snrs_db])


def synthesise_clip(population: Population, clip_id: int) -> SurrogateClip:
    """Plan and render clip ``clip_id`` of a population (deterministic per clip, in any order)."""
    return render_clip(plan_song(population, clip_id), population.config)


def design_song(
    dialect: int = 0,
    trill_rate_per_s: float | None = None,
    trill_bandwidth_hz: float | None = None,
    buzz_depth_hz: float | None = None,
    song_type: int = 0,
    snr_db: float = 20.0,
    seed: int = 0,
    config: SurrogateConfig | None = None,
) -> SurrogateClip:
    """One song with chosen diagnostic values (None: the dialect's mean) -- the chapter 01 widget."""
    base = config or SurrogateConfig(seed=seed)
    config = replace(base, snr_db_range=(snr_db, snr_db))
    population = build_population(replace(config, individuals_per_dialect=1, clips_per_individual=1, n_clips=None))
    chosen = {"trill_rate_per_s": trill_rate_per_s, "trill_bandwidth_hz": trill_bandwidth_hz,
              "buzz_depth_hz": buzz_depth_hz}
    values = {}
    for feature in DIAGNOSTIC_FEATURES:
        value = chosen[feature.name]
        values[feature.name] = feature.dialect_mean(dialect, config.separation) if value is None else float(value)
    individual = population.individuals[dialect]
    plan = _plan_from_parts(config, population.song_type(dialect, song_type % config.song_types_per_dialect),
                            individual, np.random.default_rng([seed, 3]), clip_id=0, diagnostic_values=values)
    return render_clip(plan, config)


def mexican_probability(values: dict[str, float], separation: float = 1.6) -> float:
    """P(Mexican | diagnostic values) for an observer who knows the dialect model exactly.

    Treats each feature as Gaussian with the dialect's mean and the total standard deviation, the
    features as independent, and the dialects as equally likely (the ideal-observer reading that
    chapter 01 compares the classifier with).
    """
    log_ratio = 0.0
    for feature in DIAGNOSTIC_FEATURES:
        x = values[feature.name]
        for dialect, sign in ((1, 1.0), (0, -1.0)):
            z = (x - feature.dialect_mean(dialect, separation)) / feature.total_sd
            log_ratio += sign * -0.5 * z * z
    return float(1 / (1 + np.exp(-log_ratio)))
