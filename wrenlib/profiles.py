"""Run profiles: the one place that says how big each piece of work is.

``quick`` is what CI runs on a 2-core CPU; ``full`` is paper scale for a GPU. Both take the same
code path, only the numbers differ (explained in chapter 01, "The wren dialects").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


# The precisions a CNN can train in (wrenlib.training.TrainingConfig.mixed_precision)
MIXED_PRECISION = ("off", "gpu", "native", "always")


@dataclass(frozen=True)
class Profile:
    """Sizes and budgets of one run of the book."""

    name: str
    individuals_per_dialect: int
    clips_per_individual: int
    image_height_px: int
    image_width_px: int
    max_epochs: int = 30
    patience: int = 6
    explain_clips: int = 16  # test clips every method explains (chapters 04-10)
    lime_samples: int = 256  # LIME perturbations per image
    shap_background: int = 8  # SHAP reference images
    sanity_clips: int = 4  # test clips of the randomisation and stability checks (chapter 10)
    stability_seeds: int = 2  # models trained from different initial weights (chapter 10)
    # how many layers from the top are re-initialised at each step of chapter 10's cascade that is
    # explained (the paper's CNN has 8: 3 dense, 5 conv); every step costs a full set of maps
    randomisation_depths: tuple[int, ...] = (1, 3, 4, 6, 8)
    # chapter 11: the confound strengths trained (0 is chapter 03's clean model, no training) and
    # the test clips carrying the source that every method explains per strength
    confound_strengths: tuple[float, ...] = (0.0, 1.0)  # CI time: each strength above 0 trains a CNN
    confound_clips: int = 8
    # training in 16-bit floats (wrenlib.training.TrainingConfig.mixed_precision): "off" trains
    # in float32 everywhere, "native" in 16 bits on a GPU and on a CPU that computes bfloat16 in
    # hardware (wrenlib.runtime.NATIVE_BFLOAT16_FLAGS)
    mixed_precision: str = "off"
    # torch's CPU threads in each job of `wrenlib execute` (wrenlib.runtime.set_seed): a number
    # pins them, so that one seed reproduces the run's numbers exactly (float sums differ between
    # thread counts); None gives each job its share of the CPU's cores, at least 2
    torch_threads: int | None = 2
    # torch's backend mode on a CUDA GPU (wrenlib.runtime.BACKEND_MODES; a CPU always computes
    # deterministically): "deterministic" reproduces a run from its seed; "fastest" lets the run
    # time the modes on its GPU first and take the fastest (wrenlib.bench.calibrate_backend), keeping
    # deterministic unless another is clearly faster
    gpu_backend: str = "deterministic"

    def __post_init__(self) -> None:
        from .runtime import BACKEND_MODES

        if self.gpu_backend not in (*BACKEND_MODES, "fastest"):
            raise ValueError(f"gpu_backend must be one of {', '.join(BACKEND_MODES)} or 'fastest', "
                             f"got {self.gpu_backend!r}")

    @property
    def n_clips(self) -> int:
        """Number of surrogate clips in the profile's dataset."""
        return 2 * self.individuals_per_dialect * self.clips_per_individual

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view, for provenance records and cache keys."""
        return asdict(self)

    def with_overrides(self, **changes: Any) -> "Profile":
        """A copy with some fields changed (for a reader's experiments)."""
        return replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        individuals_per_dialect=60,
        clips_per_individual=6,
        image_height_px=120,
        image_width_px=240,
        # the book's six CNNs (seed 0; chapters 03, 10, 11, 12), on the machine that chose it: none beat
        # its best after 3 more epochs, so 3 trained the same models as 4 did, one epoch sooner each
        patience=3,
        # CI time: on the machine that chose it (2 cores; its processor was not recorded), four of
        # the six stopped by themselves within 12 epochs (the same models as with no cap) and the
        # black and white sets' kept their best of 12 (95 % and 97 % on validation) instead of
        # epochs 15 and 14 (97 % and 96 %), 5-6 epochs less; another processor trains other
        # trajectories from the same seed (troubleshooting page), so these counts are that machine's
        max_epochs=12,
    ),
    "full": Profile(
        name="full",
        individuals_per_dialect=250,
        clips_per_individual=8,
        image_height_px=480,
        image_width_px=960,
        explain_clips=100,
        lime_samples=1000,
        shap_background=64,
        sanity_clips=24,
        stability_seeds=3,
        randomisation_depths=(1, 2, 3, 4, 5, 6, 7, 8),
        confound_strengths=(0.0, 0.25, 0.5, 0.75, 1.0),
        confound_clips=48,
        mixed_precision="native",
        torch_threads=None,
        gpu_backend="fastest",
    ),
}


def get_profile(name: str) -> Profile:
    """Return the named profile (``quick`` or ``full``); raise a clear error otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {name!r}; choose one of: {known}") from None
