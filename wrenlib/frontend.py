"""The paper's front end: band-pass, 4 s clips, STFT, decibels, spectrogram images (chapter 02).

Images are arrays of the *level* in [0, 1]: 0 at the -40 dB floor (and below it), 1 at +5 dB.
A black-background image is the level itself; a white-background image is 1 - level; a mixed set
draws the background per clip from a seed. Frequency runs up (row 0 is the top, the Nyquist
frequency) and time across. The same resampling puts the surrogate's masks on the same pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .audio import BAND_HZ, SAMPLE_RATE_HZ, bandpass, level_db
from .spectrogram import PAPER_STFT, StftSettings, stft_power

BACKGROUNDS = ("black", "white", "mixed")


@dataclass(frozen=True)
class FrontEnd:
    """Every setting between a recording and the CNN's input image."""

    sample_rate_hz: int = SAMPLE_RATE_HZ
    band_hz: tuple[float, float] = BAND_HZ
    filter_type: str = "butter"
    filter_order: int = 4
    clip_seconds: float = 4.0
    clip_hop_seconds: float = 4.0  # clips follow each other without overlap
    min_tail_seconds: float = 2.0  # a shorter last piece is dropped, a longer one zero-padded
    min_clip_level_db: float = -60.0  # a clip quieter than this in-band holds no song: dropped
    stft: StftSettings = field(default_factory=lambda: PAPER_STFT)
    db_range: tuple[float, float] = (-40.0, 5.0)
    image_height_px: int = 480
    image_width_px: int = 960
    pixel_pooling: str = "mean"  # how the cells under a pixel become its value: "mean" or "max" power

    def __post_init__(self) -> None:
        if self.pixel_pooling not in ("mean", "max"):
            raise ValueError(f"pixel_pooling must be 'mean' or 'max', got {self.pixel_pooling!r}")
        low, high = self.db_range
        if not low < high:
            raise ValueError(f"db_range {self.db_range} must run from low to high")
        if self.image_height_px < 8 or self.image_width_px < 8:
            raise ValueError("images must be at least 8 x 8 pixels")
        if self.clip_hop_seconds <= 0 or self.clip_seconds <= 0:
            raise ValueError("clip_seconds and clip_hop_seconds must be positive")
        if self.stft.sample_rate_hz != self.sample_rate_hz:
            raise ValueError("the STFT settings and the front end disagree on the sample rate")

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate_hz))

    @property
    def image_size(self) -> tuple[int, int]:
        return self.image_height_px, self.image_width_px

    def with_image_size(self, height_px: int, width_px: int) -> "FrontEnd":
        return replace(self, image_height_px=height_px, image_width_px=width_px)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The paper's front end: its STFT, 480 x 960 images (chapter 02).
PAPER_FRONT_END = FrontEnd()


def front_end_from_dict(settings: dict[str, Any]) -> FrontEnd:
    """Rebuild a :class:`FrontEnd` from :meth:`FrontEnd.to_dict` (as stored in checkpoints)."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    values["stft"] = StftSettings(**values["stft"])
    return FrontEnd(**values)


def front_end_for_profile(profile: str) -> FrontEnd:
    """The paper's front end at the profile's image size."""
    from .profiles import get_profile

    sizes = get_profile(profile)
    return PAPER_FRONT_END.with_image_size(sizes.image_height_px, sizes.image_width_px)


# ------------------------------------------------------------------------------------------
# Segmentation
# ------------------------------------------------------------------------------------------


@dataclass
class Segments:
    """The clips cut from one recording, with where they start and what was dropped."""

    clips: np.ndarray  # (n, clip_samples) float32, band-passed
    starts_s: np.ndarray
    dropped_quiet: int = 0
    dropped_tail_s: float = 0.0
    loudest_db: float = float("-inf")  # the in-band level of its loudest piece, kept or dropped
    dropped_invisible: int = 0  # clips whose images are black (set by wrenlib.recordings.recording_clips)


def segment(waveform: np.ndarray, front_end: FrontEnd = PAPER_FRONT_END,
            filtered: bool = False) -> Segments:
    """Band-pass a recording (unless ``filtered``) and cut it into clips of ``clip_seconds``.

    Clips start every ``clip_hop_seconds``. The last piece is zero-padded when it lasts at least
    ``min_tail_seconds`` and dropped otherwise; clips whose in-band level stays below
    ``min_clip_level_db`` hold no song and are dropped too. Both drops are counted.
    """
    rate = front_end.sample_rate_hz
    signal = np.asarray(waveform, dtype=np.float32)
    if not filtered:
        signal = bandpass(signal, rate, front_end.band_hz, front_end.filter_order, front_end.filter_type)
    length = front_end.clip_samples
    hop = int(round(front_end.clip_hop_seconds * rate))
    min_tail = int(round(front_end.min_tail_seconds * rate))
    clips, starts, quiet, dropped_tail, loudest = [], [], 0, 0.0, float("-inf")
    for start in range(0, max(len(signal), 1), hop):
        piece = signal[start:start + length]
        if len(piece) < length:
            if len(piece) < min_tail:
                dropped_tail = len(piece) / rate
                break
            piece = np.pad(piece, (0, length - len(piece)))
        level = level_db(piece)
        loudest = max(loudest, level)
        if level < front_end.min_clip_level_db:
            quiet += 1
        else:
            clips.append(piece)
            starts.append(start / rate)
        if start + length >= len(signal):
            break
    array = np.stack(clips) if clips else np.zeros((0, length), np.float32)
    return Segments(array, np.array(starts), quiet, dropped_tail, loudest)


# ------------------------------------------------------------------------------------------
# Images and masks on the same pixel grid
# ------------------------------------------------------------------------------------------


def _to_pixels(grid: torch.Tensor, front_end: FrontEnd) -> torch.Tensor:
    """(N, n_bins, n_frames) -> (N, H, W): flip so frequency runs up, then resample by area.

    Each pixel column pools the frames under it (their mean power by default, or their maximum:
    ``FrontEnd.pixel_pooling``); rows are pooled the same way when the image has fewer rows than
    the STFT has bins, and repeated (nearest) when it has more. Image and mask pixels therefore
    summarise exactly the same cells.
    """
    height, width = front_end.image_size
    flipped = torch.flip(grid, dims=[-2])[:, None]
    pool = F.adaptive_max_pool2d if front_end.pixel_pooling == "max" else F.adaptive_avg_pool2d
    pooled = pool(flipped, (min(height, flipped.shape[-2]), width))
    if height > pooled.shape[-2]:
        pooled = F.interpolate(pooled, size=(height, width), mode="nearest-exact")
    return pooled[:, 0]


def render_levels(
    clips: np.ndarray | torch.Tensor,
    front_end: FrontEnd = PAPER_FRONT_END,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """Level images in [0, 1] (float32, N x H x W) of band-passed clips, computed in batches.

    Power is averaged onto the pixel grid before taking decibels (energy adds; decibels do not),
    then clipped to ``db_range`` and mapped to [0, 1]. By default batches are small on a CPU (2
    clips: the STFT stays in the cache, measured fastest on 2 cores) and large on a GPU (64).
    """
    array = clips if isinstance(clips, torch.Tensor) else torch.from_numpy(np.asarray(clips, np.float32))
    if array.ndim == 1:
        array = array[None]
    low, high = front_end.db_range
    if batch_size is None:
        batch_size = 64 if torch.device(device or "cpu").type == "cuda" else 2
    out = np.empty((len(array), *front_end.image_size), dtype=np.float32)
    with torch.no_grad():
        for first in range(0, len(array), batch_size):
            batch = array[first:first + batch_size].to(device)
            pixels = _to_pixels(stft_power(batch, front_end.stft), front_end)
            # level = (dB - low) / (high - low), with dB = 10 log10(power / reference^2), in place
            reference_db = 20 * np.log10(front_end.stft.reference_magnitude)
            scale = 10 / (high - low)
            level = pixels.clamp_min_(1e-30).log10_().mul_(scale)
            level.add_(-(reference_db + low) / (high - low)).clamp_(0, 1)
            out[first:first + len(batch)] = level.cpu().numpy()
    return out


MASK_BATCH_BYTES = 64 * 2**20  # render_mask pools masks as float32 grids of about this much at a time


def render_mask(mask: np.ndarray, front_end: FrontEnd = PAPER_FRONT_END, rule: str = "any") -> np.ndarray:
    """A boolean STFT-grid mask (n_bins, n_frames) on the image's pixel grid (H, W), or a stack
    of them (N, n_bins, n_frames) -> (N, H, W), pooled a few at a time.

    ``rule="any"``: a pixel belongs to the mask when any cell under it does (no broken strokes);
    ``rule="majority"``: when at least half of its area does (the strict mask).
    """
    if rule not in ("any", "majority"):
        raise ValueError(f"rule must be 'any' or 'majority', got {rule!r}")
    mean_pooling = replace(front_end, pixel_pooling="mean")  # coverage is a share of the area
    stack = np.asarray(mask, dtype=bool)
    single = stack.ndim == 2
    stack = stack[None] if single else stack
    out = np.empty((len(stack), *front_end.image_size), dtype=bool)
    step = max(1, MASK_BATCH_BYTES // max(1, 4 * int(np.prod(stack.shape[1:]))))  # float32 grids a batch
    for first in range(0, len(stack), step):
        grids = torch.from_numpy(stack[first:first + step].astype(np.float32))
        coverage = _to_pixels(grids, mean_pooling)
        out[first:first + step] = (coverage > 1e-6).numpy() if rule == "any" else (coverage >= 0.5).numpy()
    return out[0] if single else out


def apply_background(levels: np.ndarray, backgrounds: np.ndarray | str) -> np.ndarray:
    """Images with their background: black keeps the level, white inverts it (1 - level).

    ``levels`` is one image (H, W) or a stack (N, H, W); ``backgrounds`` is one name for all
    images or one name per image (a mixed set). Returns a new array.
    """
    images = np.array(levels, dtype=np.float32, copy=True)
    stack = images if images.ndim == 3 else images[None]
    names = np.broadcast_to(np.asarray(backgrounds), (len(stack),))
    unknown = set(names.tolist()) - {"black", "white"}
    if unknown:
        raise ValueError(f"unknown background(s) {sorted(unknown)}; use 'black' or 'white'")
    for index in np.flatnonzero(names == "white"):
        np.subtract(1.0, stack[index], out=stack[index])
    return images


def assign_backgrounds(n_images: int, background: str, seed: int) -> np.ndarray:
    """One background name per image: all black, all white, or mixed (drawn from ``seed``)."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    if background != "mixed":
        return np.full(n_images, background)
    return np.random.default_rng([seed, 7]).choice(["black", "white"], size=n_images)


def pixel_frequencies_hz(front_end: FrontEnd = PAPER_FRONT_END) -> np.ndarray:
    """Frequency at the centre of each image row (row 0 is the top)."""
    n_bins, height = front_end.stft.n_bins, front_end.image_height_px
    flipped_index = (np.arange(height) + 0.5) * n_bins / height - 0.5
    return (n_bins - 1 - flipped_index) * front_end.sample_rate_hz / front_end.stft.window_samples


def pixel_times_s(front_end: FrontEnd = PAPER_FRONT_END) -> np.ndarray:
    """Time at the centre of each image column."""
    n_frames = front_end.stft.n_frames(front_end.clip_samples)
    frame = (np.arange(front_end.image_width_px) + 0.5) * n_frames / front_end.image_width_px - 0.5
    return frame * front_end.stft.hop_samples / front_end.sample_rate_hz


def spectrogram_images(
    waveforms: np.ndarray,
    front_end: FrontEnd = PAPER_FRONT_END,
    background: str = "black",
    seed: int = 0,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """The whole front end for clips of ``clip_seconds``: band-pass, STFT, dB, image, background."""
    filtered = bandpass(np.asarray(waveforms, np.float32), front_end.sample_rate_hz, front_end.band_hz,
                        front_end.filter_order, front_end.filter_type)
    levels = render_levels(filtered, front_end, device)
    return apply_background(levels, assign_backgrounds(len(levels), background, seed))


# ------------------------------------------------------------------------------------------
# Benchmark: this front end against the straightforward way (chapter 02, make bench)
# ------------------------------------------------------------------------------------------


def baseline_image(waveform: np.ndarray, front_end: FrontEnd = PAPER_FRONT_END) -> np.ndarray:
    """The straightforward front end: librosa's STFT and a matplotlib figure per clip, read back
    as an (H, W) grey image. Used only as the benchmark's baseline."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    filtered = bandpass(waveform, front_end.sample_rate_hz, front_end.band_hz,
                        front_end.filter_order, front_end.filter_type)
    magnitude = np.abs(librosa.stft(filtered, n_fft=front_end.stft.window_samples,
                                    hop_length=front_end.stft.hop_samples, window=front_end.stft.window))
    db = librosa.amplitude_to_db(magnitude, ref=front_end.stft.reference_magnitude, top_db=None)
    height, width = front_end.image_size
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(db, origin="lower", aspect="auto", cmap="gray", vmin=front_end.db_range[0],
              vmax=front_end.db_range[1], interpolation="antialiased")
    ax.set_axis_off()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., 0].astype(np.float32) / 255
    plt.close(fig)
    return image


def benchmark_front_end(waveforms: np.ndarray, front_end: FrontEnd = PAPER_FRONT_END,
                        baseline_clips: int = 8, device=None) -> dict[str, float]:
    """Clips per second of :func:`spectrogram_images` and of :func:`baseline_image`, measured
    side by side in one run on the same clips (audio -> image of ``front_end.image_size``)."""
    import time

    def best_rate(run, n_clips: int, repeats: int) -> float:
        rates = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            rates.append(n_clips / (time.perf_counter() - started))
        return max(rates)  # the least disturbed repeat: the machine is shared

    spectrogram_images(waveforms[:2], front_end, device=device)  # warm-up
    baseline_image(waveforms[0], front_end)
    ours = best_rate(lambda: spectrogram_images(waveforms, front_end, device=device), len(waveforms), 3)
    few = waveforms[:baseline_clips]
    baseline = best_rate(lambda: [baseline_image(w, front_end) for w in few], len(few), 2)
    return {"front_end_clips_per_second": ours, "baseline_clips_per_second": baseline,
            "speed_up": ours / baseline, "image_height_px": front_end.image_height_px,
            "image_width_px": front_end.image_width_px, "clips": len(waveforms)}
