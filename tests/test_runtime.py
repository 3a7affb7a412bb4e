"""Seeds, devices and profiles."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from wrenlib import choose_device, get_profile, set_seed
from wrenlib.book import resolve_profile


def test_set_seed_reproduces_random_draws_and_pins_threads():
    set_seed(7, torch_threads=1)
    first = (np.random.rand(3), torch.rand(3))
    assert torch.get_num_threads() == 1
    set_seed(7, torch_threads=2)
    second = (np.random.rand(3), torch.rand(3))
    assert torch.get_num_threads() == 2
    np.testing.assert_array_equal(first[0], second[0])
    assert torch.equal(first[1], second[1])
    set_seed(8)
    assert not torch.equal(torch.rand(3), second[1])


def test_a_run_may_give_torch_more_threads_and_a_bad_count_is_named(monkeypatch):
    from wrenlib.runtime import TORCH_THREADS_VARIABLE, torch_threads_for_run

    monkeypatch.delenv(TORCH_THREADS_VARIABLE, raising=False)
    assert torch_threads_for_run() == 2
    monkeypatch.setenv(TORCH_THREADS_VARIABLE, "3")
    try:
        set_seed(0)
        assert torch.get_num_threads() == 3
        set_seed(0, torch_threads=1)  # an explicit count wins
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(2)
    for bad in ("0", "four", "-2", "²"):
        monkeypatch.setenv(TORCH_THREADS_VARIABLE, bad)
        with pytest.raises(ValueError, match=f"WRENBOOK_TORCH_THREADS must be .* got '{bad}'"):
            set_seed(0)


def test_the_quick_profile_pins_two_threads_and_the_full_one_shares_the_cores(monkeypatch):
    from wrenlib import book, runtime

    monkeypatch.setattr(runtime, "usable_cores", lambda: 16)
    assert book.run_torch_threads("quick", jobs=2) == 2  # exact reproduction on any machine
    assert book.run_torch_threads("full", jobs=1) == 16 and book.run_torch_threads("full", jobs=2) == 8
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    assert book.run_torch_threads("full", jobs=2) == 2  # a job left alone keeps both cores busy
    monkeypatch.setattr(runtime, "usable_cores", lambda: 1)
    assert book.run_torch_threads("full", jobs=2) == 1


def test_usable_cores_are_those_this_process_may_run_on(monkeypatch):
    from wrenlib import runtime

    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert runtime.usable_cores() == 3
    monkeypatch.delattr(runtime.os, "sched_getaffinity")  # as on macOS
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 6)
    assert runtime.usable_cores() == 6


def test_a_run_sets_its_threads_for_what_it_starts_and_gives_the_callers_back(monkeypatch):
    from wrenlib import book, runtime
    from wrenlib.runtime import TORCH_THREADS_VARIABLE

    monkeypatch.delenv(TORCH_THREADS_VARIABLE, raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 6)
    torch.set_num_threads(1)
    try:
        with book.run_threads("full", jobs=2) as threads:
            assert threads == 3 and torch.get_num_threads() == 3 and os.environ[TORCH_THREADS_VARIABLE] == "3"
        assert TORCH_THREADS_VARIABLE not in os.environ and torch.get_num_threads() == 1
        monkeypatch.setenv(TORCH_THREADS_VARIABLE, "4")  # the caller's choice wins, and stays
        with book.run_threads("quick", jobs=2) as threads:
            assert threads == 4
        assert os.environ[TORCH_THREADS_VARIABLE] == "4"
    finally:
        torch.set_num_threads(2)


def test_jobs_on_a_gpu_each_get_a_share_of_its_memory_and_the_callers_setting_comes_back(monkeypatch):
    """On a CUDA GPU, ``wrenlib execute`` runs up to 4 jobs (one per 4 cores), and each job's
    set_seed caps torch's allocator at 1/jobs of the GPU, so that jobs side by side never ask for
    more than it has; a CPU, or one job, shares nothing."""
    from wrenlib import book, runtime
    from wrenlib.runtime import GPU_SHARE_VARIABLE

    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for cores, gib, jobs in ((16, 80, 4), (64, 141, 4), (8, 80, 2), (3, 80, 1), (16, 24, 2), (16, 8, 1)):
        monkeypatch.setattr(runtime, "usable_cores", lambda cores=cores: cores)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device, gib=gib: SimpleNamespace(
            total_memory=gib * 2**30))
        assert book.default_jobs() == jobs, (cores, gib)
    monkeypatch.setenv("WRENBOOK_DEVICE", "cpu")  # the CPU asked for on a GPU machine: the CPU's two jobs
    assert book.default_jobs() == min(2, os.cpu_count() or 1)
    monkeypatch.delenv("WRENBOOK_DEVICE")
    assert book.gpu_memory_share_for_run(4, "cuda") == "0.237" and book.gpu_memory_share_for_run(3, "cuda") == "0.316"
    assert book.gpu_memory_share_for_run(6, "cuda") == "0.158"  # rounded down: never more than 95 % together
    assert book.gpu_memory_share_for_run(1, "cuda") is None and book.gpu_memory_share_for_run(4, "cpu") is None
    with book.run_threads("full", jobs=4, device_type="cuda"):
        assert os.environ[GPU_SHARE_VARIABLE] == "0.237" and runtime.gpu_memory_share() == 0.237
        fractions = []
        from torch._utils import _get_device_index

        def record(share, device=None):  # as torch checks it: an index, or a device with one (or None)
            fractions.append((share, None if device is None else _get_device_index(device)))

        monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", record)
        monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: None)
        set_seed(0)
        monkeypatch.setenv("WRENBOOK_DEVICE", "cuda:1")  # the cap goes on the GPU the job computes on
        set_seed(0)
        monkeypatch.setenv("WRENBOOK_DEVICE", "cpu")  # a CPU asked for on a GPU machine: nothing to cap
        set_seed(0)
        monkeypatch.delenv("WRENBOOK_DEVICE")
        assert fractions == [(0.237, None), (0.237, 1)]  # None: the current GPU
    assert GPU_SHARE_VARIABLE not in os.environ and runtime.gpu_memory_share() == 1.0
    with book.run_threads("full", jobs=4, device_type="cpu"):
        assert GPU_SHARE_VARIABLE not in os.environ
    monkeypatch.setenv(GPU_SHARE_VARIABLE, "0.5")  # the caller's choice wins, and stays
    with book.run_threads("full", jobs=4, device_type="cuda"):
        assert runtime.gpu_memory_share() == 0.5
    assert os.environ[GPU_SHARE_VARIABLE] == "0.5"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # no GPU: nothing to cap
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda share: pytest.fail("capped a CPU"))
    set_seed(0)


def test_set_seed_asks_cublas_for_deterministic_products_unless_the_caller_chose(monkeypatch):
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ  # conftest: every test starts without it
    set_seed(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    set_seed(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.parametrize("value", ["0", "1.5", "-0.25", "half", "nan"])
def test_a_bad_gpu_share_is_named_before_anything_is_seeded(monkeypatch, value):
    from wrenlib.runtime import GPU_SHARE_VARIABLE

    monkeypatch.setenv(GPU_SHARE_VARIABLE, value)
    with pytest.raises(ValueError, match=f"{GPU_SHARE_VARIABLE} must be a fraction.*{value!r}"):
        set_seed(0)


def test_set_seed_turns_on_deterministic_algorithms_without_importing_the_compiler():
    """What torch.use_deterministic_algorithms(True, warn_only=True) sets, without its 2 s import
    of torch._inductor in every chapter's process (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from wrenlib import set_seed\n"
            "torch.use_deterministic_algorithms(False)\n"
            "set_seed(0)\n"
            "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),"
            " torch.utils.deterministic.fill_uninitialized_memory, 'torch._inductor' in sys.modules)")
    # use_deterministic_algorithms(False) itself imports torch._inductor: ask in a second interpreter
    flags = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert flags[:3] == ["True", "True", "False"]  # deterministic, without filling new memory with NaN
    fresh = subprocess.run([sys.executable, "-c", "import sys, torch\nfrom wrenlib import set_seed\nset_seed(0)\n"
                            "print('torch._inductor' in sys.modules)"], capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "False"


@pytest.mark.parametrize("mode, flags", [("deterministic", (True, False, False)),
                                         ("nondeterministic", (False, False, False)),
                                         ("cudnn-benchmark", (False, False, True))])
def test_set_seed_puts_torch_in_the_runs_backend_mode(mode, flags, monkeypatch):
    """WRENBOOK_BACKEND (set by ``wrenlib execute`` after a calibration on a GPU) picks the mode;
    a bad one is named before anything is seeded."""
    import torch
    import torch.utils.deterministic

    from wrenlib.runtime import BACKEND_VARIABLE, set_seed

    monkeypatch.setenv(BACKEND_VARIABLE, mode)
    try:
        set_seed(0)
        assert (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory,
                torch.backends.cudnn.benchmark) == flags
        monkeypatch.setenv(BACKEND_VARIABLE, "quickest")
        with pytest.raises(ValueError, match=f"{BACKEND_VARIABLE} must be one of .*'quickest'"):
            set_seed(0)
    finally:
        monkeypatch.delenv(BACKEND_VARIABLE)
        set_seed(0)
    assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark


def test_the_allocator_takes_the_settings_on_linux():
    import platform

    from wrenlib.runtime import keep_freed_memory

    # glibc refuses a value out of its range (say an mmap threshold above 32 MiB) with 0
    assert keep_freed_memory() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_a_freed_large_tensor_is_reused_without_faulting_its_pages_in_again():
    """The point of keep_freed_memory: the 64 MiB of a tensor freed and allocated again, over and
    over (a batch's activations), come back from the heap, not as fresh pages from the system
    (16,384 page faults of 4 KiB each, as with glibc's defaults, or with only an mmap threshold
    set, which sends such a block to mmap every time). The fewest faults of eight rounds are
    counted: on one machine (a Firecracker VM, Linux 6.18, glibc 2.36) an occasional round faulted
    the whole block in again with the settings taken, most likely because its kernel runs a DAMON
    "pageout" scheme (kdamond) that takes back pages it sees idle, while without them every round
    does."""
    import subprocess
    import sys

    code = ("import resource, sys, torch\n"
            "from wrenlib.runtime import keep_freed_memory\n"
            "if sys.argv[1] == 'kept': keep_freed_memory()\n"
            "for _ in range(3): torch.empty(2**24).fill_(1.0)\n"
            "faults = []\n"
            "for _ in range(8):\n"
            "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "    torch.empty(2**24).fill_(1.0)\n"
            "    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
            "print(min(faults))")
    faults = {mode: int(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("kept", "default")}
    assert faults["default"] >= 16_000
    assert faults["kept"] < 1_000


def test_set_seed_refuses_a_negative_seed():
    with pytest.raises(ValueError, match="non-negative"):
        set_seed(-1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_device_chooser_on_a_cpu_machine(monkeypatch):
    monkeypatch.delenv("WRENBOOK_DEVICE", raising=False)
    assert choose_device().type == "cpu"
    assert resolve_profile("auto") == "quick"
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        choose_device("cuda")
    monkeypatch.setenv("WRENBOOK_DEVICE", "cpu")
    assert choose_device().type == "cpu"


def test_the_automatic_profile_follows_the_runs_device(monkeypatch):
    """WRENBOOK_DEVICE=cpu on a GPU machine must not start the full profile on the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    monkeypatch.delenv("WRENBOOK_DEVICE", raising=False)
    assert resolve_profile("auto") == "full"
    monkeypatch.setenv("WRENBOOK_DEVICE", "cpu")
    assert resolve_profile("auto") == "quick"


def test_profiles_are_defined_in_one_place_and_unknown_names_are_refused():
    quick, full = get_profile("quick"), get_profile("full")
    assert (full.image_height_px, full.image_width_px) == (480, 960)
    assert quick.n_clips < full.n_clips
    with pytest.raises(ValueError, match="quick"):
        get_profile("medium")
    with pytest.raises(ValueError):
        resolve_profile("medium")


def test_freed_memory_goes_back_to_the_system_when_released():
    """With the training settings, memory freed by many small arrays stays with the process;
    release_freed_memory hands it back (glibc only)."""
    import platform
    import subprocess
    import sys

    import pytest

    if platform.system() != "Linux":
        pytest.skip("glibc's allocator only")
    code = (
        "import psutil, numpy as np\n"
        "from wrenlib.runtime import keep_freed_memory, release_freed_memory\n"
        "keep_freed_memory()\n"
        "rss = lambda: psutil.Process().memory_info().rss / 2**20\n"
        "before = rss()\n"
        "blocks = [np.ones(2**17) for _ in range(400)]  # 400 MiB of 1 MiB arrays, below the mmap threshold\n"
        "held = rss()\n"
        "del blocks\n"
        "kept = rss()\n"
        "released = release_freed_memory()\n"
        "print(before, held, kept, rss(), released)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    before, held, kept, after = map(float, out[:4])
    assert held - before > 350 and kept - before > 300  # kept for the next allocation
    assert out[4] == "True" and after - before < 100  # given back


def test_a_kernel_releases_freed_memory_after_every_cell():
    from IPython.core.interactiveshell import InteractiveShell

    from wrenlib.runtime import keep_freed_memory, release_freed_memory

    shell = InteractiveShell.instance()
    try:
        keep_freed_memory()
        keep_freed_memory()  # a second chapter-start registers nothing more
        assert shell.events.callbacks["post_run_cell"].count(release_freed_memory) == 1
    finally:
        InteractiveShell.clear_instance()


def test_seeds_past_numpys_range_the_callers_device_and_progress_switches(monkeypatch):
    """A seed past 2**32 still seeds (NumPy takes it modulo 2**32); `seeded(s)` draws what
    `manual_seed(s)` would; a device the caller names beats WRENBOOK_DEVICE; TQDM_DISABLE=1 turns
    the bars off and =0 leaves them on."""
    from wrenlib.runtime import seeded, show_progress

    set_seed(2**32 + 1)
    first = np.random.random()
    set_seed(1)
    assert np.random.random() == first
    with seeded(3):
        inside = torch.rand(2)
    torch.manual_seed(3)
    assert torch.equal(inside, torch.rand(2))
    monkeypatch.setenv("WRENBOOK_DEVICE", "cuda")
    assert choose_device("cpu").type == "cpu"
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not show_progress(True)
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert show_progress(True) and not show_progress(False)


def _threads_and_process(batch):
    return torch.get_num_threads(), os.getpid()


def test_map_batches_workers_are_other_processes_on_one_thread_each():
    """In parallel the batches go to worker processes that share the cores, one torch thread each
    (two would oversubscribe them); with one job they stay here."""
    from wrenlib.runtime import map_batches, stop_worker_processes

    try:
        answers = list(map_batches(_threads_and_process, [0, 1, 2, 3], 2))
    finally:
        stop_worker_processes()
    assert [threads for threads, _ in answers] == [1, 1, 1, 1]
    assert os.getpid() not in {pid for _, pid in answers}
    assert list(map_batches(_threads_and_process, [0], 1)) == [(torch.get_num_threads(), os.getpid())]
