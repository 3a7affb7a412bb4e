"""Seeds, threads and devices: the reproducibility switches every chapter sets first."""

from __future__ import annotations

import os
import random

import numpy as np

DEFAULT_TORCH_THREADS = 2


def set_seed(seed: int, torch_threads: int = DEFAULT_TORCH_THREADS) -> None:
    """Seed Python, NumPy and torch, and pin torch's CPU thread count.

    Results of float reductions differ between 1 and 2 threads, so the thread count is part of the
    seed: one seed and one thread count reproduce a quick-profile run exactly on a CPU.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(torch_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def choose_device(preferred: str | None = None) -> "torch.device":  # noqa: F821
    """CUDA when present (or the device named by ``preferred`` / ``WRENBOOK_DEVICE``), else CPU."""
    import torch

    name = preferred or os.environ.get("WRENBOOK_DEVICE")
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was requested but no CUDA GPU is available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: "torch.device | None" = None) -> str:  # noqa: F821
    """A human-readable name of the device, e.g. ``cpu (2 threads)`` or the GPU's model."""
    import torch

    device = device or choose_device()
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def default_profile_name() -> str:
    """``full`` when a CUDA GPU is present, ``quick`` otherwise (what ``make book`` picks)."""
    import torch

    return "full" if torch.cuda.is_available() else "quick"


def show_progress(requested: bool = True) -> bool:
    """Whether to draw a progress bar: as requested, unless ``TQDM_DISABLE`` is set (the book's
    executions set it, so no progress widgets end up in the rendered pages)."""
    return requested and os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
