"""Executing the book: papermill runs each chapter, timings are kept, the status page is written.

``make execute`` calls :func:`execute_chapters`. An error in any cell stops the run with the
chapter's name and a non-zero exit status; papermill's partly executed copy is kept for reading.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from .bench import ChildProcessUsage, backend_sentence, machine_description, read_calibration, speedups_text
from .cache import artifacts_root, profile_dir, project_root

KEY_PACKAGES = (
    "torch", "captum", "shap", "lime", "librosa", "scikit-learn", "numpy", "scipy", "matplotlib",
    "ipywidgets", "papermill", "jupytext", "jupyter-book", "myst-nb",
)


def start_chapter(profile: str, seed: int = 0, background: str = "mixed", device: Any = None) -> tuple:
    """The first step of chapters 04-11: seed everything (:func:`wrenlib.set_seed`), look up the
    profile, choose the device, set the plots' theme and load the profile's CNN trained on the
    ``background`` set (from the cache, or trained now; chapter 03). Returns ``(profile, device,
    model, images)``: the :class:`~wrenlib.profiles.Profile`, the torch device, the model in eval
    mode and its :class:`~wrenlib.images.SpectrogramDataset`."""
    import seaborn as sns

    from .profiles import get_profile
    from .runtime import choose_device, set_seed
    from .training import load_or_train_model

    set_seed(seed)
    sizes = get_profile(profile)
    device = device or choose_device()
    sns.set_theme(style="whitegrid")
    model, _, images = load_or_train_model(profile, background=background, seed=seed, device=device, progress=False)
    return sizes, device, model, images


def chapter_sources(root: Path) -> list[Path]:
    """The chapter notebooks in reading order (``notebooks/NN_topic.ipynb``)."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour the book depends on."""
    versions = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def resolve_profile(profile: str) -> str:
    """``auto`` becomes ``full`` when the run's device is a CUDA GPU and ``quick`` otherwise
    (:func:`wrenlib.runtime.default_profile_name`); other names pass through."""
    from .profiles import get_profile
    from .runtime import default_profile_name

    name = default_profile_name() if profile == "auto" else profile
    get_profile(name)  # raises a clear error for an unknown name
    return name


# What each chapter reads that another chapter writes (its cached data, models and maps, and the
# numbers it quotes from results.json), by chapter number. ``wrenlib execute --jobs 2`` starts a
# chapter once these have finished, and the preparations that name it (:func:`book_preparations`:
# the CNNs it loads, and maps made ahead of it); a chapter not listed waits for every chapter before it.
CHAPTER_NEEDS: dict[str, tuple[str, ...]] = {
    "02": ("01",),  # the surrogate clips (and chapter 01's numbers); its images come from a preparation
    "03": ("02",),  # the spectrogram images (and the CNNs, trained as preparations)
    "04": ("02",),  # the mixed-set CNN (a preparation)
    "05": ("02",),  # the mixed-set CNN; it makes or reads chapter 04's Grad-CAM maps itself
    "06": ("02",),
    "07": ("02",),
    "08": ("04", "05"),  # the four methods' cached maps (LIME's and SHAP's from a preparation, test_maps)
    "09": ("04", "05"),  # Grad-CAM's and DeepLIFT's cached maps of every test clip
    "10": ("08",),  # chapter 08's scores (results.json), and the cached maps of chapters 04-08
    "11": ("08",),  # the adaptive temperature (results.json) and chapter 03's black-page CNN
    "12": ("03",),  # the surrogate clips it writes as recordings, and chapter 03's accuracy
}


# Chapters that never run side by side, whatever their prerequisites: 03 and 07 each time the
# paper's 480 x 960 network (its training step, the four explainers), 3-4.5 GiB of memory at the peak (quick profile);
# together they would pass the quick profile's 6 GiB, and each would time the other's work.
RUN_APART: tuple[frozenset[str], ...] = (frozenset({"03", "07"}),)


def kept_apart(job: str, running: list[str]) -> bool:
    """Whether ``job`` must wait because a chapter :data:`RUN_APART` from it is running."""
    return any(job[:2] != other[:2] and {job[:2], other[:2]} <= pair for pair in RUN_APART for other in running)


def chapter_prerequisites(chapter: str, chapters: list[str]) -> set[str]:
    """The chapters among ``chapters`` (stems, in reading order) that ``chapter`` must wait for:
    those :data:`CHAPTER_NEEDS` names, or every earlier one when it names none."""
    number = chapter[:2]
    if number in CHAPTER_NEEDS:
        return {c for c in chapters if c[:2] in CHAPTER_NEEDS[number]}
    return set(chapters[:chapters.index(chapter)])


# The seed the preparations train with: the chapters' default ``SEED`` (a test keeps them equal; a
# chapter run with another seed trains its own models when it asks for them).
PREPARATION_SEED = 0


@dataclass(frozen=True)
class Preparation:
    """Cached work that chapters ask wrenlib for, done by ``wrenlib execute`` as a job of its own
    (in a fresh worker process) so that it runs beside the chapters that do not need it: the
    CNNs, which chapter 03 would otherwise train one after the other before any later chapter
    could start. A chapter that finds the work cached loads it; one run on its own does the work."""

    name: str  # e.g. "cnn_black"
    description: str  # for the log: "the CNN trained on the black set"
    call: str  # "module:function", called with ``arguments``
    arguments: tuple[tuple[str, Any], ...]
    needs: tuple[str, ...]  # chapter numbers whose output it reads ("02": the images)
    used_by: tuple[str, ...]  # chapter numbers that wait for it
    after: tuple[str, ...] = ()  # preparations whose work it loads, when they are in the same run
    trains: int = 1  # CNNs it trains from scratch when the run finds none cached (the Performance page counts them)
    first: bool = False  # every preparation of the run that computes on a GPU waits for it (the backend calibration)
    on_gpu: bool = True  # whether it computes on the GPU, when there is one (a `first` one comes before)

    def run(self) -> None:
        """Do the work in this process (its result lands in the artifact cache)."""
        from importlib import import_module

        module, function = self.call.split(":")
        getattr(import_module(module), function)(**dict(self.arguments))


def book_preparations(profile: str, seed: int = PREPARATION_SEED) -> list[Preparation]:
    """The CNNs the book's chapters load, for ``profile`` (its stability seeds and confound
    strengths), as :class:`Preparation` jobs: the mixed, black and white sets' models (chapter 03,
    the mixed one for every later chapter too), the mixed set's from other initial weights
    (chapter 10) and the confounded sets' (chapter 11); and the explanations that need only those
    CNNs, which would otherwise wait for the chapters before them: the confounded CNNs' maps
    (:func:`wrenlib.confound.confound_maps`, chapter 11), the randomisation test
    (:func:`wrenlib.faithfulness.sanity_cascade`, the maps of the mixed set's CNN with its layers
    re-initialised, chapter 10), its stability checks (:func:`wrenlib.faithfulness.stability_maps`),
    the validation clips' maps (:func:`wrenlib.explain.validation_explanations`, chapter 08) and
    LIME's and SHAP's maps of the explained test clips (:func:`wrenlib.explain.explanations_of_test_clips`,
    chapters 06-08), so that chapter 08 waits for those maps and not for the rest of chapters 06
    and 07. And first the data they all read, which chapters 01 and 02 would otherwise make
    before any of them could start: the surrogate clips (on the CPU's cores) and their
    spectrogram images."""
    from .profiles import get_profile

    sizes = get_profile(profile)
    common = (("profile", profile), ("seed", seed), ("progress", False))
    train = "wrenlib.training:load_or_train_model"
    users = {"mixed": ("03", "04", "05", "06", "07", "08", "09", "10"), "black": ("03", "11"),
             "white": ("03",)}
    out = [Preparation(f"cnn_{background}", f"the CNN trained on the {background} set", train,
                       (*common, ("background", background)), (), users[background], ("images",))
           for background in ("mixed", "black", "white")]
    out += [Preparation(f"cnn_mixed_init{init}", f"the mixed set's CNN from initial weights {init}", train,
                        (*common, ("background", "mixed"), ("init_seed", init)), (), ("10",), ("images",))
            for init in range(seed + 1, seed + sizes.stability_seeds)]
    out += [Preparation(f"cnn_confound{round(strength * 100):03d}", f"the CNN trained with the confound at "
                        f"strength {strength:g}", "wrenlib.confound:load_or_train_confounded",
                        (*common, ("strength", float(strength)), ("background", "black")), (), ("11",),
                        ("surrogate",))
            for strength in sizes.confound_strengths if strength > 0]
    confounded = [p.name for p in out if p.name.startswith("cnn_confound")]
    out.append(Preparation("confound_maps", "chapter 11's maps (every confound strength's CNN explains the same clips)",
                           "wrenlib.confound:confound_maps", (*common, ("background", "black")), (), ("11",),
                           ("surrogate", "cnn_black", *confounded), trains=0))
    out.append(Preparation("sanity_cascade", "chapter 10's randomisation test (the maps of randomised CNNs)",
                           "wrenlib.faithfulness:sanity_cascade", common, (), ("10",), ("images", "cnn_mixed"),
                           trains=0))
    out.append(Preparation("stability_maps", "chapter 10's stability checks (noisy clips, other seeds, other CNNs)",
                           "wrenlib.faithfulness:stability_maps", common, (), ("10",),
                           ("images", "cnn_mixed", *[p.name for p in out if p.name.startswith("cnn_mixed_init")]),
                           trains=0))
    out.append(Preparation("validation_maps", "chapter 08's maps of the validation clips (they choose the "
                           "adaptive ensemble's temperature)", "wrenlib.explain:validation_explanations", common,
                           (), ("08", "10"), ("images", "cnn_mixed"), trains=0))
    out.append(Preparation("test_maps", "LIME's and SHAP's maps of the explained test clips (chapters 06 and 07 "
                           "show them, chapter 08 scores them)", "wrenlib.explain:explanations_of_test_clips", common,
                           (), ("06", "07", "08"), ("images", "cnn_mixed"), trains=0))
    # the data: every job above reads it (a preparation waits only for those whose chapters are its own)
    readers = tuple(sorted({number for p in out for number in p.used_by}))
    images = Preparation("images", "the surrogate clips' spectrogram images (chapter 02 shows them)",
                         "wrenlib.images:load_spectrogram_dataset", (("profile", profile), ("seed", seed)), (),
                         tuple(sorted({"02", *(n for p in out if "images" in p.after for n in p.used_by)})),
                         ("surrogate",), trains=0)
    surrogate = Preparation("surrogate", "the surrogate clips (chapter 01 shows them; synthesised on the CPU's cores)",
                            "wrenlib.dataset:load_surrogate_dataset", (("profile", profile), ("seed", seed)), (),
                            tuple(sorted({"01", *images.used_by, *readers})), trains=0, on_gpu=False)
    return [surrogate, images, *out]


# The job that picks a run's backend mode on a CUDA GPU (wrenlib.bench.calibrate_backend), and the
# chapters that compute nothing on a GPU, which need not wait for it: chapter 01 synthesises the
# clips on the CPU's cores while the GPU times the modes
CALIBRATION = "backend_calibration"
CPU_CHAPTERS = ("01",)


def run_backend_mode(profile: str, device_type: str) -> str:
    """The backend mode (:data:`wrenlib.runtime.BACKEND_MODES`) a run's jobs compute in until a
    calibration says otherwise: ``WRENBOOK_BACKEND`` where the caller set it; on a CUDA GPU the
    profile's ``gpu_backend`` unless that is "fastest" (then deterministic until calibrated); on
    any other device deterministic (the quick profile on a CPU reproduces its numbers)."""
    from .profiles import get_profile
    from .runtime import BACKEND_VARIABLE, backend_mode

    if os.environ.get(BACKEND_VARIABLE, "").strip():
        return backend_mode()  # a bad value is named
    wanted = get_profile(profile).gpu_backend
    return wanted if device_type == "cuda" and wanted != "fastest" else "deterministic"


def backend_calibration(profile: str, device_type: str, numbers: set[str]) -> Preparation | None:
    """The job that times the backend modes on the run's GPU and chooses one
    (:func:`wrenlib.bench.calibrate_backend`), for a run of chapters ``numbers`` of ``profile`` on
    a ``device_type`` machine: only on a CUDA GPU, for a profile whose ``gpu_backend`` is
    "fastest", when the caller has not named the mode in ``WRENBOOK_BACKEND``, and with a chapter
    that computes there. Every chapter but :data:`CPU_CHAPTERS` and every preparation waits for it."""
    from .profiles import get_profile
    from .runtime import BACKEND_VARIABLE

    users = tuple(sorted(n for n in numbers if n not in CPU_CHAPTERS))
    if (device_type != "cuda" or get_profile(profile).gpu_backend != "fastest" or not users
            or os.environ.get(BACKEND_VARIABLE, "").strip()):
        return None
    return Preparation(CALIBRATION, "the fastest of torch's backend modes on this GPU",
                       "wrenlib.bench:calibrate_backend", (("profile", profile),), (), users, trains=0, first=True)


def _measured(work, usage: ChildProcessUsage) -> dict[str, Any]:
    """Run ``work()`` under ``usage``; return its seconds, peak memory, CPU time (as cores busy)
    and error, if any (the last line of its message: papermill's names the failing cell)."""
    started = time.perf_counter()
    error = None
    try:
        with usage:
            work()
    except Exception as failure:
        text = str(failure).strip()
        error = f"{type(failure).__name__}: {text.splitlines()[-1] if text else ''}"
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_memory_gib": round(usage.peak_gib, 2),
            "cores_busy": round(usage.cpu_seconds / seconds, 2) if seconds > 0 else None, "error": error}


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Within: the environment variable ``name`` is ``value``; afterwards as it was."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _run_preparation(preparation: Preparation, backend: str = "deterministic") -> dict[str, Any]:
    """Do one preparation in this (worker) process and measure it (:func:`_measured`), with the
    trainings it did (:data:`wrenlib.training.TRAINED`; none when its CNN was cached). It starts
    as a chapter does, with :func:`wrenlib.set_seed`: the run's torch threads, ``backend`` mode
    (deterministic algorithms, unless the run chose another) and share of a GPU hold for the maps
    a preparation makes from cached CNNs too."""
    from .bench import matmul_gflops
    from .cache import MADE
    from .runtime import BACKEND_VARIABLE, choose_device, set_seed, stop_worker_processes
    from .training import TRAINED

    with _environment(BACKEND_VARIABLE, backend):  # for set_seed here and in what this job starts
        set_seed(int(dict(preparation.arguments).get("seed", PREPARATION_SEED)))
        before, made_before = len(TRAINED), len(MADE)
        outcome = _measured(preparation.run, ChildProcessUsage(include_self=True))
    stop_worker_processes()  # else this worker would outlive its job by joblib's idle 5 minutes
    outcome["trained"] = TRAINED[before:]
    outcome["made"] = MADE[made_before:]  # empty: it found all its work in the cache
    if outcome["trained"] and choose_device().type == "cpu":
        # the yardstick of the trainings' arithmetic (Performance page), taken in the same conditions
        outcome["matmul_gflops_per_core"] = round(matmul_gflops(threads=1), 1)
    return outcome


# jobs side by side on one CUDA GPU, at most, each with GPU_JOB_CORES of the CPU's cores and
# GPU_JOB_MEMORY_GIB of the GPU's memory or more (in the full profile's runs on an H200 kept in
# book/benchmarks/jobs-full-cuda-partial.json, four jobs at a time held 104 GiB of its 140 together
# at the most, and 66 and 101 GiB in the two calls of the run before, each job under its cap of
# 23.7 %; read with nvidia-smi every 2 s, the record itself keeps RAM only)
GPU_JOBS = 4
GPU_JOB_CORES = 4
GPU_JOB_MEMORY_GIB = 10


def default_jobs() -> int:
    """Jobs run side by side: on a CUDA GPU up to :data:`GPU_JOBS`, one per :data:`GPU_JOB_CORES`
    usable cores and per :data:`GPU_JOB_MEMORY_GIB` of the GPU's memory (a training at batch 32
    leaves most of a large GPU idle, and each job's CPU work needs cores of its own; each job gets
    an equal share of the GPU's memory, :func:`gpu_memory_share_for_run`), else two when the CPU
    has two cores or more (one chapter's plotting and Python overlap the other's arithmetic)."""
    import torch

    from .runtime import choose_device, usable_cores

    device = choose_device()  # WRENBOOK_DEVICE=cpu on a GPU machine: the CPU's rule
    if device.type == "cuda":
        memory_gib = torch.cuda.get_device_properties(device).total_memory / 2**30
        return max(1, min(GPU_JOBS, usable_cores() // GPU_JOB_CORES, int(memory_gib // GPU_JOB_MEMORY_GIB)))
    return min(2, usable_cores())


# the part of a shared GPU's memory that torch's allocators of the jobs may hold together: the rest
# is left for what the cap does not count (each process's CUDA context, cuDNN's and cuBLAS's
# workspaces)
GPU_SHARED_PART = 0.95


def gpu_memory_share_for_run(jobs: int, device_type: str) -> str | None:
    """The value of ``WRENBOOK_GPU_MEMORY_SHARE`` for a run of ``jobs`` side by side on a
    ``device_type`` machine: each job's equal share of :data:`GPU_SHARED_PART` of a GPU's memory,
    rounded down, or ``None`` where there is nothing to share (a CPU, one job)."""
    if device_type != "cuda" or jobs < 2:
        return None
    return f"{math.floor(GPU_SHARED_PART / jobs * 1000) / 1000:g}"


def run_torch_threads(profile: str, jobs: int) -> int:
    """torch's CPU threads in each job of a run of ``profile`` with ``jobs`` side by side: the
    profile's fixed count (the quick profile's 2, for exact reproduction), or, where it has none
    (the full profile), each job's share of the cores this process may use, and never fewer than
    the quick profile's 2 where there are 2 (so that a job left alone keeps both busy)."""
    from .profiles import get_profile
    from .runtime import DEFAULT_TORCH_THREADS, usable_cores

    fixed = get_profile(profile).torch_threads
    cores = usable_cores()
    return fixed or max(min(DEFAULT_TORCH_THREADS, cores), cores // max(1, jobs))


@contextmanager
def run_threads(profile: str, jobs: int, device_type: str = "cpu") -> Iterator[int]:
    """Within: ``WRENBOOK_TORCH_THREADS`` says :func:`run_torch_threads` and, on a GPU shared by
    ``jobs`` side by side, ``WRENBOOK_GPU_MEMORY_SHARE`` says :func:`gpu_memory_share_for_run`
    (each unless the caller set it), so that the chapters' kernels and the preparations'
    processes, which inherit them, give torch that many threads and that share of the GPU, and
    this process's torch has the threads too (the device the run's log names says so).
    Afterwards the caller's variables and thread count are back."""
    import torch

    from .runtime import GPU_SHARE_VARIABLE, TORCH_THREADS_VARIABLE, torch_threads_for_run

    settings = {TORCH_THREADS_VARIABLE: str(run_torch_threads(profile, jobs)),
                GPU_SHARE_VARIABLE: gpu_memory_share_for_run(jobs, device_type)}
    before, threads_before = {name: os.environ.get(name) for name in settings}, torch.get_num_threads()
    for name, value in settings.items():
        if value is not None:
            os.environ.setdefault(name, value)
    try:
        threads = torch_threads_for_run()
        torch.set_num_threads(threads)
        yield threads
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        torch.set_num_threads(threads_before)


def _run_chapter(chapter: Path, target: Path, profile: str, kernel: str,
                 backend: str = "deterministic") -> dict[str, Any]:
    """Execute one chapter with papermill (in a worker process) and measure its kernel and the
    kernel's worker processes (:func:`_measured`); the kernel computes in the ``backend`` mode
    (its ``wrenlib.set_seed`` reads it from the environment it inherits)."""
    import shutil
    import tempfile

    import papermill
    from traitlets.config import Config

    from .runtime import BACKEND_VARIABLE

    # The kernel talks to papermill over local sockets, not TCP ports: nothing listens on the
    # network, and ipykernel has no plain-text-over-TCP warning to print for every chapter
    # (Windows has no such sockets). Each kernel's sockets lie in a folder of their own: by
    # default they are named after the working directory, and two chapters side by side took
    # each other's (papermill then fails on the messages' signatures).
    sockets = Path(tempfile.mkdtemp(prefix="wrenbook-kernel-")) if os.name == "posix" else None
    transport = Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}} if sockets else {})
    try:
        # the kernel inherits the mode from this worker, not from the run's process: a worker may
        # have started before the run's calibration chose it
        with _environment(BACKEND_VARIABLE, backend):
            return _measured(lambda: papermill.execute_notebook(
                str(chapter), str(target), parameters={"PROFILE": profile}, kernel_name=kernel, language="python",
                cwd=str(chapter.parent), progress_bar=False, config=transport), ChildProcessUsage())
    finally:
        if sockets:
            shutil.rmtree(sockets, ignore_errors=True)


def job_priorities(prerequisites: dict[str, set[str]], seconds: dict[str, float],
                   default_seconds: float = 60.0) -> dict[str, float]:
    """Each job's priority when a worker is free: its own expected seconds plus the longest chain
    of expected seconds of the jobs that wait for it, directly or not (a critical-path list
    schedule: the work with most waiting on it starts first). ``seconds`` are the last run's
    times; a job without one counts ``default_seconds``."""
    waiting_on: dict[str, list[str]] = {job: [] for job in prerequisites}
    for job, needs in prerequisites.items():
        for need in needs:
            waiting_on.setdefault(need, []).append(job)
    priority: dict[str, float] = {}

    def chain(job: str) -> float:
        if job not in priority:
            priority[job] = seconds.get(job, default_seconds) + max((chain(j) for j in waiting_on.get(job, ())),
                                                                   default=0.0)
        return priority[job]

    for job in prerequisites:
        chain(job)
    return priority


def critical_path(prerequisites: dict[str, set[str]], seconds: dict[str, float]) -> tuple[float, list[str]]:
    """The longest chain of jobs that wait for one another, and its seconds: with any number of
    workers, a run takes at least that long (the Performance page compares it with the run)."""
    priority = job_priorities(prerequisites, seconds, default_seconds=0.0)
    if not priority:
        return 0.0, []
    path = [max((job for job in prerequisites if not prerequisites[job]), key=priority.get)]
    while True:
        after = [job for job, needs in prerequisites.items() if path[-1] in needs]
        if not after:
            return priority[path[0]], path
        path.append(max(after, key=priority.get))


def job_times_path(root: Path, profile: str, device_type: str, partial: bool = False) -> Path:
    """Where a checkout keeps the seconds per job of one complete run of ``profile`` on a
    ``device_type`` ("cpu" or "cuda") machine: ``book/benchmarks/jobs-<profile>-<device>.json``,
    written by ``wrenlib bench --job-times`` (:func:`save_job_times`); a partial record goes beside
    it in ``...-partial.json``, which a run takes its jobs' expected times and peaks from only where
    no complete record is kept (:func:`expected_from_runs`)."""
    return root / "book" / "benchmarks" / f"jobs-{profile}-{device_type}{'-partial' if partial else ''}.json"


def record_cut_off(log: dict[str, Any], run_id: str, seconds: dict[str, float]) -> None:
    """Keep in ``log["cut_off"]`` how long each job an interruption stopped had run (``seconds``),
    the longest of the run's parts: a lower bound on its time that a kept partial record passes
    on (:func:`save_job_times`) to order a later run by (:func:`expected_from_runs`). Entries of
    an earlier run are dropped."""
    cut = {job: entry for job, entry in log.get("cut_off", {}).items() if entry.get("run") == run_id}
    for job, elapsed in seconds.items():
        cut[job] = {"seconds": round(max(elapsed, cut.get(job, {}).get("seconds", 0.0)), 1), "run": run_id}
    log["cut_off"] = cut


def run_complete(log: dict[str, Any], root: Path) -> bool:
    """Whether the logged run executed every chapter of the book (``root``) and finished every job
    it started (its parts together, when resumed): only such a run measures the book's time."""
    return ("bounds" in log and not log.get("interrupted")
            and {chapter.stem for chapter in chapter_sources(root)} <= set(log.get("run_jobs", ())))


def _wall_so_far(log: dict[str, Any]) -> float:
    """The wall time of the log's run so far, which a resumed part adds its own to: the log's
    ``wall_seconds`` where the run wrote it, else (a part killed outright by older code, which
    wrote it only at the end, leaving an earlier run's value) the end of the run's last job."""
    run_id = str(log.get("run_id") or "")
    ends = [entry["started"] + entry["seconds"] for kind in ("chapters", "preparations")
            for entry in log.get(kind, {}).values() if entry.get("run") == run_id and "started" in entry]
    last_end = max(ends, default=0.0)
    finished = str(log.get("finished") or "")
    of_this_run = bool(finished) and finished[:16] >= run_id[:16].replace("T", " ")  # minutes, both in UTC
    return max(float(log.get("wall_seconds") or 0.0), last_end) if of_this_run else last_end


def save_job_times(root: Path, profile: str, partial: bool = False) -> Path:
    """Keep the last complete run's seconds per job (``artifacts/<profile>/execution.json``) in
    :func:`job_times_path`, for the runs that have no log of their own (a fresh clone, CI) to
    order their jobs by, and for the Performance page; raise ``ValueError`` when there is no
    complete run to take them from. ``partial`` instead keeps every job that finished in the
    checkout's runs of the profile, also of runs of only some chapters (a CPU's evidence for the
    full profile, which takes it many hours), in a record of its own marked as such."""
    log_path = profile_dir(profile) / "execution.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    finished = [(job, entry) for kind in ("chapters", "preparations") for job, entry in sorted(log.get(kind, {}).items())
                if entry.get("ok")]
    # the last run had every chapter of the book and finished every job it had ("bounds")
    complete = run_complete(log, root)
    if not partial:  # only the last run's jobs: an earlier run's may be of other code
        finished = [(job, entry) for job, entry in finished if job in log.get("run_jobs", ())]
    if not (complete or (partial and finished)):
        raise ValueError(f"{log_path} holds no {'finished job' if partial else 'complete run'} of the profile "
                         f"{profile!r}: run `make execute` first")
    seconds = {job: round(entry["seconds"], 1) for job, entry in finished}
    peaks = {job: entry["peak_memory_gib"] for job, entry in finished if "peak_memory_gib" in entry}
    device_type = "cuda" if str(log.get("device", "")).startswith("cuda") else "cpu"
    path = job_times_path(root, profile, device_type, partial)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"profile": profile, "device": log.get("device"), "machine": log.get("machine"),
              "finished": log.get("finished"), "jobs": log.get("jobs"), "wall_seconds": log.get("wall_seconds"),
              "parts": log.get("parts", 1), "complete": not partial, "seconds": seconds, "peak_memory_gib": peaks}
    # the mode the run computed in, and its calibration where it had one (the Performance page shows it)
    calibrated = log.get("backend") if of_this_run(log, log.get("backend") or {}) else None
    record["backend"] = ({key: calibrated[key] for key in ("mode", "speedups", "margin", "rows") if key in calibrated}
                         if calibrated else {"mode": log.get("backend_mode", "deterministic")})
    cut_off = {job: entry["seconds"] for job, entry in sorted(log.get("cut_off", {}).items()) if job not in seconds}
    if partial and cut_off:  # jobs the run stopped: at least this long
        record["cut_off_seconds"] = cut_off
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def expected_from_runs(root: Path, profile: str, device_type: str, log: dict[str, Any],
                       field: str = "seconds") -> tuple[dict[str, float], str]:
    """Each job's expected ``field`` ("seconds" for :func:`job_priorities`, "peak_memory_gib" for
    :func:`over_memory_budget`): this checkout's earlier runs (``log``), else the run kept in
    :func:`job_times_path` (a partial record where no complete one is kept); for seconds, a job
    that neither has takes its time in another kept record, scaled by how the jobs both records
    have compare (:func:`scaled_from_other_runs`: a first GPU run of chapters its partial record
    lacks, ordered by their CPU times, instead of 60 s each); and where they came from, in words."""
    path = job_times_path(root, profile, device_type)
    if not path.is_file():
        path = job_times_path(root, profile, device_type, partial=True)
    try:
        kept = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):  # only a hint: an unreadable one is no hint
        kept = {}
    last = {name: entry[field] for kind in ("chapters", "preparations")
            for name, entry in log.get(kind, {}).items() if field in entry}
    kept_text = f"the run kept in `{path.relative_to(root)}` ({kept.get('device')}, {kept.get('finished')})"
    if last:
        source = "this checkout's earlier runs" + (f" (for jobs they lack, {kept_text})"
                                                    if set(kept.get(field, {})) - set(last) else "")
    else:
        source = kept_text if kept.get(field) else "no earlier run (60 s per job)"
    expected = {**kept.get(field, {}), **last}
    if field == "seconds" and expected:
        scaled, other = scaled_from_other_runs(root, expected, exclude=path)
        if scaled:
            expected = {**scaled, **expected}
            source += f"; for jobs neither has, {other}"
        cut_off = {**kept.get("cut_off_seconds", {}),
                   **{job: entry["seconds"] for job, entry in log.get("cut_off", {}).items()}}
        raised = sorted(job for job, least in cut_off.items() if job not in last and least > expected.get(job, 0.0))
        for job in raised:
            expected[job] = cut_off[job]
        if raised:
            source += f"; at least the time a run had given them before it was cut off: {', '.join(raised)}"
    return expected, source


def scaled_from_other_runs(root: Path, seconds: dict[str, float], exclude: Path | None = None,
                           least_shared: int = 3) -> tuple[dict[str, float], str]:
    """Expected seconds for jobs that ``seconds`` lacks, from the first complete record in
    ``book/benchmarks/jobs-*.json`` (other than ``exclude``) that has them, times the median ratio
    of ``seconds`` to that record over the jobs both have (at least ``least_shared``): a GPU's
    chapters are faster than a CPU's, but the long ones stay long. Returns them and their source
    in words (nothing when no record serves)."""
    for record_path in sorted((root / "book" / "benchmarks").glob("jobs-*.json")):
        if exclude is not None and record_path == exclude:
            continue
        try:
            record = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        other = record.get("seconds", {})
        shared = [job for job in other if job in seconds and other[job] > 0]
        missing = [job for job in other if job not in seconds]
        if record.get("complete") is False or len(shared) < least_shared or not missing:
            continue
        ratio = statistics.median(seconds[job] / other[job] for job in shared)
        return ({job: round(other[job] * ratio, 1) for job in missing},
                f"`{record_path.relative_to(root)}` ({record.get('device')}) times {ratio:.2g}, the median ratio "
                f"over the {len(shared)} jobs both have")
    return {}, ""


def memory_budget_gib(profile: str) -> float:
    """What the jobs running side by side may expect to hold together: the profile's memory
    target (:data:`wrenlib.bench.TARGETS`) less 0.5 GiB for the worker processes that run them
    (outside a job's own peak). A profile without a target (the full one) may use 80 % of the
    machine's memory, less the same 0.5 GiB: each of its trainings peaked at 10-11 GiB on a CPU,
    and a GPU machine runs several jobs side by side too (:func:`default_jobs`). The budget is
    the machine's memory (RAM) on either; a GPU's own memory is shared out by
    :func:`gpu_memory_share_for_run` instead."""
    from .bench import TARGETS

    target = TARGETS.get(profile, {}).get("memory_gib")
    if target is not None:
        return target - 0.5
    import psutil

    return 0.8 * psutil.virtual_memory().total / 2**30 - 0.5


def over_memory_budget(job: str, running: list[str], peaks: dict[str, float], budget: float | None) -> bool:
    """Whether ``job`` must wait because its expected peak memory and the running jobs' would pass
    ``budget`` together (a job with nothing beside it always starts; a job never measured counts 0)."""
    if budget is None or not running:
        return False
    return peaks.get(job, 0.0) + sum(peaks.get(other, 0.0) for other in running) > budget


def job_graph(stems: list[str], preparations: list[Preparation]) -> dict[str, set[str]]:
    """What each job of a run waits for (chapters by stem, in reading order; preparations by
    name): a preparation the chapters it reads (``needs``), the preparations of the run it
    loads (``after``) and, when it computes ``on_gpu``, those that come ``first``, a chapter those of
    :func:`chapter_prerequisites` and the preparations it uses."""
    names = {p.name for p in preparations}
    first = {p.name for p in preparations if p.first}
    prerequisites = {p.name: {c for c in stems if c[:2] in p.needs} | (set(p.after) & names)
                     | (first if p.on_gpu and not p.first else set()) for p in preparations}
    for stem in stems:
        prerequisites[stem] = chapter_prerequisites(stem, stems) | {p.name for p in preparations
                                                                    if stem[:2] in p.used_by}
    return prerequisites


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM (a batch scheduler's time limit) interrupt this process like Ctrl-C; return
    the handler it replaced (None where signals cannot be set: not the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _stop_child_processes(grace_seconds: float = 5.0) -> None:
    """Terminate the job workers this process spawned and their children (Jupyter kernels), then
    kill those still there after ``grace_seconds``; multiprocessing's resource tracker stays."""
    import psutil

    children = []
    for worker in psutil.Process().children():
        try:
            if any("spawn_main" in part for part in worker.cmdline()):
                children += [worker, *worker.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace_seconds)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def execute_chapters(profile: str = "auto", kernel: str = "wrenbook",
                     only: list[str] | None = None, root: Path | None = None, jobs: int | None = None,
                     preparations: list[Preparation] | None = None, keep_going: bool = False,
                     resume: bool = False, calibration: Preparation | str | None = "auto") -> int:
    """Run every chapter (or those named in ``only``) with papermill; return an exit status.

    The data every job reads, the CNNs the chapters load, and the maps of chapters 06-08, 10 and
    11 that need only those CNNs, are made first as :class:`Preparation` jobs
    (:func:`book_preparations`, or ``preparations``), those that the chapters run need. With
    ``jobs`` above 1, the jobs whose prerequisites (:data:`CHAPTER_NEEDS`, a preparation's
    ``needs``, ``after`` and ``used_by``) have finished run side by side, chapters each in its own
    kernel and preparations each in a fresh process, the longest chain of waiting work first
    (:func:`job_priorities`), never two chapters :data:`RUN_APART`, and never two whose expected
    peak memory would pass the profile's budget together (:func:`over_memory_budget`). On a CPU the
    numbers are the same as in a run one at a time; on a shared GPU, DeepLIFT's batches and SHAP's
    reference groups follow each job's share of its memory (:func:`gpu_memory_share_for_run`), so
    their maps may differ in the last digits. Interrupted (Ctrl-C, a time limit's SIGINT, a
    scheduler's SIGTERM), it stops the running jobs, keeps those that finished and the run's wall
    time in the log and returns 130. After a failure no new job starts, unless ``keep_going``:
    then every job that needs nothing that failed still runs (a long GPU run keeps what it can);
    the jobs left out are named either way. ``resume`` goes on with the log's last run: it leaves
    out the chapters and preparations that run finished (a run cut short, on a GPU lent for a
    while or the full profile on a CPU, goes on where it stopped) and adds its wall time.

    The jobs compute in torch's deterministic mode, or the one :func:`run_backend_mode` names.
    ``calibration`` is the job that may choose another first ("auto": :func:`backend_calibration`,
    on a CUDA GPU for a profile whose ``gpu_backend`` is "fastest"; ``None``: none): every job but
    the chapters that compute on the CPU waits for it, then computes in the mode it chose
    (``backend.json`` in the profile's artifacts; the log keeps it). Should it fail, the run goes
    on deterministically. A resumed run keeps the mode its first part chose."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from .runtime import choose_device, describe_device, gpu_memory_share, torch_threads_for_run

    root = root or project_root(Path(__file__).resolve().parent)
    if root is None:
        print("wrenlib execute: error: run this from a wrenbook checkout", file=sys.stderr)
        return 2
    try:
        profile = resolve_profile(profile)
    except ValueError as error:
        print(f"wrenlib execute: error: {error}", file=sys.stderr)
        return 2
    chapters = chapter_sources(root)
    if only:
        chapters = [c for c in chapters if c.stem in only or c.name in only]
        missing = set(only) - {c.stem for c in chapters} - {c.name for c in chapters}
        if missing:
            print(f"wrenlib execute: error: no chapter named {', '.join(sorted(missing))}",
                  file=sys.stderr)
            return 2
    log_path = profile_dir(profile) / "execution.json"
    try:  # the runs before this one (it keeps their jobs' entries; a resumed run goes on with the last)
        log: dict[str, Any] = json.loads(log_path.read_text()) if log_path.is_file() else {}
    except json.JSONDecodeError:
        log = {}
    log.setdefault("chapters", {})
    log.setdefault("preparations", {})
    resumed: str | None = None  # the id of the run this one goes on with
    prepared: set[str] = set()  # the preparations that run finished: not done again
    if resume:
        resumed = log.get("run_id")
        done, prepared = ({name for name, entry in log[kind].items()
                           if entry.get("ok") and resumed is not None and entry.get("run") == resumed}
                          for kind in ("chapters", "preparations"))
        skipped = [c.stem for c in chapters if c.stem in done]
        chapters = [c for c in chapters if c.stem not in done]
        print(f"wrenlib execute: resuming the run started {str(resumed)[:19].replace('T', ' ')} UTC: "
              f"{len(skipped)} chapter(s) it "
              f"executed are left as they are" + (f" ({', '.join(skipped)})" if skipped else "")
              if resumed else "wrenlib execute: no earlier run to resume: every chapter runs", flush=True)
        if not chapters:
            print("wrenlib execute: nothing left to run", flush=True)
            return 0
    stems = [c.stem for c in chapters]
    numbers = {stem[:2] for stem in stems}
    every_preparation = book_preparations(profile) if preparations is None else preparations
    preparations = [p for p in every_preparation if numbers & set(p.used_by) and p.name not in prepared]
    jobs = max(1, int(jobs or default_jobs()))
    device_type = choose_device().type
    try:  # a bad WRENBOOK_TORCH_THREADS, WRENBOOK_GPU_MEMORY_SHARE or WRENBOOK_BACKEND is named before anything runs
        torch_threads_for_run()
        gpu_memory_share()
        backend = run_backend_mode(profile, device_type)
    except ValueError as error:
        print(f"wrenlib execute: error: {error}", file=sys.stderr)
        return 2
    if calibration == "auto":
        calibration = backend_calibration(profile, device_type, {c.stem[:2] for c in chapter_sources(root)})
    if calibration is not None:
        every_preparation = [calibration, *every_preparation]
        chosen = log.get("backend", {})
        if resumed is not None and chosen.get("run") == resumed:  # its first part chose the mode
            backend = chosen["mode"]
        elif numbers & set(calibration.used_by):
            preparations = [calibration, *preparations]
    # every chapter's and preparation's set_seed gives torch the run's threads (and share of a GPU);
    # the caller's settings come back afterwards
    with run_threads(profile, jobs, device_type):
        out_dir = root / "book" / "chapters"
        out_dir.mkdir(parents=True, exist_ok=True)
        share = gpu_memory_share() if device_type == "cuda" else 1.0  # the run's, or the caller's own
        print(f"Executing {len(chapters)} chapter(s) and {len(preparations)} preparation(s) with profile {profile!r} "
              f"on {describe_device()}" + (f", up to {jobs} side by side" if jobs > 1 else "")
              + (f", each with {share:.1%} of the GPU's memory" if share < 1 else ""), flush=True)
        os.environ.setdefault("TQDM_DISABLE", "1")  # no progress widgets in the rendered pages
        # torch's OpenMP threads sleep when they wait instead of spinning: with two kernels on two
        # cores, spinning threads steal the cores from the other kernel's work (a training step took
        # twice as long side by side as one after the other); the thread count, and so every number,
        # stays the same
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        last_seconds, log["order_from"] = expected_from_runs(root, profile, device_type, log)
        peaks, _ = expected_from_runs(root, profile, device_type, log, "peak_memory_gib")
        budget = memory_budget_gib(profile)
        prerequisites = job_graph(stems, preparations)
        log.pop("bounds", None)  # an earlier run's, written again when every job of this one has finished
        if resumed is None:  # a new run: its id marks its jobs' entries (the log keeps earlier runs' too)
            log.update(run_id=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), parts=1,
                       run_jobs=sorted(prerequisites))
            for earlier in ("wall_seconds", "finished"):  # the last run's: this one writes its own
                log.pop(earlier, None)
            log.pop("backend", None)  # an earlier run's choice
            earlier_wall, earlier_peak = 0.0, 0.0
        else:  # this part's jobs join the run's; its wall time adds to the parts' before it
            jobs_of_the_run = set(log.get("run_jobs", ())) | set(prerequisites)
            log.update(parts=log.get("parts", 1) + 1, run_jobs=sorted(jobs_of_the_run))
            earlier_wall = _wall_so_far(log)
            earlier_peak = float(log.get("peak_memory_gib") or 0.0)  # the run's peak is the parts' highest
        run_id = log["run_id"]
        # where and how the run computes, in the log from its start: a run killed outright (no
        # handler runs) still says so in a partial record of the jobs it finished
        machine = machine_description()
        log.update(profile=profile, device=machine["device"], machine=machine["machine"], jobs=jobs)
        priority = job_priorities(prerequisites, last_seconds)
        order = [p.name for p in preparations] + stems
        work = {**{p.name: p for p in preparations}, **{c.stem: c for c in chapters}}
        waiting = sorted(order, key=lambda job: (-priority[job], order.index(job)))
        finished: set[str] = set()
        status = 0
        run_started = time.perf_counter()
        started_at: dict[str, float] = {}

        log["backend_mode"] = backend

        def finish(job: str, outcome: dict[str, Any]) -> None:
            nonlocal status, backend
            entry = {key: outcome[key] for key in ("seconds", "peak_memory_gib", "cores_busy")}
            # seconds into the run; a resumed run's parts lie end to end (the time between them not counted)
            entry["started"] = round(earlier_wall + started_at[job], 1)
            entry["run"] = run_id
            if calibration is not None and job == calibration.name:
                log["preparations"][job] = {**entry, "ok": outcome["error"] is None,
                                            "description": calibration.description, "trained": []}
                report: dict[str, Any] = {}
                if outcome["error"] is None:
                    try:
                        report = read_calibration(profile_dir(profile))
                    except (OSError, ValueError) as error:
                        outcome["error"] = f"{type(error).__name__}: {error}"
                if outcome["error"] is not None:  # the run goes on in the mode it had
                    log["preparations"][job]["ok"] = False
                    print(f"wrenlib execute: the backend calibration failed after {outcome['seconds']:.0f} s: "
                          f"{outcome['error']}; the run computes {backend}", file=sys.stderr)
                else:
                    backend = report["mode"]
                    log["backend"] = {"run": run_id, "mode": backend, "speedups": report.get("speedups"),
                                      "margin": report.get("margin"), "rows": report.get("rows")}
                    print(f"  {job} done in {outcome['seconds']:.1f} s: the run computes {backend} "
                          f"({speedups_text(report.get('speedups') or {})})", flush=True)
                log["backend_mode"] = backend
                finished.add(job)
                return
            if isinstance(work[job], Preparation):
                log["preparations"][job] = {**entry, "ok": outcome["error"] is None,
                                            "description": work[job].description, "trained": outcome["trained"],
                                            "made": outcome.get("made", [])}
                if "matmul_gflops_per_core" in outcome:
                    log["preparations"][job]["matmul_gflops_per_core"] = outcome["matmul_gflops_per_core"]
                if outcome["error"] is not None:
                    print(f"wrenlib execute: preparation {job} ({work[job].description}) failed after "
                          f"{outcome['seconds']:.0f} s: {outcome['error']}", file=sys.stderr)
                    status = 1
                    return
            else:
                chapter = work[job]
                target = out_dir / chapter.name
                if outcome["error"] is not None:
                    log["chapters"][job] = {**entry, "ok": False}
                    print(f"wrenlib execute: chapter {job} failed after {outcome['seconds']:.0f} s: "
                          f"{outcome['error']}", file=sys.stderr)
                    print(f"  the partly executed notebook is {target}", file=sys.stderr)
                    status = 1
                    return
                _hide_injected_parameters(target)
                _add_launch_links(target, chapter, root)
                log["chapters"][job] = {**entry, "ok": True, "parameters": chapter_parameters(chapter)}
            finished.add(job)
            log.get("cut_off", {}).pop(job, None)  # an earlier part cut it off; now it has its time
            print(f"  {job} done in {outcome['seconds']:.1f} s, peak memory {outcome['peak_memory_gib']:.2f} "
                  f"GiB, {outcome['cores_busy'] or 0:.1f} cores busy", flush=True)

        import multiprocessing

        # one job at a time is the same loop with one worker. Every job gets a fresh process (spawned,
        # not forked from this one, which has torch loaded), which ends with it: a preparation's
        # memory goes back to the system before the next job starts
        fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}  # Python 3.10 reuses workers
        running: dict[Any, str] = {}  # future -> job: what an interruption cuts off

        def schedule(pool) -> None:
            """Start each job whose prerequisites have finished, as workers free up, until none is left."""
            while True:
                ready = [j for j in waiting if prerequisites[j] <= finished] if keep_going or not status else []
                for job in ready:
                    if len(running) >= jobs:
                        break
                    beside = list(running.values())
                    if kept_apart(job, beside) or over_memory_budget(job, beside, peaks, budget):
                        continue
                    waiting.remove(job)
                    print(f"  {job} ...", flush=True)
                    started_at[job] = time.perf_counter() - run_started
                    if isinstance(work[job], Preparation):
                        future = pool.submit(_run_preparation, work[job], backend)
                    else:
                        future = pool.submit(_run_chapter, work[job], out_dir / work[job].name, profile, kernel,
                                             backend)
                    running[future] = job
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    finish(running.pop(future), future.result())
                    # after every job, so that a run cut short (hours of the full profile on a CPU)
                    # keeps what it measured (wrenlib bench --job-times --partial), its wall time
                    # so far included: a part killed outright still counts towards the run's time
                    log["wall_seconds"] = round(earlier_wall + time.perf_counter() - run_started, 1)
                    log["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # so far
                    log_path.write_text(json.dumps(log, indent=2, sort_keys=True))

        interrupted, whole_run = False, None
        # Ctrl-C, a time limit's SIGINT or a scheduler's SIGTERM: the jobs that finished stay
        # measured, with the run's wall time; the running ones stop at once, their work lost
        previous_handler = _sigterm_as_interrupt()
        try:
            spawn = multiprocessing.get_context("spawn")
            with ChildProcessUsage(interval=0.5) as whole_run, \
                    ProcessPoolExecutor(max_workers=jobs, mp_context=spawn, **fresh) as pool:
                try:
                    schedule(pool)
                except KeyboardInterrupt:
                    interrupted = True
                    record_cut_off(log, run_id, {job: time.perf_counter() - run_started - started_at[job]
                                                 for job in running.values()})
                    # the workers and their kernels: leaving the pool would wait for their jobs (the
                    # pool, finding its workers gone, ends without them; no job waits in its queue)
                    _stop_child_processes()
        except KeyboardInterrupt:  # before the pool started, or while it shut down
            interrupted = True
        finally:
            _restore_sigterm(previous_handler)
        if interrupted:
            print("wrenlib execute: interrupted; the jobs that finished are kept in the log", file=sys.stderr)
    if waiting and not interrupted:  # only after a failure: the jobs it stopped
        print(f"wrenlib execute: not run after the failure: {', '.join(sorted(waiting))}"
              + ("" if keep_going else " (--keep-going runs those that need nothing that failed)"),
              file=sys.stderr)
    run_jobs = set(log["run_jobs"])  # this part's and, when resumed, those of the parts before it
    measured = {job: entry["seconds"] for kind in ("chapters", "preparations") for job, entry in log[kind].items()
                if job in run_jobs and entry.get("ok") and entry.get("run") == run_id}
    if len(measured) == len(run_jobs):  # every job of the run finished: its bounds
        every_stem = [c.stem for c in chapter_sources(root)]
        graph = job_graph([stem for stem in every_stem if stem in run_jobs],
                          [p for p in every_preparation if p.name in run_jobs])
        chain_seconds, chain = critical_path(graph, measured)
        log["bounds"] = {"work_seconds": round(sum(measured.values()), 1),
                         "chain_seconds": round(chain_seconds, 1), "chain": chain}
    else:
        log.pop("bounds", None)
    # the run's peak: the highest of its parts', and never below one of its jobs' own (sampled more
    # often, a job's short spike can pass between the whole run's samples)
    job_peaks = [entry["peak_memory_gib"] for kind in ("chapters", "preparations") for entry in log.get(kind, {}).values()
                 if entry.get("run") == run_id and entry.get("ok") and "peak_memory_gib" in entry]
    log.update(
        peak_memory_gib=round(max([earlier_peak, whole_run.peak_gib if whole_run is not None else 0.0, *job_peaks]), 2),
        profile=profile,
        device=machine["device"],
        finished=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine["machine"],
        versions=package_versions(),
        jobs=jobs,
        wall_seconds=round(earlier_wall + time.perf_counter() - run_started, 1),
        interrupted=interrupted,
    )
    log["complete"] = run_complete(log, root)
    log_path.write_text(json.dumps(log, indent=2, sort_keys=True))
    write_status_page(root / "book" / "status.md", log)
    from .bench import write_performance_page

    write_performance_page(root / "book" / "performance.md", log, root / "book" / "benchmarks",
                           artifacts_root() / "bench")
    from .cache import record_result

    seconds = {name: round(entry["seconds"], 1) for name, entry in sorted(log["chapters"].items())}
    preparation_seconds = {name: round(entry["seconds"], 1) for name, entry in sorted(log["preparations"].items())}
    record_result(profile, "execution_seconds", seconds, glue=False)
    record_result(profile, "execution_preparation_seconds", preparation_seconds, glue=False)
    record_result(profile, "execution_total_seconds",
                  round(sum(seconds.values()) + sum(preparation_seconds.values()), 1), glue=False)
    record_result(profile, "execution_wall_seconds", log["wall_seconds"], glue=False)
    memory = {name: entry["peak_memory_gib"] for kind in ("chapters", "preparations")
              for name, entry in sorted(log[kind].items()) if "peak_memory_gib" in entry}
    if memory:
        record_result(profile, "execution_peak_memory_gib", memory, glue=False)
        record_result(profile, "execution_peak_memory_max_gib", max(memory.values()), glue=False)
    record_result(profile, "execution_peak_memory_run_gib", log["peak_memory_gib"], glue=False)
    return 130 if interrupted else status


def chapter_parameters(chapter: Path) -> dict[str, str]:
    """The defaults of a chapter's parameters cell (papermill's reading of it), except the
    profile, which the run sets: the seeds and settings the status page lists."""
    import papermill

    found = papermill.inspect_notebook(str(chapter))
    return {name: str(value.get("default")) for name, value in found.items() if name != "PROFILE"}


def repository_url(root: Path) -> str | None:
    """The book's repository address from ``_config.yml`` (``repository.url``), if it has one."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text()) if (root / "_config.yml").is_file() else {}
    url = ((config or {}).get("repository") or {}).get("url")
    return str(url).rstrip("/") if url else None


def launch_links(stem: str, repository: str, branch: str = "main") -> str:
    """The line under each chapter's introduction: open its notebook in Colab or on Binder (which
    builds ``environment.yml``), or download the notebook or its jupytext source (chapter sources
    are ``notebooks/<stem>.ipynb`` / ``.py``)."""
    path = repository.removeprefix("https://github.com/")
    return (f"[Open in Colab](https://colab.research.google.com/github/{path}/blob/{branch}/notebooks/{stem}.ipynb)"
            f" · [open on Binder](https://mybinder.org/v2/gh/{path}/{branch}?labpath=notebooks%2F{stem}.ipynb)"
            f" · [download the notebook]({repository}/raw/{branch}/notebooks/{stem}.ipynb)"
            f" · [download the `.py` source]({repository}/raw/{branch}/notebooks/{stem}.py)")


def chapter_api(notebook) -> list[str]:
    """The wrenlib names a chapter imports (``from wrenlib.module import name``), as dotted paths in
    the order they first appear: the API reference entries the chapter links to."""
    import ast

    found: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wrenlib."):
                found += [f"{node.module}.{alias.name}" for alias in node.names]
    return list(dict.fromkeys(found))


def _add_launch_links(notebook_path: Path, chapter: Path, root: Path) -> None:
    """Put :func:`launch_links` under the first markdown cell of an executed chapter, with links
    to the API reference of the wrenlib functions it uses (:func:`chapter_api`)."""
    import nbformat

    repository = repository_url(root)
    if repository is None:
        return
    notebook = nbformat.read(notebook_path, as_version=4)
    if any("launch-links" in cell.metadata.get("tags", []) for cell in notebook.cells):
        return
    first = next((k for k, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"), -1)
    text = launch_links(chapter.stem, repository)
    names = chapter_api(notebook)
    if names:
        text += "\n\nwrenlib in this chapter: " + ", ".join(f"{{py:obj}}`~{name}`" for name in names)
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = ["launch-links"]
    notebook.cells.insert(first + 1, cell)
    nbformat.write(notebook, notebook_path)


def _hide_injected_parameters(notebook_path: Path) -> None:
    """Hide papermill's injected-parameters cell in the rendered page (the status page says the
    profile); the chapter's own parameters cell stays visible."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(notebook, notebook_path)


def of_this_run(log: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Whether a job's entry in the execution log is the logged run's: the log keeps earlier
    runs' jobs too (a log written before runs had ids: every entry is)."""
    return log.get("run_id") is None or entry.get("run") == log["run_id"]


def preparation_state(log: dict[str, Any], entry: dict[str, Any]) -> str:
    """A preparation's line in the status page: whether it failed, computed its work in the logged
    run or an earlier one, or found all of it in the artifact cache (made by an earlier run under the
    same settings; its ``made`` list is empty, where a log from before it was kept has none)."""
    if not entry["ok"]:
        return "**failed**"
    when = "" if of_this_run(log, entry) else " in an earlier run"
    if entry.get("made") == [] and not entry.get("trained"):
        return f"loaded from the cache{when}"
    return f"done{when}"


def write_status_page(path: Path, log: dict[str, Any]) -> None:
    """The book's status / provenance page, written from the execution log."""
    chapters = log.get("chapters", {})
    preparations = log.get("preparations", {})
    total = sum(entry["seconds"] for entry in [*chapters.values(), *preparations.values()] if of_this_run(log, entry))
    earlier = [name for name, entry in chapters.items() if not of_this_run(log, entry)]
    cached = [name for name, entry in preparations.items() if preparation_state(log, entry).startswith("loaded")]
    lines = [
        "# Status and provenance",
        "",
        "This page is written by `make execute` each time the chapters run; nothing on it is typed"
        " by hand. Every number in the chapters comes from the runs listed here"
        + (f": this run, and an earlier one for {len(earlier)} chapter{'s' if len(earlier) > 1 else ''} it did not"
           " run (marked below)." if earlier else ", all from the run described here"
           + (" and the cached work it loaded." if cached else "."))
        + (f" The {len(cached)} preparation{'s' if len(cached) > 1 else ''} marked \"loaded from the cache\" found"
           " their work (clips, images, CNNs or maps) made by an earlier run under the same settings, and"
           " what the chapters report of how that work went (a training's epochs, the clips' synthesis"
           " speed) is that run's." if cached else "")
        + " The Performance page also shows records of other runs and machines, each named there.",
        "",
        f"- **Profile:** `{log.get('profile')}`",
        f"- **Device:** {log.get('device')}",
        f"- **Machine:** {log.get('machine')}",
        f"- **Finished:** {log.get('finished')}",
        f"- **Total execution time:** {total:.0f} s"
        + (f" ({log['wall_seconds']:.0f} s of wall time, up to {log['jobs']} jobs side by side)"
           if log.get("jobs", 1) > 1 and "wall_seconds" in log else "")
        + (f"; the run came in {log['parts']} parts (`wrenlib execute --resume`)" if log.get("parts", 1) > 1 else "")
        + ("; **the last part was interrupted**: `make execute RESUME=1` goes on" if log.get("interrupted") else ""),
        "- **Backend:** " + backend_sentence({"backend": log.get("backend") if of_this_run(log, log.get("backend") or {})
                                              else None, "backend_mode": log.get("backend_mode")}),
        "",
        "## Chapters",
        "",
        "| chapter | run time (s) | peak memory (GiB) | status | parameters (seeds) |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, entry in sorted(chapters.items()):
        state = ("executed" if of_this_run(log, entry) else "executed in an earlier run") if entry["ok"] else "**failed**"
        parameters = ", ".join(f"`{key}={value}`" for key, value in entry.get("parameters", {}).items())
        memory = f"{entry['peak_memory_gib']:.2f}" if "peak_memory_gib" in entry else "—"
        lines.append(f"| [{name}](chapters/{name}.ipynb) | {entry['seconds']:.1f} | {memory} | {state} | "
                     f"{parameters or '—'} |")
    if preparations:
        lines += ["", "## Preparations", "",
                  "The surrogate clips and their images, the CNNs the chapters load, and the maps of chapters 06-08, "
                  "10 and 11 that need only those CNNs, "
                  "made by `make execute` as jobs of their own before the chapters that need them "
                  "(`wrenlib.book.book_preparations`); a chapter run on its own makes what it does not find in "
                  "the cache.", "",
                  "| preparation | what | run time (s) | peak memory (GiB) | status |",
                  "| --- | --- | ---: | ---: | --- |"]
        for name, entry in sorted(preparations.items()):
            memory = f"{entry['peak_memory_gib']:.2f}" if "peak_memory_gib" in entry else "—"
            lines.append(f"| `{name}` | {entry.get('description', '')} | {entry['seconds']:.1f} | {memory} | "
                         f"{preparation_state(log, entry)} |")
    lines += ["", "## Package versions", "", "| package | version |", "| --- | --- |"]
    for name, version in log.get("versions", {}).items():
        lines.append(f"| {name} | {version} |")
    lines += [
        "",
        "## Seeds",
        "",
        "Every chapter that draws random numbers takes a `SEED` parameter (default 0) beside `PROFILE`;"
        " `wrenlib.set_seed` seeds Python, NumPy and torch and gives torch the profile's CPU threads (the"
        " quick profile fixes 2), so a quick-profile run reproduces its numbers on a CPU.",
        "",
    ]
    path.write_text("\n".join(lines))
