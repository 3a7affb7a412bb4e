"""Stage timings of a whole profile: the book's heavy work, timed one stage at a time.

:func:`time_stages` runs what the chapters run for one profile (surrogate clips, spectrogram
images, one trained CNN, every method's maps of the explained clips, latent features and a t-SNE)
through the same library calls, from an empty cache, and writes after every stage a JSON record
with the machine, the device, the seconds and the peak memory. It is how the Performance page
knows what the ``full`` profile costs on a GPU without executing the whole book there
(``wrenlib bench --stages full``), and what training in 16 bits changes on a CPU
(``--mixed-precision native``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Iterator

from .runtime import BACKEND_MODES

# What the book asks of a whole run: the quick profile on a 2-core CPU, the full one on one GPU
TARGETS = {"quick": {"minutes": 10, "memory_gib": 6, "where": "a 2-core CPU", "device": "cpu"},
           "full": {"minutes": 30, "where": "one H100-class GPU", "device": "cuda"}}

STAGES = ("surrogate clips", "spectrogram images", "training one CNN", "explanations", "latent space")


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20


class ChildProcessUsage:
    """Peak memory and CPU time of this process's child processes and theirs (a notebook's kernel
    and its worker processes), and with ``include_self`` of this process too (its CPU time from the
    start of the block), sampled every ``interval`` seconds in a thread while the ``with`` block
    runs.

    ``peak_gib`` is the largest sum of resident sizes seen; it counts pages shared between
    processes once per process, so it errs high. ``cpu_seconds`` adds up each process's user and
    system time as last seen, less what it had used when the block began (a child started before
    it, such as a worker pool an earlier piece of work left, counts only its work inside; a
    process that lives less than ``interval`` can be missed); divided by the wall time it says how
    many cores the work kept busy.
    """

    def __init__(self, interval: float = 0.2, include_self: bool = False) -> None:
        self.interval = interval
        self.include_self = include_self  # also this process (work done in it, not in a child)
        self._cpu_before: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds on entry
        self.peak_bytes = 0
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds
        self._stop = None
        self._thread = None

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / 2**30

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def sample(self) -> int:
        """The children's resident memory now, in bytes (also updates the peak and CPU times)."""
        total = 0
        for (pid, started), rss, cpu in _process_tree(self.include_self):
            total += rss
            self._cpu[(pid, started)] = cpu - self._cpu_before.get((pid, started), 0.0)
        self.peak_bytes = max(self.peak_bytes, total)
        return total

    def __enter__(self) -> "ChildProcessUsage":
        import threading

        self._cpu_before = {key: cpu for key, _rss, cpu in _process_tree(self.include_self)}
        self._stop = threading.Event()

        def watch() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self._thread = threading.Thread(target=watch, name="child-usage", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.include_self:
            self.sample()  # this process's CPU time up to the end


def _process_tree(include_self: bool = True) -> Iterator[tuple[tuple[int, float], int, float]]:
    """((pid, start time), resident bytes, CPU seconds) of this process's descendants, and of this
    process first with ``include_self``; a process that ends while it is read is skipped."""
    import psutil

    me = psutil.Process()
    for process in ([me] if include_self else []) + me.children(recursive=True):
        try:
            with process.oneshot():
                rss, times = process.memory_info().rss, process.cpu_times()
                yield (process.pid, process.create_time()), rss, times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass  # ended between the listing and the reading


def _process_tree_cpu_seconds() -> dict[tuple[int, float], float]:
    """CPU seconds (user + system) of this process and its descendants, by (pid, start time)."""
    return {key: cpu for key, _rss, cpu in _process_tree()}


class OtherWork:
    """How many cores the rest of the machine kept busy while a ``with`` block ran: the machine's
    CPU time (``psutil.cpu_times``) minus this process's and its children's, per second of wall
    time. A chapter that times something says so when it was not alone on the machine, e.g. beside
    another job of ``wrenlib execute`` (:meth:`note`). A child that ends inside the block counts as
    other work (its last CPU time is not seen)."""

    def __enter__(self) -> "OtherWork":
        import psutil

        self.cores = 0.0
        self._machine = self._busy(psutil.cpu_times())
        self._own = _process_tree_cpu_seconds()
        self._started = time.perf_counter()
        return self

    @staticmethod
    def _busy(times) -> float:
        return sum(getattr(times, field, 0.0) for field in ("user", "nice", "system", "irq", "softirq", "steal"))

    def __exit__(self, *_exc) -> None:
        import psutil

        wall = time.perf_counter() - self._started
        machine = self._busy(psutil.cpu_times()) - self._machine
        own = sum(seconds - self._own.get(key, 0.0) for key, seconds in _process_tree_cpu_seconds().items())
        self.cores = max(0.0, (machine - own) / wall) if wall > 0 else 0.0

    def note(self, threshold: float = 0.25) -> str:
        """Empty when the rest of the machine was (nearly) idle, else a clause that says how busy it was."""
        if self.cores < threshold:
            return ""
        return (f", with other work keeping {self.cores:.1f} of its {os.cpu_count()} cores busy meanwhile "
                f"(`make bench` times it alone)")


def processor_name(cpuinfo: Path | str = "/proc/cpuinfo") -> str:
    """The processor's name as the operating system reports it (Linux: ``model name`` in
    ``/proc/cpuinfo``, else :func:`platform.processor`), or "" where it says nothing."""
    from .runtime import cpuinfo_value

    return cpuinfo_value(("model name", "Model"), cpuinfo) or platform.processor().strip()


def machine_description(device: Any = None) -> dict[str, Any]:
    """Where a timing was taken: architecture, cores, processor and the vector instructions torch's
    CPU kernels use on it, device, and the versions that matter. (Two 2-core x86_64 machines ran
    the quick book in 11-12 and 5.4 minutes in this project; only the processor's name and its
    kernels can tell such records apart.)"""
    import torch

    from .runtime import choose_device, describe_device

    device = device or choose_device()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    processor = processor_name()
    if processor:
        machine += f", {processor}"
    capability = torch.backends.cpu.get_cpu_capability()
    if capability and capability != "DEFAULT":
        machine += f" ({capability} kernels)"
    return {"machine": machine, "device": describe_device(device),
            "python": platform.python_version(), "torch": torch.__version__}


@contextmanager
def _stage(record: dict[str, Any], name: str, path: Path, device) -> Iterator[dict[str, Any]]:
    """Time one stage; write the record (also when the stage fails or the run is stopped later)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    row: dict[str, Any] = {"stage": name}
    start = time.perf_counter()
    try:
        yield row
    finally:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            row["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        row["seconds"] = round(time.perf_counter() - start, 2)
        row["peak_rss_gib"] = round(peak_rss_gib(), 3)
        record["stages"].append(row)
        path.write_text(json.dumps(record, indent=1))
        print(f"{name}: {row['seconds']:.1f} s", flush=True)


def time_stages(profile: str, out: Path | str, seed: int = 0, device: Any = None,
                n_jobs: int | None = None, methods: tuple[str, ...] | None = None,
                mixed_precision: str | None = None) -> dict[str, Any]:
    """Run the profile's heavy stages from an empty cache and time each (see the module's text),
    on as many torch threads as one job of ``wrenlib execute`` would have
    (:func:`wrenlib.book.run_threads`).

    Writes ``<out>/stages-<profile>.json`` (``stages-<profile>-<mixed_precision>.json`` when
    that is given) after every stage, so a run cut short keeps what it measured. The cache must
    not already hold the profile's data or model (the timings would be load times):
    ``WRENBOOK_ARTIFACTS`` can point the cache at an empty folder.
    ``mixed_precision`` trains the CNN in another precision than the profile's (e.g. the quick
    profile's in "native" 16 bits on a CPU that has them) instead of the one the chapters load.
    Whenever the CNN trains in 16 bits, the same CNN is trained in float32 beside it, and the
    record says how often the two agree on the test clips.
    """
    from .book import run_threads

    with run_threads(profile, 1):
        return _time_stages(profile, out, seed, device, n_jobs, methods, mixed_precision)


def _time_stages(profile: str, out: Path | str, seed: int, device: Any, n_jobs: int | None,
                 methods: tuple[str, ...] | None, mixed_precision: str | None) -> dict[str, Any]:
    from dataclasses import replace

    import numpy as np
    import torch

    from .cache import profile_dir
    from .dataset import load_surrogate_dataset
    from .explain import METHODS, explain_dataset, explained_clips, settings_for_profile
    from .images import load_spectrogram_dataset
    from .latent import dataset_features, embed, fitting_perplexity
    from .profiles import get_profile
    from .runtime import choose_device, set_seed
    from .training import (autocast_dtype, load_or_train_model, precision_name, predict, train_model,
                           training_config_for_profile)

    sizes = get_profile(profile)
    device = device or choose_device()
    if (profile_dir(profile) / "surrogate").exists():
        raise ValueError(f"{profile_dir(profile)} already holds this profile's data, so the stages would time "
                         f"loads; set WRENBOOK_ARTIFACTS to an empty folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (f"stages-{profile}.json" if mixed_precision is None else f"stages-{profile}-{mixed_precision}.json")
    set_seed(seed)  # first: the record names the threads the stages run on
    record: dict[str, Any] = {"profile": sizes.to_dict(), **machine_description(device), "stages": []}
    with _stage(record, STAGES[0], path, device) as row:
        surrogate = load_surrogate_dataset(profile, seed=seed, n_jobs=n_jobs)
        row.update(clips=len(surrogate.clips), processes=surrogate.processes)
    with _stage(record, STAGES[1], path, device) as row:
        images = load_spectrogram_dataset(profile, seed=seed, device=device)
        row.update(clips=len(images), image_size=list(images.front_end.image_size))
    config = training_config_for_profile(profile, seed)
    if mixed_precision is not None:
        config = replace(config, mixed_precision=mixed_precision)
    record["mixed_precision"] = config.mixed_precision
    half = autocast_dtype(device, config.mixed_precision)
    with _stage(record, STAGES[2], path, device) as row:
        if mixed_precision is None:  # as the chapters train it, and cached for them
            model, history, images = load_or_train_model(profile, seed=seed, device=device)
        else:  # the same training in another precision than the profile's, so not cached under its name
            model, history = train_model(images, config, device=device, progress=False)
        row.update(epochs=len(history), train_clips=len(images.split_indices("train")),
                   seconds_per_epoch=None, precision=precision_name(half))
    test = images.split_indices("test")
    predicted = predict(model, images, test, device).argmax(1)
    row.update(seconds_per_epoch=round(row["seconds"] / max(len(history), 1), 2),
               test_accuracy=round(float(np.mean(predicted == images.labels[test])), 4))
    path.write_text(json.dumps(record, indent=1))
    if half is not None:  # the same CNN in float32, side by side: time and accuracy
        with _stage(record, f"{STAGES[2]}, float32", path, device) as row:
            reference, reference_history = train_model(images, replace(config, mixed_precision="off"),
                                                       device=device, progress=False)
            row.update(epochs=len(reference_history), precision="float32")
        agreed = predict(reference, images, test, device).argmax(1)
        row.update(seconds_per_epoch=round(row["seconds"] / max(len(reference_history), 1), 2),
                   test_accuracy=round(float(np.mean(agreed == images.labels[test])), 4),
                   agreement_with_16_bit=round(float(np.mean(agreed == predicted)), 4))
        path.write_text(json.dumps(record, indent=1))
    chosen = explained_clips(images, sizes.explain_clips, seed=seed)
    for method in methods or METHODS:
        with _stage(record, f"{STAGES[3]}: {method}", path, device) as row:
            explain_dataset(model, images, chosen, method, profile, settings_for_profile(method, profile),
                            device=device, progress=False)
            row.update(clips=len(chosen))
    with _stage(record, STAGES[4], path, device) as row:
        test = images.split_indices("test")
        features = dataset_features(model, images, test, profile, device=device)
        embed(features, perplexity=fitting_perplexity(len(test)), seed=seed)  # as in chapter 09
        row.update(clips=len(test), features=int(np.shape(features)[1]))
    record["total_seconds"] = round(sum(stage["seconds"] for stage in record["stages"]), 1)
    path.write_text(json.dumps(record, indent=1))
    return record


MATMUL_SIZE = 1024  # the matrices of matmul_gflops: large enough to run at the cores' full rate


def matmul_gflops(threads: int = 1, size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """Billions of floating-point operations per CPU-second (this process's CPU time, so another
    process sharing the cores does not lower it) of a large float32 matrix product (torch.mm) on
    ``threads`` threads, the best of ``repeats``: about the most arithmetic a core does, the
    yardstick of the Performance page's training arithmetic."""
    import torch

    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.rand(size, size), torch.rand(size, size)
        a @ b  # warm-up
        best = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            a @ b
            best = min(best, time.process_time() - started)
    finally:
        torch.set_num_threads(threads_before)
    return 2 * size**3 / best / 1e9


def image_sized_operations(work, height: int, width: int) -> int:
    """How many torch operations ``work()`` calls on images, tensors whose last two dimensions
    are ``height`` x ``width`` (counted in a ``TorchDispatchMode``, as torch's FLOP counter sees
    operations): on a GPU each is a kernel launched over whole images, so their count measures on
    any machine the launches a GPU would wait through (chapter 06: LIME's perturbed images made one
    sample at a time, or one batch at a time)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Counter(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if any(isinstance(value, torch.Tensor) and value.dim() >= 2 and tuple(value.shape[-2:]) == (height, width)
                   for value in tree_flatten((args, kwargs))[0]):
                self.count += 1
            return func(*args, **kwargs)

    with Counter() as counter:
        work()
    return counter.count


def training_arithmetic(preparations: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """What the preparations of a run trained (their ``trained`` entries, :data:`wrenlib.training.TRAINED`):
    CNNs, epochs, images and floating-point operations (:func:`wrenlib.model.flops_per_image`:
    forward and backward per training image, forward per validation image), and the CPU time
    their jobs took (seconds x cores busy). ``None`` when no preparation trained."""
    from functools import lru_cache

    from .model import ModelConfig, flops_per_image

    flops = lru_cache(maxsize=None)(flops_per_image)  # one count per network shape (configs are hashable)

    totals = {"cnns": 0, "epochs": 0, "train_images": 0, "validation_images": 0, "flops": 0.0, "core_seconds": 0.0}
    for entry in preparations.values():
        trained = entry.get("trained") or []
        if not trained:
            continue
        totals["core_seconds"] += entry["seconds"] * (entry.get("cores_busy") or 0)
        for training in trained:
            config = ModelConfig.from_dict(training["model"])
            totals["cnns"] += 1
            totals["epochs"] += training["epochs"]
            totals["train_images"] += training["epochs"] * training["train_images"]
            totals["validation_images"] += training["epochs"] * training["validation_images"]
            totals["flops"] += training["epochs"] * (training["train_images"] * flops(config, True)
                                                     + training["validation_images"] * flops(config, False))
    return totals if totals["cnns"] else None


def trainings_per_job(profile: str) -> dict[str, int]:
    """How many CNNs each job of ``wrenlib execute`` trains from scratch on an empty cache (the
    book's dominant cost): one per preparation that trains one (:func:`wrenlib.book.book_preparations`;
    the maps made ahead for chapters 08, 10 and 11 train none) and chapter 12's, on the recordings it is given."""
    from .book import book_preparations

    return {**{p.name: p.trains for p in book_preparations(profile) if p.trains}, "12_your_recordings": 1}


# One explainer call in a fresh interpreter (so its peak resident size is its own), in one piece
_MEMORY_PROBE = """
import sys
import numpy as np, torch
import wrenlib.explain as explain
from wrenlib.model import DialectCNN, ModelConfig
method, count, height, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
explain.images_per_call = lambda *args, **kwargs: 10**9  # one call: the memory of one call is measured
torch.manual_seed(0)
model = DialectCNN(ModelConfig(height, width)).eval()
rng = np.random.default_rng(0)
images = rng.random((count if method == "deeplift" else 1, height, width), dtype=np.float32)
references = rng.random((count, height, width), dtype=np.float32) if method == "shap" else None
settings = explain.ShapSettings(n_background=count) if method == "shap" else None
explain.explain(model, images, method, settings=settings, references=references, device="cpu",
                batch_size=len(images), progress=False)
# the high-water mark of this program's own memory (VmHWM starts afresh at exec; ru_maxrss would
# carry over the peak of the process that started it)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def explainer_memory(size: tuple[int, int] = (480, 960), counts: tuple[int, int] = (1, 3)) -> list[dict[str, Any]]:
    """The memory one more explained image costs DeepLIFT, and one more reference costs SHAP's deep
    explainer, at ``size`` on the CPU: the peak resident size of one call with ``counts[1]`` and
    with ``counts[0]`` of them, each in a fresh interpreter, differenced (what the two calls share,
    the imports and the network, cancels). Beside it, the constant
    :func:`wrenlib.explain.images_per_call` splits the work by, so ``make bench`` checks it."""
    import subprocess

    from .explain import DEEPLIFT_BYTES_PER_IMAGE_PIXEL, SHAP_BYTES_PER_REFERENCE_PIXEL

    if sys.platform != "linux":
        return []  # the probe reads /proc/self/status
    pixels = size[0] * size[1]
    rows = []
    for method, unit, constant in (("deeplift", "explained image", DEEPLIFT_BYTES_PER_IMAGE_PIXEL),
                                   ("shap", "reference", SHAP_BYTES_PER_REFERENCE_PIXEL)):
        peaks = []
        for count in counts:
            done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, method, str(count), *map(str, size)],
                                  capture_output=True, text=True, check=True)
            peaks.append(int(done.stdout.split()[-1]) * 1024)
        per_unit = (peaks[1] - peaks[0]) / (counts[1] - counts[0])
        rows.append({"method": method, "image": f"{size[0]} x {size[1]}", "per": unit,
                     "GiB per unit": round(per_unit / 2**30, 3), "bytes per pixel": round(per_unit / pixels),
                     "constant (bytes per pixel)": constant})
    return rows


# The backend modes `wrenlib bench --backend` times against the book's own (the first), by the
# names the Performance page gives them (wrenlib.runtime.BACKEND_MODES: deterministic algorithms,
# new memory filled with NaN, cuDNN's benchmark mode). The book runs deterministic so that one seed
# reproduces a run; cuDNN's benchmark mode (CUDA only) times every convolution algorithm on its
# first call and keeps the fastest, which may differ between runs.
BACKEND_TITLES = {
    "deterministic": "the book's: deterministic",
    "deterministic-filled": "deterministic, new memory filled",
    "nondeterministic": "not deterministic",
    "cudnn-benchmark": "not deterministic, cuDNN benchmark",
}
BACKEND_SETTINGS = {title: BACKEND_MODES[mode] for mode, title in BACKEND_TITLES.items()}


@contextmanager
def backend_settings(mode: str) -> Iterator[None]:
    """Torch in the backend ``mode`` (:func:`wrenlib.runtime.apply_backend_mode`) for the block, and
    its deterministic mode, filling of new memory and cuDNN's benchmark mode as they were after it."""
    import torch
    import torch.utils.deterministic

    from .runtime import _use_deterministic_algorithms, apply_backend_mode

    before = (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory,
              torch.backends.cudnn.benchmark)
    apply_backend_mode(torch, mode)
    try:
        yield
    finally:
        _use_deterministic_algorithms(torch, *before[:2])
        torch.backends.cudnn.benchmark = before[2]


def benchmark_backend(image_size: tuple[int, int] | None = None, device: Any = None, lime_batch: int = 64,
                      train_batch: int = 32, repeats: int = 3, modes: Sequence[str] | None = None,
                      precisions: Sequence[str] = ("off", "always"),
                      memory_format: str = "channels_last") -> dict[str, Any]:
    """The book's two heaviest kinds of GPU work, timed under each backend mode (``modes``, default
    every one of :data:`BACKEND_TITLES`; cuDNN's benchmark mode only on CUDA) in each of
    ``precisions`` (:func:`wrenlib.training.autocast_dtype`'s settings: by default float32 and the
    16 bits the full profile computes in, autocast's bfloat16 or float16 on an older GPU): a LIME
    batch (``lime_batch`` images through the model's forward pass, as
    :func:`wrenlib.explain._timed_probabilities` computes it) and a training step (``train_batch``
    images, as :func:`wrenlib.training.fit` takes it), on an untrained paper CNN and random images of
    ``image_size`` (default: the full profile's on a GPU, the quick one's on a CPU). The
    combinations take turns for ``repeats`` rounds (the best round counts), so that a slow spell
    of a shared machine hits them alike; in each round a combination runs twice and the second
    run is timed, since the first after another combination pays for the switch (new buffers in
    the other precision, cuDNN's benchmark timing): measured on a CPU, the first of a group came
    out 20-30 % slower by its place alone. The convolutions' weights are in ``memory_format``
    ("channels_last", as :class:`~wrenlib.model.DialectCNN` keeps them, or "contiguous"). Returns
    the machine's description and ``rows``: workload, precision, mode and its title
    (``settings``), memory format, images per second and the speed-up against the first mode in the
    same precision."""
    import torch
    from torch import nn

    from .explain import _timed_probabilities
    from .model import DialectCNN, ModelConfig, fast_forward
    from .profiles import get_profile
    from .runtime import choose_device
    from .training import autocast_dtype, precision_name, training_step

    device = torch.device(device) if device is not None else choose_device()
    if image_size is None:
        sizes = get_profile("full" if device.type == "cuda" else "quick")
        image_size = (sizes.image_height_px, sizes.image_width_px)
    unknown = [mode for mode in (modes or ()) if mode not in BACKEND_MODES]
    if unknown:
        raise ValueError(f"unknown backend mode(s) {', '.join(unknown)}; choose from {', '.join(BACKEND_MODES)}")
    modes = [mode for mode in (modes or BACKEND_TITLES) if device.type == "cuda" or not BACKEND_MODES[mode][2]]
    torch.manual_seed(0)
    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    if memory_format not in formats:
        raise ValueError(f"memory_format must be one of {', '.join(formats)}, got {memory_format!r}")
    model = DialectCNN(ModelConfig(*image_size)).to(device)
    model.features.to(memory_format=formats[memory_format])
    network = fast_forward(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_function = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    lime_images = torch.rand(lime_batch, 1, *image_size, generator=generator).to(device)
    train_images = torch.rand(train_batch, 1, *image_size, generator=generator).to(device)
    labels = (torch.arange(train_batch) % 2).to(device)
    halves = list(dict.fromkeys(autocast_dtype(device, precision) for precision in precisions))

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def lime(precision):
        network.eval()
        _timed_probabilities(network, lime_images, half=precision)

    def train(precision):
        network.train()
        training_step(network, optimiser, loss_function, train_images, labels, precision,
                      torch.amp.GradScaler(device.type) if precision == torch.float16 else None)

    runs = [(workload, images, precision, name) for workload, images in (("LIME batch", lime_batch),
                                                                           ("training step", train_batch))
            for precision in halves for name in modes]
    work = {"LIME batch": lime, "training step": train}
    best: dict[tuple, float] = {}
    for _ in range(repeats):
        for workload, images, precision, name in runs:
            with backend_settings(name):
                work[workload](precision)  # the switch from the combination before
                synchronise()
                started = time.perf_counter()
                work[workload](precision)
                synchronise()
                elapsed = time.perf_counter() - started
            key = (workload, precision, name)
            best[key] = min(best.get(key, float("inf")), elapsed)
    rows = []
    book = modes[0]
    for workload, images, precision, name in runs:
        rows.append({"workload": f"{workload} ({images} x {image_size[0]} x {image_size[1]})",
                     "precision": precision_name(precision), "mode": name, "settings": BACKEND_TITLES[name],
                     "memory format": memory_format,
                     "images_per_second": round(images / best[(workload, precision, name)], 1),
                     "speed-up": round(best[(workload, precision, book)] / best[(workload, precision, name)], 2)})
    return {**machine_description(device), "repeats": repeats, "rows": rows}


def write_backend_benchmark(out: Path | str, **kwargs: Any) -> Path:
    """:func:`benchmark_backend`, kept in ``out/backend.json`` with the time it finished."""
    from datetime import datetime, timezone

    report = benchmark_backend(**kwargs)
    report["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "backend.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    for row in report["rows"]:
        print(f"{row['workload']}, {row['precision']}, {row['settings']}: {row['images_per_second']} images/s "
              f"({row['speed-up']}x the book's)")
    return path


# A run that may pick its backend mode (a profile's gpu_backend "fastest") keeps deterministic
# computing unless another mode is at least this much faster, over its two workloads together: a
# run one seed reproduces is worth a few per cent
CALIBRATION_MARGIN = 1.1
# the modes a calibration times (filling new memory is a debugging aid, never the fastest)
CALIBRATED_MODES = ("deterministic", "nondeterministic", "cudnn-benchmark")


def fastest_backend(rows: list[dict[str, Any]], margin: float = CALIBRATION_MARGIN) -> tuple[str, dict[str, float]]:
    """The backend mode of :func:`benchmark_backend`'s ``rows`` to compute in, and each mode's
    speed-up: the geometric mean of its speed-ups against the first mode over the rows'
    workloads and precisions. The fastest mode where its speed-up is at least ``margin``, else the
    first (the book's deterministic one)."""
    import math

    by_mode: dict[str, list[float]] = {}
    for row in rows:
        by_mode.setdefault(row["mode"], []).append(float(row["speed-up"]))
    if not by_mode:
        raise ValueError("no backend timings to choose from")
    speedups = {mode: round(math.exp(sum(math.log(v) for v in values) / len(values)), 3)
                for mode, values in by_mode.items()}
    first = rows[0]["mode"]
    best = max(speedups, key=lambda mode: (speedups[mode], mode == first))
    return (best if speedups[best] >= margin else first), speedups


def calibrate_backend(profile: str, repeats: int = 2, image_size: tuple[int, int] | None = None,
                      folder: Path | str | None = None, device: Any = None, **sizes: Any) -> dict[str, Any]:
    """Time :data:`CALIBRATED_MODES` on this machine's device (:func:`benchmark_backend`, at the
    profile's image size, ``repeats`` rounds; ``sizes`` are its batch sizes) and choose the one the
    run computes in (:func:`fastest_backend`, on the timings in the profile's precision; those in
    float32 are kept for the record, and so are the chosen mode's with the convolutions' weights in
    torch's default layout instead of channels-last, timed after the others, their speed-up
    against channels-last); keep both in ``backend.json`` in ``folder`` (default: the profile's
    artifacts). ``wrenlib execute`` runs it as the first job of a run on a CUDA GPU of a profile
    whose ``gpu_backend`` is "fastest", beside the jobs that compute on the CPU (the surrogate
    clips, chapter 01); every later job computes in the mode chosen."""
    from datetime import datetime, timezone

    import torch

    from .cache import profile_dir
    from .profiles import get_profile
    from .runtime import choose_device
    from .training import autocast_dtype, precision_name

    profile_sizes = get_profile(profile)
    device = torch.device(device) if device is not None else choose_device()
    # float32 too, for the record (the Performance page): whether the profile's 16 bits pay here
    size = image_size or (profile_sizes.image_height_px, profile_sizes.image_width_px)
    report = benchmark_backend(size, device, repeats=repeats, modes=CALIBRATED_MODES,
                               precisions=(profile_sizes.mixed_precision, "off"), **sizes)
    computed_in = precision_name(autocast_dtype(device, profile_sizes.mixed_precision))
    report["precision"] = computed_in
    report["mode"], report["speedups"] = fastest_backend([row for row in report["rows"]
                                                          if row["precision"] == computed_in])
    # for the record too: the chosen mode with the convolutions' weights in torch's default layout
    # instead of channels-last (the book keeps channels-last, which oneDNN's CPU kernels prefer)
    plain = benchmark_backend(size, device, repeats=repeats, modes=(report["mode"],),
                              precisions=(profile_sizes.mixed_precision,), memory_format="contiguous", **sizes)
    ours = {(row["workload"], row["precision"]): row["images_per_second"] for row in report["rows"]
            if row["mode"] == report["mode"]}
    for row in plain["rows"]:  # its speed-up against channels-last in the same mode (measured apart)
        row["speed-up"] = round(row["images_per_second"] / ours[(row["workload"], row["precision"])], 2)
    report["rows"] += plain["rows"]
    report["margin"] = CALIBRATION_MARGIN
    report["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    folder = Path(folder) if folder is not None else profile_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "backend.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"backend: {report['mode']} ({speedups_text(report['speedups'])})")
    return report


def speedups_text(speedups: dict[str, float]) -> str:
    """A calibration's speed-ups (:func:`fastest_backend`) in words, for the logs."""
    return "speed-up against deterministic: " + ", ".join(f"{mode} {value:g}x" for mode, value in speedups.items())


def read_calibration(folder: Path | str) -> dict[str, Any]:
    """The calibration :func:`calibrate_backend` kept in ``folder``; ``ValueError`` (or ``OSError``
    where there is none) when its mode is missing or unknown."""
    report = json.loads((Path(folder) / "backend.json").read_text())
    if report.get("mode") not in BACKEND_MODES:
        raise ValueError(f"{Path(folder) / 'backend.json'}: no known backend mode ({report.get('mode')!r})")
    return report


def _backend_tables(paths: list[Path]) -> list[str]:
    """The Markdown of :func:`write_backend_benchmark`'s records."""
    lines = []
    for path in paths:
        report = json.loads(path.read_text())
        lines += ["", f"{report.get('device')} ({report.get('machine')}), finished {report.get('finished')}, "
                      f"best of {report.get('repeats')} rounds (`{path.parent.name}/{path.name}`):", ""]
        lines += _markdown_table(report.get("rows", []), ["workload", "precision", "settings", "images_per_second",
                                                          "speed-up"])
    return lines


def _markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(c.replace("_", " ") for c in columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in rows:
        lines.append("| " + " | ".join("—" if row.get(c) is None else str(row.get(c)) for c in columns) + " |")
    return lines


def _bench_tables(folder: Path) -> list[str]:
    """The Markdown of one ``wrenlib bench`` result (``synth.json`` and ``explainers.csv`` in ``folder``)."""
    report = json.loads((folder / "synth.json").read_text())
    lines = [f"Machine: {report.get('machine')}, {report.get('device')}"
             + (f", {report['finished']}" if report.get("finished") else "") + "."
             + (f" {report['note']}" if report.get("note") else ""), ""]
    columns = ["benchmark", "processes", "clips", "clips_per_second", "speed-up"]
    lines += _markdown_table([{c: row.get(c) for c in columns} for row in report.get("results", [])], columns)
    lines += ["", "Speed-up against: one process (surrogate generation), the straightforward front end "
                  "`wrenlib.frontend.baseline_image` (the front end), float32 (a bfloat16 training)."]
    explainers = folder / "explainers.csv"
    if explainers.is_file():
        import pandas as pd

        from .explain import METHOD_TITLES

        table = pd.read_csv(explainers)
        lines += ["", "Each explainer's cost per image, in seconds and in forward passes of the same network "
                      "(side by side in one run):", ""]
        rows = [{"method": METHOD_TITLES.get(r.method, r.method), "image": f"{r.image_height_px} x {r.image_width_px}",
                 "budget": r.budget, "seconds per image": f"{r.seconds_per_image:.3f}",
                 "forward passes": f"{r.forward_pass_equivalents:.1f}"} for r in table.itertuples()]
        lines += _markdown_table(rows, ["method", "image", "budget", "seconds per image", "forward passes"])
    memory = report.get("memory")
    if memory:
        from .explain import DEEPLIFT_BYTES_PER_IMAGE_PIXEL, METHOD_TITLES, SHAP_BYTES_PER_REFERENCE_PIXEL

        constants = {"deeplift": DEEPLIFT_BYTES_PER_IMAGE_PIXEL, "shap": SHAP_BYTES_PER_REFERENCE_PIXEL}
        lines += ["", "Memory of one more explained image (DeepLIFT) or reference (SHAP) in one call, on the CPU "
                      "(`wrenlib.bench.explainer_memory`), beside the constant `wrenlib.explain.images_per_call` "
                      "splits their work by (the code's value now):", ""]
        # the constant is the code's; a record kept from before it changed says what it was then
        rows = [{**row, "method": METHOD_TITLES.get(row["method"], row["method"]),
                 "constant (bytes per pixel)": constants.get(row["method"], row["constant (bytes per pixel)"])}
                for row in memory]
        lines += _markdown_table(rows, ["method", "image", "per", "GiB per unit", "bytes per pixel",
                                        "constant (bytes per pixel)"])
        changed = [f"{METHOD_TITLES.get(row['method'], row['method'])}'s was {row['constant (bytes per pixel)']}"
                   for row in memory if constants.get(row["method"], row["constant (bytes per pixel)"])
                   != row["constant (bytes per pixel)"]]
        if changed:
            lines += ["", f"*Measured when {' and '.join(changed)}: the code has changed since, and "
                          "`make bench` measures it again.*"]
    return lines


def backend_rows(record: dict[str, Any]) -> list[str]:
    """The Markdown table of a run's backend calibration (:func:`calibrate_backend`), if it had one."""
    rows = (record.get("backend") or {}).get("rows") or []
    return ["", *_markdown_table(rows, ["workload", "precision", "settings", "memory format", "images_per_second",
                                        "speed-up"]), "",
            "*Speed-up* against deterministic in the same precision, and for the default layout (`contiguous`) "
            "against channels-last in the same mode.", ""] if rows else []


def backend_sentence(record: dict[str, Any]) -> str:
    """How a run (its execution log, or a record kept from one) chose torch's backend mode, in
    words: deterministic unless its calibration chose another (:func:`calibrate_backend`)."""
    calibration = record.get("backend") or {}
    mode = calibration.get("mode") or record.get("backend_mode") or "deterministic"
    if not calibration.get("speedups"):
        return (f"The jobs computed in torch's `{mode}` mode" + (" (one seed reproduces the run)."
                                                                 if mode == "deterministic" else "."))
    others = ", ".join(f"`{name}` {value:g}x" for name, value in calibration["speedups"].items() if name != "deterministic")
    return (f"The jobs computed in torch's `{mode}` mode, which the run chose by timing the modes on its GPU first, "
            f"beside chapter 01 (`wrenlib.bench.calibrate_backend`: a LIME batch and a training step; speed-up "
            f"against deterministic: {others}; it keeps deterministic unless another mode is at least "
            f"{calibration.get('margin', CALIBRATION_MARGIN):g}x as fast)"
            + (": its numbers are not reproducible bit for bit." if mode != "deterministic" else "."))


def _kept_runs(benchmarks: Path) -> list[str]:
    """The Markdown of the runs kept in ``benchmarks/jobs-*.json`` (``wrenlib bench --job-times``):
    each job's seconds and peak memory, and whether the run was complete."""
    records = sorted(benchmarks.glob("jobs-*.json")) if benchmarks.is_dir() else []
    if not records:
        return []
    lines = ["", "## Kept runs", "",
             "Seconds and peak memory (RAM, of the job's processes) per job of runs kept in `book/benchmarks/` "
             "(`wrenlib bench --job-times PROFILE`): a fresh clone orders its jobs by them, and a run too long to "
             "repeat here (the full profile on a CPU, or on a GPU available for minutes) is shown by them."]
    for record_path in records:
        record = json.loads(record_path.read_text())
        seconds, peaks = record.get("seconds", {}), record.get("peak_memory_gib", {})
        partial = record.get("complete") is False
        lines += ["", f"Profile `{record.get('profile')}` on {record.get('device')} ({record.get('machine')}), "
                      f"finished {record.get('finished')}"
                      + (f", up to {record['jobs']} side by side" if record.get("jobs", 1) > 1 else "")
                      + f" (`{record_path.name}`): "
                      + ("**a partial record**: only the jobs below have run, in one or more runs, "
                         if partial else f"{len(seconds)} jobs, ")
                      + f"{sum(seconds.values()) / 60:.1f} min of their own time"
                      + (f"; the {'last ' if partial else ''}run took {record['wall_seconds'] / 60:.1f} min of wall time"
                         + (f", its {record['parts']} parts together (resumed with `--resume`)"
                            if record.get("parts", 1) > 1 else "")
                         if record.get("wall_seconds") else "") + ".", ""]
        if record.get("backend"):  # kept since runs could choose their mode (older records: deterministic)
            lines += [backend_sentence(record), "", *backend_rows(record)]
        if record.get("note"):  # how the run came about, where its record alone would mislead
            lines += [f"*{record['note']}*", ""]
        rows = [{"job": job, "seconds": f"{value:.0f}", "peak RAM (GiB)": peaks.get(job)}
                for job, value in sorted(seconds.items(), key=lambda item: -item[1])]
        rows += [{"job": job, "seconds": f"≥ {math.floor(value)} (cut off)", "peak RAM (GiB)": "—"}  # ran this long, unfinished
                 for job, value in sorted(record.get("cut_off_seconds", {}).items(), key=lambda item: -item[1])]
        lines += _markdown_table(rows, ["job", "seconds", "peak RAM (GiB)"])
    return lines


def _count(n: int, noun: str) -> str:
    """"1 chapter", "3 chapters": a count and its noun, in number."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def write_performance_page(path: Path, log: dict[str, Any], benchmarks: Path, bench: Path) -> None:
    """The Performance page, written after every execution of the book (``make execute``): this
    run's time per chapter (with a bar chart beside the page), the stage timings kept in
    ``benchmarks`` (``wrenlib bench --stages``: the full profile on a GPU, 16 bits against
    float32 on a CPU), the runs kept there (``wrenlib bench --job-times``), the
    results of ``make bench`` on this machine (``bench``) when it has been run, and those kept in
    ``benchmarks/bench-*/`` (``wrenlib bench --out book/benchmarks/bench-cpu``), which a fresh
    clone shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .book import of_this_run

    def of_the_run(entry: dict[str, Any]) -> bool:  # finished in the logged run
        return bool(entry.get("ok")) and of_this_run(log, entry)

    chapters = {name: entry for name, entry in sorted(log.get("chapters", {}).items()) if of_the_run(entry)}
    preparations = {name: entry for name, entry in sorted(log.get("preparations", {}).items()) if of_the_run(entry)}
    work = {**preparations, **chapters}  # every job of the run
    total = sum(entry["seconds"] for entry in work.values())
    profile = log.get("profile", "quick")
    trainings = trainings_per_job(profile)
    lines = ["# Performance", "",
             "Written by `make execute` after every run of the book, from measurements; no number on this page "
             "is typed by hand (the notes beside kept records of other runs are their keepers' words). The dominant cost is training the paper's CNN. On an empty cache (as in CI) the "
             "run trains the CNNs the chapters load as *preparations*: jobs of their own that run beside the "
             "chapters that do not need them (`wrenlib.book.book_preparations`). The heaviest "
             "explanations of chapters 06-08, 10 and 11 are preparations too, since they need only those CNNs, "
             "and so are the clips and images every job reads (chapters 01 and 02 show them). "
             "The chapters load what the preparations made from `artifacts/`.", "",
             "## This run", "",
             f"Profile `{profile}` on {log.get('device')} ({log.get('machine')}), finished {log.get('finished')}: "
             + (f"**{log['wall_seconds'] / 60:.1f} min** of wall time for {_count(len(chapters), 'chapter')} and "
                f"{_count(len(preparations), 'preparation')}, up to {log['jobs']} side by side (`wrenlib execute --jobs`; "
                f"their own times add up to {total / 60:.1f} min)." if log.get("jobs", 1) > 1 and "wall_seconds" in log
                else f"**{total / 60:.1f} min** for {_count(len(chapters), 'chapter')} and "
                     f"{_count(len(preparations), 'preparation')}.")
             + (f" The run came in {log['parts']} parts (`wrenlib execute --resume`), their wall times added."
                if log.get("parts", 1) > 1 else "")
             + (" **It was interrupted**: the jobs above are those that finished; `make execute RESUME=1` goes on."
                if log.get("interrupted") else "")
             + (" Every CNN came from the cache (none was trained), so this run leaves out the dominant cost; the "
                "kept runs below started from an empty cache."
                if any(trainings.get(name) for name in preparations)
                and not any(entry.get("trained") for entry in preparations.values()) else ""),
             ""]
    if work:
        chosen = {"backend": log.get("backend") if of_this_run(log, log.get("backend") or {}) else None,
                  "backend_mode": log.get("backend_mode")}
        lines += [backend_sentence(chosen), "", *backend_rows(chosen)]
    memory = {name: entry["peak_memory_gib"] for name, entry in work.items() if "peak_memory_gib" in entry}
    if memory:
        largest = max(memory, key=memory.get)
        lines += [f"Peak memory of a job (a chapter's kernel and worker processes, or a preparation's process; "
                  f"summed resident sizes): "
                  f"**{memory[largest]:.2f} GiB**, in `{largest}`"
                  + (f"; of the whole run, chapters side by side included: **{log['peak_memory_gib']:.2f} GiB**"
                     if "peak_memory_gib" in log else "") + ".", ""]
    if log.get("order_from"):
        lines += [f"Jobs started in the order of the longest chain of work waiting on each "
                  f"(`wrenlib.book.job_priorities`), by the times of {log['order_from']}.", ""]
    bounds = log.get("bounds")
    if bounds and log.get("wall_seconds"):
        workers = log.get("jobs", 1)
        best = max(bounds["work_seconds"] / workers, bounds["chain_seconds"])
        lines += [f"With these jobs' times, no schedule {workers} at a time could finish in less than "
                  f"**{best / 60:.1f} min**: their times add up to {bounds['work_seconds'] / 60:.1f} min "
                  f"({bounds['work_seconds'] / workers / 60:.1f} min on {workers} workers), and the longest chain "
                  f"of jobs that wait for one another, {' → '.join(bounds['chain'])}, takes "
                  f"{bounds['chain_seconds'] / 60:.1f} min. This run took {log['wall_seconds'] / 60:.1f} min, "
                  f"{log['wall_seconds'] / best - 1:.0%} more than that bound"
                  + (": a shorter run needs less work in the jobs, not a better order." if best >= 0.9 * log["wall_seconds"]
                     else ": every job lies on that chain, so no order could do better; the rest is the time between "
                          "jobs (starting each one's process and kernel)." if bounds["chain_seconds"] >= bounds["work_seconds"] - 0.05
                     else f"; a better order could save up to {(log['wall_seconds'] - best) / 60:.1f} min."), ""]
    arithmetic = training_arithmetic(preparations)
    on_gpu = not str(log.get("device", "cpu")).startswith("cpu")
    if arithmetic and on_gpu:
        seconds = sum(entry["seconds"] for entry in preparations.values() if entry.get("trained"))
        lines += [f"**The trainings' arithmetic.** The preparations trained {arithmetic['cnns']} CNNs for "
                  f"{arithmetic['epochs']} epochs in all, {arithmetic['flops'] / 1e12:.1f} TFLOP by torch's FLOP "
                  f"counter (`wrenlib.model.flops_per_image`), in {seconds:.0f} s of their jobs' time: "
                  f"{arithmetic['flops'] / seconds / 1e12:.1f} TFLOP/s.", ""]
    elif arithmetic and arithmetic["core_seconds"] > 0:
        rate = arithmetic["flops"] / arithmetic["core_seconds"] / 1e9
        cores = os.cpu_count() or 1
        text = (f"**The trainings' arithmetic.** The preparations trained {arithmetic['cnns']} CNNs for "
                f"{arithmetic['epochs']} epochs in all: {arithmetic['train_images']:,} training and "
                f"{arithmetic['validation_images']:,} validation images, {arithmetic['flops'] / 1e12:.1f} TFLOP by "
                f"torch's FLOP counter (`wrenlib.model.flops_per_image`: forward and backward for a training image, "
                f"forward for a validation one). Their jobs used {arithmetic['core_seconds']:,.0f} core-seconds of "
                f"CPU time: {rate:.0f} GFLOP per core-second")
        yardsticks = [entry["matmul_gflops_per_core"] for entry in preparations.values()
                      if entry.get("trained") and entry.get("matmul_gflops_per_core")]
        if yardsticks:
            matmul = sum(yardsticks) / len(yardsticks)
            text += (f", {rate / matmul:.0%} of what a large matrix product reached per core-second in the same "
                     f"processes right after their trainings ({matmul:.0f} GFLOP, {MATMUL_SIZE} x {MATMUL_SIZE} on one "
                     f"thread, `wrenlib.bench.matmul_gflops`)")
        text += (f". Spread over the machine's {cores} cores at that rate, the trainings alone need "
                 f"{arithmetic['core_seconds'] / cores / 60:.1f} min")
        target = TARGETS.get(profile)
        if target and target["device"] == "cpu":  # a CPU run of the full profile has no CPU target
            text += f", {arithmetic['core_seconds'] / cores / 60 / target['minutes']:.0%} of the {target['minutes']}-min target"
        lines += [text + ".", ""]
    target = TARGETS.get(profile)
    if target and total and not log.get("complete"):  # a part of the book says nothing of the whole book's time
        lines += [f"The book's targets for profile `{profile}` (under {target['minutes']} min on {target['where']}"
                  + (f", peak memory under {target['memory_gib']} GiB" if "memory_gib" in target else "")
                  + ") are not judged here: this run did not execute every chapter to the end. A complete run "
                    "(`make execute`) judges them.", ""]
    elif target and total:
        minutes = (log.get("wall_seconds") or total) / 60
        verdicts = [f"under {target['minutes']} min on {target['where']} "
                    f"({'met' if minutes < target['minutes'] else 'not met'} here: {minutes:.1f} min)"]
        if "memory_gib" in target and memory:
            run_peak = max(log.get("peak_memory_gib") or 0.0, max(memory.values()))  # no lower than a job's
            verdicts.append(f"peak memory under {target['memory_gib']} GiB "
                            f"({'met' if run_peak < target['memory_gib'] else 'not met'}: {run_peak:.2f} GiB)")
        lines += [f"The book's targets for profile `{profile}`: " + "; ".join(verdicts) + ".", ""]
    rows = [{"job": name if name in chapters else f"preparation `{name}`", "seconds": f"{entry['seconds']:.0f}",
             "share": f"{entry['seconds'] / total:.0%}", "peak memory (GiB)": memory.get(name),
             "cores busy": entry.get("cores_busy"), "CNNs it trains on an empty cache": trainings.get(name, 0)}
            for name, entry in sorted(work.items(), key=lambda item: -item[1]["seconds"])] if total else []
    lines += _markdown_table(rows, ["job", "seconds", "share", "peak memory (GiB)", "cores busy",
                                    "CNNs it trains on an empty cache"])
    if any("cores_busy" in entry for entry in work.values()):
        lines += ["", "*Cores busy* is the CPU time of the job's processes divided by its wall time: near the "
                      "machine's core count, the job is bound by arithmetic."]
    if work:
        figure_path = path.with_name("performance_chapters.png")
        timeline = all("started" in entry for entry in work.values())
        names = sorted(work, key=lambda n: (work[n]["started"], n) if timeline else (n in chapters, n))[::-1]
        colours = ["#4c72b0" if n in chapters else "#dd8452" for n in names]  # chapters blue, preparations orange
        fig, ax = plt.subplots(figsize=(8, 0.32 * len(names) + 1))
        if timeline:  # which jobs ran side by side
            starts = [work[n]["started"] for n in names]
            ax.barh(names, [work[n]["seconds"] for n in names], left=starts, color=colours)
            ax.set_xlabel("seconds into the run")
            ax.set_title(f"When each chapter (blue) and preparation (orange) ran, profile {profile}", fontsize=10)
        else:
            ax.barh(names, [work[n]["seconds"] for n in names], color=colours)
            ax.set_xlabel("execution time (s)")
            ax.set_title(f"Execution time per chapter (blue) and preparation (orange), profile {profile}",
                         fontsize=10)
        fig.tight_layout()
        fig.savefig(figure_path, dpi=90)
        plt.close(fig)
        lines += ["", f"![Execution time of each chapter and preparation]({figure_path.name})", ""]
    lines += ["", "## Stage timings", "",
              "`wrenlib bench --stages PROFILE` runs a profile's heavy stages once each, from an empty cache, "
              "through the same library calls as the chapters, and records seconds and peak memory after every "
              "stage: for the full profile, 480 x 960 images, 4,000 clips and the paper's explainer budgets. "
              "Where the CNN trains in 16-bit floats, the same CNN is trained in float32 beside it, and the last "
              "column says on how many test clips the two predict the same dialect."]
    records = sorted(Path(benchmarks).glob("stages-*.json")) if Path(benchmarks).is_dir() else []
    for record_path in records:
        record = json.loads(record_path.read_text())
        name = record["profile"]["name"]
        precision = (f", trained with `mixed_precision=\"{record['mixed_precision']}\"`"
                     if record.get("mixed_precision") else "")
        lines += ["", f"**{record['device']}** ({record['machine']}, Python {record['python']}, torch "
                      f"{record['torch']}; `{record_path.name}`), profile `{name}`{precision}:", ""]
        def percent(share: float | None) -> str | None:
            return None if share is None else f"{share:.1%}"

        stage_rows = [{"stage": s["stage"], "clips": s.get("clips"), "seconds": f"{s['seconds']:.1f}",
                       "precision": s.get("precision"), "test accuracy": percent(s.get("test_accuracy")),
                       "peak GPU memory (GiB)": s.get("peak_gpu_memory_gib"), "peak RAM (GiB)": s.get("peak_rss_gib"),
                       "agreement with 16 bits": percent(s.get("agreement_with_16_bit"))}
                      for s in record["stages"]]
        lines += _markdown_table(stage_rows, ["stage", "clips", "seconds", "precision", "test accuracy",
                                              "peak GPU memory (GiB)", "peak RAM (GiB)", "agreement with 16 bits"])
        training = next((s for s in record["stages"] if s["stage"] == STAGES[2]), None)
        reference = next((s for s in record["stages"] if s["stage"] == f"{STAGES[2]}, float32"), None)
        compared = [training, reference] if training and reference else []
        if training and training.get("precision") is None:
            lines += ["", "This record comes from before the stages named their precision and trained a float32 "
                          "twin beside a CNN trained in 16 bits: its training's precision is not recorded."]
        if compared and reference.get("agreement_with_16_bit") is not None and all(
                stage.get("seconds_per_epoch") and stage.get("test_accuracy") is not None for stage in compared):
            lines += ["", f"In {training.get('precision')} one epoch took {training.get('seconds_per_epoch')} s "
                          f"against {reference.get('seconds_per_epoch')} s in float32 "
                          f"({reference['seconds_per_epoch'] / training['seconds_per_epoch']:.1f} times as fast); "
                          f"the two CNNs reached {training.get('test_accuracy'):.1%} and "
                          f"{reference.get('test_accuracy'):.1%} on the test clips and predicted the same dialect "
                          f"for {reference['agreement_with_16_bit']:.1%} of them."]
        # the book's own training (not one in another precision, from --mixed-precision)?
        if training and record.get("mixed_precision") in (None, record["profile"].get("mixed_precision")):
            count = sum(trainings_per_job(name).values())
            lines += ["", f"One CNN took {training['seconds']:.0f} s ({training.get('epochs')} epochs of "
                          f"{training.get('seconds_per_epoch')} s). The {name} book trains {count} on an empty cache, "
                          f"about {count * training['seconds'] / 60:.0f} min of training in all; the stages above "
                          f"total {record.get('total_seconds', 0) / 60:.1f} min."]
    if not records:
        lines += ["", "No stage timings are recorded yet (`book/benchmarks/stages-*.json`)."]
    lines += _kept_runs(Path(benchmarks))
    lines += ["", "## `make bench`", ""]
    kept = sorted(Path(benchmarks).glob("bench-*/synth.json")) if Path(benchmarks).is_dir() else []
    if (Path(bench) / "synth.json").is_file():
        lines += ["On this machine (`artifacts/bench/`):", ""]
        lines += _bench_tables(Path(bench))
    else:
        lines += ["`make bench` has not been run on this machine (`artifacts/bench/` is empty); it times the "
                  "generator, the front end, a training step and every explainer side by side, measures the memory "
                  "DeepLIFT and SHAP take per image and reference, and this page "
                  "shows its table after the next `make execute`."]
    for synth in kept:
        kept_in = f"book/benchmarks/{synth.parent.name}"
        lines += ["", f"Kept in `{kept_in}` (`wrenlib bench --out {kept_in}`):", ""]
        lines += _bench_tables(synth.parent)
    backend = ([Path(bench) / "backend.json"] if (Path(bench) / "backend.json").is_file() else []) + (
        sorted(Path(benchmarks).glob("backend-*.json")) if Path(benchmarks).is_dir() else [])
    lines += ["", "### Backend settings", "",
              "The book computes deterministically (`wrenlib.set_seed`: one seed reproduces a run) and without "
              "torch's filling of new memory with NaN, a debugging aid of deterministic mode. `wrenlib bench "
              "--backend` (part of `make bench`) times a LIME batch and a training step under those settings "
              "and the others (`wrenlib.bench.BACKEND_SETTINGS`), side by side in one run, in float32 and in "
              "16 bits: what reproducibility costs on the machine. A run of the full profile on a CUDA GPU "
              "times three of them first and computes in the fastest, unless deterministic is within 10 % of it "
              "(its sentence under *This run* and *Kept runs* says which)."]
    lines += _backend_tables(backend) if backend else [
        "", "No such timing yet: `make bench` or `wrenlib bench --backend` writes one to `artifacts/bench/`."]
    path.write_text("\n".join(lines) + "\n")
