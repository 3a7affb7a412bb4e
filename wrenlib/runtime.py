"""Seeds, threads and devices: the reproducibility switches every chapter sets first."""

from __future__ import annotations

import math
import os
import random
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

DEFAULT_TORCH_THREADS = 2
# torch's CPU threads for a whole run, set by ``wrenlib execute`` for a profile that may use every
# core (wrenlib.profiles.Profile.torch_threads) and read by set_seed in its chapters and trainings
TORCH_THREADS_VARIABLE = "WRENBOOK_TORCH_THREADS"
# the fraction of a CUDA GPU's memory one process may hold, set by ``wrenlib execute`` when jobs run
# side by side on one GPU (1/jobs each) and read by set_seed, which caps torch's allocator at it
GPU_SHARE_VARIABLE = "WRENBOOK_GPU_MEMORY_SHARE"
# torch's backend modes a process may compute in: (deterministic algorithms, new memory filled with
# NaN, cuDNN's benchmark mode). The book computes "deterministic" (one seed reproduces a run); a run
# of a profile whose ``gpu_backend`` is "fastest" on a CUDA GPU first times the others and takes the
# fastest (wrenlib.bench.calibrate_backend), and says so in its variable for set_seed to read
BACKEND_MODES: dict[str, tuple[bool, bool, bool]] = {
    "deterministic": (True, False, False),
    "deterministic-filled": (True, True, False),
    "nondeterministic": (False, False, False),
    "cudnn-benchmark": (False, False, True),
}
BACKEND_VARIABLE = "WRENBOOK_BACKEND"


def settings_errors(whole: dict[str, Any] | None = None, positive: dict[str, Any] | None = None,
                    non_negative: dict[str, Any] | None = None) -> list[str]:
    """What is wrong with a settings object's numbers, one message per setting naming it: those in
    ``whole`` must be whole numbers of at least 1 (counts, batch sizes; not True, not 2.5, not
    NaN), those in ``positive`` finite numbers above 0 (widths, rates), those in ``non_negative``
    finite numbers of at least 0 (penalties). Empty when all are fine; the settings classes of
    training and of the explainers raise them together."""
    def finite(value: Any) -> bool:  # a Python int of any size is; True is no number here
        if isinstance(value, (bool, np.bool_)):
            return False
        return isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and math.isfinite(value))

    wrong = [f"{name} must be a whole number >= 1, got {value!r}" for name, value in (whole or {}).items()
             if not finite(value) or int(value) != value or value < 1]
    wrong += [f"{name} must be a finite number above 0, got {value!r}" for name, value in (positive or {}).items()
              if not finite(value) or value <= 0]
    wrong += [f"{name} must be a finite number >= 0, got {value!r}" for name, value in (non_negative or {}).items()
              if not finite(value) or value < 0]
    return wrong


def torch_threads_for_run() -> int:
    """The CPU threads :func:`set_seed` gives torch unless told otherwise: ``WRENBOOK_TORCH_THREADS``
    where it is set, else ``DEFAULT_TORCH_THREADS``."""
    value = os.environ.get(TORCH_THREADS_VARIABLE, "").strip()
    if not value:
        return DEFAULT_TORCH_THREADS
    if not value.isdecimal() or not value.isascii() or int(value) < 1:
        raise ValueError(f"{TORCH_THREADS_VARIABLE} must be a whole number of threads, 1 or more; got {value!r}")
    return int(value)


def gpu_memory_share() -> float:
    """The fraction of a CUDA GPU's memory this process may use: ``WRENBOOK_GPU_MEMORY_SHARE``
    where it is set (a number above 0 and at most 1), else all of it."""
    value = os.environ.get(GPU_SHARE_VARIABLE, "").strip()
    if not value:
        return 1.0
    try:
        share = float(value)
    except ValueError:
        share = float("nan")
    if not 0 < share <= 1:  # also NaN
        raise ValueError(f"{GPU_SHARE_VARIABLE} must be a fraction of the GPU's memory above 0 and at most 1; "
                         f"got {value!r}")
    return share


def limit_gpu_memory(torch) -> None:
    """Cap torch's CUDA allocator on the GPU this process computes on (:func:`choose_device`) at
    :func:`gpu_memory_share` of that GPU's memory, so that jobs side by side on one GPU cannot take
    each other's (an allocation past the cap frees torch's cached blocks first, and only then
    fails); nothing on a CPU or without a share."""
    share = gpu_memory_share()
    if share < 1 and torch.cuda.is_available():
        device = choose_device()
        if device.type == "cuda":
            # an index, not the device: torch rejects a "cuda" device without one; None is the
            # current GPU, which is what choose_device's plain "cuda" means
            torch.cuda.set_per_process_memory_fraction(share, device.index)


def backend_mode() -> str:
    """The backend mode :func:`set_seed` puts torch in (:data:`BACKEND_MODES`): ``WRENBOOK_BACKEND``
    where it is set, else ``deterministic``."""
    value = os.environ.get(BACKEND_VARIABLE, "").strip()
    if not value:
        return "deterministic"
    if value not in BACKEND_MODES:
        raise ValueError(f"{BACKEND_VARIABLE} must be one of {', '.join(BACKEND_MODES)}; got {value!r}")
    return value


def apply_backend_mode(torch, mode: str) -> None:
    """Put torch in one of :data:`BACKEND_MODES`: deterministic algorithms on or off, new memory
    filled with NaN or not, cuDNN's benchmark mode on or off."""
    deterministic, fill, cudnn_benchmark = BACKEND_MODES[mode]
    _use_deterministic_algorithms(torch, deterministic, fill)
    torch.backends.cudnn.benchmark = cudnn_benchmark


@contextmanager
def seeded(seed: int, devices: Sequence[Any] = ()) -> Iterator[None]:
    """Within: torch's CPU generator and those of the CUDA ``devices`` start from ``seed``;
    afterwards they are back where they were (``torch.random.fork_rng``). Unlike
    ``torch.manual_seed``, no other GPU's generator is touched, so a caller on another GPU, or the
    caller's own draws, go on as if nothing happened."""
    import torch

    cuda = [torch.device(d) for d in devices if torch.device(d).type == "cuda"]
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for device in cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def set_seed(seed: int, torch_threads: int | None = None) -> None:
    """Seed Python, NumPy and torch, pin torch's CPU thread count (``None``:
    :func:`torch_threads_for_run`, 2 unless the run says otherwise), put torch in the run's
    backend mode (:func:`backend_mode`: deterministic unless the run says otherwise) and, on a GPU
    shared by jobs side by side, cap this process's memory there (:func:`limit_gpu_memory`).

    Results of float reductions differ between 1 and 2 threads, so the thread count is part of the
    seed: one seed and one thread count reproduce a quick-profile run exactly on a CPU.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    torch_threads = torch_threads_for_run() if torch_threads is None else torch_threads
    gpu_memory_share()  # a bad share or mode is named before anything is seeded
    mode = backend_mode()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    # cuBLAS's deterministic matrix products need a fixed workspace, read when its first handle is
    # made (after this, in a chapter or training; a caller's own setting stays); nothing on a CPU
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(torch_threads)
    keep_freed_memory()
    apply_backend_mode(torch, mode)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    limit_gpu_memory(torch)


def _use_deterministic_algorithms(torch, enabled: bool = True, fill: bool = False) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its import of torch's
    compiler stack (``torch._inductor``, about 2 s in every chapter's kernel and worker process),
    which it imports only to set the compiler's own flag: the book compiles nothing.

    Deterministic mode also fills every new tensor's memory with NaN by default
    (``torch.utils.deterministic.fill_uninitialized_memory``), a debugging aid that changes no
    result of an operation that writes its output before reading it: one more pass over memory
    per allocation, for a GPU's large activations a pass as long as a ReLU's. It is turned off
    (``fill``); ``wrenlib bench --backend`` times both, and deterministic mode off (``enabled``)."""
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if set_flag is None:  # another torch: the public call
        torch.use_deterministic_algorithms(enabled, warn_only=True)
    else:
        set_flag(enabled, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = fill


# glibc's mallopt parameters, and what the book sets them to
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_ALLOCATOR_SETTINGS = ((_M_MMAP_MAX, 0),  # every block from the heap (a batch of 64 images' first activations: 118 MiB)
                       (_M_TRIM_THRESHOLD, 2**30),  # keep up to 1 GiB of freed heap instead of returning it
                       (_M_TOP_PAD, 64 * 2**20))  # and grow the heap 64 MiB at a time


def _glibc_function(name: str):
    """A function of glibc's allocator (``mallopt``, ``malloc_trim``), or None off glibc."""
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux":
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):  # not glibc (musl has neither)
        return None


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for the next tensor of the same size instead of
    handing it back to the system and faulting fresh pages in again, which makes a CPU training
    step markedly faster (the activations of a batch are freed and allocated again at every step),
    and a forward pass of a batch of 64 images (LIME's samples, predictions) about a third faster:
    no block goes to ``mmap``, which hands its pages back when it is freed (glibc sends blocks of
    32 MiB or more there even with the largest mmap threshold). A job's peak memory grows a little
    (0.1-0.3 GiB per chapter in CI, from freed blocks too small for a later, larger one). Memory
    freed after a peak stays with the process until :func:`release_freed_memory`, which a
    notebook's kernel runs after every cell (so a chapter holds between cells only what it uses).
    Called by :func:`set_seed`. Returns whether the allocator took the settings (False off glibc)."""
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    kept = all(mallopt(parameter, value) == 1 for parameter, value in _ALLOCATOR_SETTINGS)
    _release_after_each_cell()
    return kept


def release_freed_memory(*_ignored) -> bool:
    """Hand the memory freed so far back to the system (glibc's ``malloc_trim``): what
    :func:`keep_freed_memory` keeps for the next training step, given back once a piece of work
    is over. Returns whether anything was given back (False off glibc)."""
    trim = _glibc_function("malloc_trim")
    return bool(trim(0)) if trim is not None else False


def _release_after_each_cell() -> None:
    """In an IPython kernel, run :func:`release_freed_memory` after every cell (once)."""
    shell = None
    if "IPython" in sys.modules:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is not None and release_freed_memory not in shell.events.callbacks.get("post_run_cell", []):
        shell.events.register("post_run_cell", release_freed_memory)


def map_batches(function, batches, n_jobs: int, *arguments):
    """``function(*arguments, batch)`` for each batch, in order, as an iterator: in this process
    when ``n_jobs`` is 1 (its torch threads left as they are), else in ``n_jobs`` joblib worker
    processes, each pinned to one torch thread (the processes share the cores)."""
    if n_jobs == 1:
        return (function(*arguments, batch) for batch in batches)
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_on_one_thread)(function, *arguments, batch) for batch in batches)


def stop_worker_processes() -> None:
    """End the worker processes :func:`map_batches` keeps. joblib keeps them idle for its next call
    for 5 minutes, and a process that ends through multiprocessing (a preparation of ``wrenlib
    execute``) waits for its children to end first: a preparation that had to synthesise the clips
    held its worker, and every job queued behind it, for those 5 minutes."""
    if "joblib" not in sys.modules:  # map_batches never ran in parallel here
        return
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)


def _on_one_thread(function, *arguments):
    """A worker's share of :func:`map_batches`, on one torch thread."""
    import torch

    torch.set_num_threads(1)
    return function(*arguments)


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


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which taskset and container limits
    narrow), else all the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def cpuinfo_value(keys: tuple[str, ...], cpuinfo: "os.PathLike | str" = "/proc/cpuinfo") -> str:
    """The first non-empty value of one of ``keys`` in Linux's ``/proc/cpuinfo`` (e.g. ``model
    name``, ``flags``), its spaces tidied; "" where the file or the keys are missing."""
    from pathlib import Path

    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in keys and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return ""


# Instructions that compute bfloat16 products in hardware, as x86 names them in the ``flags`` of
# /proc/cpuinfo: AVX512-BF16 and AMX. Only an AVX512-BF16 machine has been measured (make bench:
# 1.7 to 2.2 times as many training images per second); without them oneDNN emulates bfloat16
# with float32 arithmetic and conversions, which no machine here has measured to be faster. ARM's
# BF16 is left out until a machine with it is measured, so such CPUs train in float32.
NATIVE_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_has_native_bfloat16(cpuinfo: "os.PathLike | str" = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 natively (see ``NATIVE_BFLOAT16_FLAGS``); False where
    the system does not say (no ``/proc/cpuinfo``)."""
    return bool(NATIVE_BFLOAT16_FLAGS & set(cpuinfo_value(("flags",), cpuinfo).split()))


def default_profile_name() -> str:
    """``full`` when the run's device is a CUDA GPU, ``quick`` otherwise (what ``make book``
    picks): ``WRENBOOK_DEVICE=cpu`` on a GPU machine picks ``quick`` (:func:`choose_device`)."""
    return "full" if choose_device().type == "cuda" else "quick"


def show_progress(requested: bool = True) -> bool:
    """Whether to draw a progress bar: as requested, unless ``TQDM_DISABLE`` is set (the book's
    executions set it, so no progress widgets end up in the rendered pages)."""
    return requested and os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
