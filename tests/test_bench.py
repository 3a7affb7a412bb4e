"""Stage timings (wrenlib.bench): every stage timed and recorded, a warm cache refused."""

from __future__ import annotations

import json
import os

import pytest

from wrenlib import profiles


@pytest.fixture()
def tiny_profile(monkeypatch):
    tiny = profiles.PROFILES["quick"].with_overrides(
        name="tiny", individuals_per_dialect=6, clips_per_individual=4, image_height_px=32, image_width_px=64,
        max_epochs=2, patience=2, explain_clips=2, lime_samples=16, shap_background=2)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    return tiny


def test_every_stage_is_timed_and_written_as_it_ends(tiny_profile, isolated_artifacts, tmp_path):
    from wrenlib.bench import STAGES, time_stages
    from wrenlib.explain import METHODS

    record = time_stages("tiny", tmp_path / "out", device=None, n_jobs=1)
    names = [row["stage"] for row in record["stages"]]
    assert names == [*STAGES[:3], *(f"{STAGES[3]}: {m}" for m in METHODS), STAGES[4]]
    written = json.loads((tmp_path / "out" / "stages-tiny.json").read_text())
    assert written == json.loads(json.dumps(record))
    assert written["profile"]["name"] == "tiny" and written["device"].startswith("cpu")
    rows = {row["stage"]: row for row in written["stages"]}
    assert rows["surrogate clips"]["clips"] == 48
    assert rows["spectrogram images"]["image_size"] == [32, 64]
    assert 1 <= rows["training one CNN"]["epochs"] <= 2
    assert all(row["seconds"] >= 0 and row["peak_rss_gib"] > 0 for row in written["stages"])
    assert written["total_seconds"] == pytest.approx(sum(row["seconds"] for row in written["stages"]), abs=0.2)
    # a second run would time cache loads, not work: refused, naming the folder
    with pytest.raises(ValueError, match="already holds this profile's data"):
        time_stages("tiny", tmp_path / "again")


def test_with_mixed_precision_the_float32_training_is_timed_beside_it(tiny_profile, monkeypatch, isolated_artifacts,
                                                                      tmp_path):
    from wrenlib import profiles
    from wrenlib.bench import STAGES, time_stages

    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny_profile.with_overrides(mixed_precision="always"))
    record = time_stages("tiny", tmp_path / "out", device=None, n_jobs=1, methods=("gradcam",))
    rows = {row["stage"]: row for row in record["stages"]}
    half, full = rows[STAGES[2]], rows[f"{STAGES[2]}, float32"]
    assert half["precision"] == "bfloat16" and full["precision"] == "float32"
    assert 0 <= half["test_accuracy"] <= 1 and 0 <= full["test_accuracy"] <= 1
    assert 0 <= full["agreement_with_16_bit"] <= 1 and full["seconds_per_epoch"] > 0
    assert record["mixed_precision"] == "always"


def test_another_precision_than_the_profiles_is_timed_without_taking_the_chapters_cache(
        tiny_profile, isolated_artifacts, tmp_path):
    from wrenlib.bench import STAGES, time_stages
    from wrenlib.cache import profile_dir

    assert tiny_profile.mixed_precision == "off"
    record = time_stages("tiny", tmp_path / "out", n_jobs=1, methods=("gradcam",), mixed_precision="always")
    rows = {row["stage"]: row for row in record["stages"]}
    assert record["mixed_precision"] == "always" and rows[STAGES[2]]["precision"] == "bfloat16"
    assert rows[f"{STAGES[2]}, float32"]["precision"] == "float32"
    assert not list((profile_dir("tiny") / "models").glob("*.pt"))  # the chapters' float32 CNN is not this one


def test_the_command_line_refuses_a_warm_cache_in_one_line(isolated_artifacts, tmp_path, capsys):
    from wrenlib.cache import profile_dir
    from wrenlib.cli import main

    (profile_dir("quick") / "surrogate").mkdir(parents=True)
    assert main(["bench", "--stages", "quick", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("wrenlib bench: error: ") and "WRENBOOK_ARTIFACTS" in error
    assert not (tmp_path / "out").exists()


def test_the_performance_page_shows_this_run_the_gpu_record_and_the_bench(tmp_path):
    from wrenlib.bench import trainings_per_job, write_performance_page

    log = {"profile": "quick", "device": "cpu (2 threads, 2 cores)", "machine": "x86_64, 2 cores", "finished": "now",
           "chapters": {"01_wren_dialects": {"seconds": 60.0, "ok": True, "peak_memory_gib": 1.25},
                        "03_training": {"seconds": 540.0, "ok": True, "peak_memory_gib": 2.5, "cores_busy": 1.9},
                        "04_gradcam": {"seconds": 5.0, "ok": False}},
           "preparations": {"cnn_black": {"seconds": 120.0, "ok": True, "peak_memory_gib": 1.5, "cores_busy": 1.7,
                                          "description": "the CNN trained on the black set"}},
           "complete": True}
    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir()
    stages = [{"stage": "surrogate clips", "clips": 4000, "seconds": 71.3, "peak_rss_gib": 4.0},
              {"stage": "training one CNN", "epochs": 12, "seconds_per_epoch": 6.5, "seconds": 78.4,
               "peak_gpu_memory_gib": 5.1, "peak_rss_gib": 10.1}]
    (benchmarks / "stages-full-test.json").write_text(json.dumps(
        {"profile": {"name": "full"}, "machine": "x86_64, 16 cores", "device": "cuda: NVIDIA H200", "python": "3.12",
         "torch": "2.11", "stages": stages, "total_seconds": 149.7}))
    page = tmp_path / "performance.md"
    write_performance_page(page, log, benchmarks, tmp_path / "no-bench")
    text = page.read_text()
    assert "**12.0 min** for 2 chapters and 1 preparation." in text  # the failed chapter is not counted
    assert (text.index("| 03_training | 540 | 75% | 2.5 | 1.9 | 0 |")
            < text.index("| preparation `cnn_black` | 120 | 17% | 1.5 | 1.7 | 1 |")
            < text.index("| 01_wren_dialects | 60 | 8% | 1.25 | — | 0 |"))
    assert "**2.50 GiB**, in `03_training`" in text
    assert "no schedule" not in text  # a log without bounds (written before they were recorded)
    assert "Every CNN came from the cache" in text  # cnn_black trained nothing: its CNN was cached
    assert "its training's precision is not recorded" in text  # a stage record from before precisions were kept
    log.update(jobs=2, wall_seconds=480.0, bounds={"work_seconds": 720.0, "chain_seconds": 400.0,
                                                   "chain": ["01_wren_dialects", "cnn_black", "03_training"]})
    write_performance_page(page, log, benchmarks, tmp_path / "no-bench")
    bounded = page.read_text()
    assert ("no schedule 2 at a time could finish in less than **6.7 min**" in bounded
            and "01_wren_dialects → cnn_black → 03_training, takes 6.7 min" in bounded
            and "This run took 8.0 min, 20% more than that bound; a better order could save up to 1.3 min." in bounded)
    log.update(wall_seconds=410.0)
    write_performance_page(page, log, benchmarks, tmp_path / "no-bench")
    assert "2% more than that bound: a shorter run needs less work in the jobs" in page.read_text()
    # one chain of every job, one after another (a run of one chapter and what it waits for): no order helps
    log.update(wall_seconds=48.0, bounds={"work_seconds": 40.0, "chain_seconds": 40.0,
                                          "chain": ["cnn_black", "03_training"]})
    write_performance_page(page, log, benchmarks, tmp_path / "no-bench")
    serial = page.read_text()
    assert "every job lies on that chain, so no order could do better" in serial and "better order" not in serial
    # the whole run's memory, sampled less often, missed a job's spike: the target is judged by the higher
    log.update(peak_memory_gib=3.0)
    log["chapters"]["03_training"]["peak_memory_gib"] = 7.1
    write_performance_page(page, log, benchmarks, tmp_path / "no-bench")
    assert "peak memory under 6 GiB (not met: 7.10 GiB)" in page.read_text()
    log.update(wall_seconds=480.0, bounds={"work_seconds": 720.0, "chain_seconds": 400.0,
                                           "chain": ["01_wren_dialects", "cnn_black", "03_training"]})
    del log["bounds"], log["wall_seconds"], log["jobs"]
    assert ("targets for profile `quick`: under 10 min on a 2-core CPU (met here: 10.0 min)" not in text
            and "(not met here: 12.0 min)" in text and "peak memory under 6 GiB (met: 2.50 GiB)" in text)
    log["complete"] = False  # a run of some chapters only, or an interrupted one: no verdict on the book
    write_performance_page(page, log, benchmarks, tmp_path / "no-bench")
    partial = page.read_text()
    assert "met here" not in partial and "(met:" not in partial and "are not judged here" in partial
    assert "cuda: NVIDIA H200" in text and "| training one CNN | — | 78.4 | — | — | 5.1 | 10.1 | — |" in text
    count = sum(trainings_per_job("full").values())
    assert count == 3 + 2 + 4 + 1  # backgrounds, stability seeds, confound strengths above 0, chapter 12
    assert f"The full book trains {count} on an empty cache, about {round(count * 78.4 / 60)} min" in text
    assert "has not been run on this machine" in text
    assert (tmp_path / "performance_chapters.png").stat().st_size > 1000
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "synth.json").write_text(json.dumps({"machine": "x86_64, 2 cores", "results": [
        {"benchmark": "surrogate generation", "processes": 2, "clips": 96, "clips_per_second": 8.1, "speed-up": 1.8}]}))
    (bench / "explainers.csv").write_text("method,image_height_px,image_width_px,budget,seconds_per_image,"
                                          "forward_pass_equivalents\nlime,120,240,64 samples,0.5,42.0\n")
    write_performance_page(page, log, benchmarks, bench)
    text = page.read_text()
    assert "| surrogate generation | 2 | 96 | 8.1 | 1.8 |" in text
    assert "| LIME | 120 x 240 | 64 samples | 0.500 | 42.0 |" in text
    assert "On this machine (`artifacts/bench/`):" in text and "Kept in" not in text
    # a fresh clone (CI) has no bench of its own, but shows one kept in book/benchmarks/bench-*/
    kept = benchmarks / "bench-cpu"
    kept.mkdir()
    (kept / "synth.json").write_text(json.dumps({"machine": "x86_64, 2 cores", "device": "cpu (2 threads, 2 cores)",
                                                 "finished": "2026-11-26 15:00 UTC", "note": "Timed otherwise.",
                                                 "results": [
        {"benchmark": "training at 120 x 240", "processes": 1, "clips": 64, "clips_per_second": 110.5}],
        "memory": [{"method": "shap", "image": "480 x 960", "per": "reference", "GiB per unit": 0.564,
                    "bytes per pixel": 1313, "constant (bytes per pixel)": 1300}]}))
    write_performance_page(page, log, benchmarks, tmp_path / "no-bench")
    text = page.read_text()
    assert "has not been run on this machine" in text
    assert ("Kept in `book/benchmarks/bench-cpu` (`wrenlib bench --out book/benchmarks/bench-cpu`):" in text
            and "Machine: x86_64, 2 cores, cpu (2 threads, 2 cores), 2026-11-26 15:00 UTC. Timed otherwise." in text
            and "| training at 120 x 240 | 1 | 64 | 110.5 | — |" in text)
    from wrenlib.explain import SHAP_BYTES_PER_REFERENCE_PIXEL

    # the memory rows, beside the code's constant, and what it was when the kept record measured them
    assert f"| SHAP | 480 x 960 | reference | 0.564 | 1313 | {SHAP_BYTES_PER_REFERENCE_PIXEL} |" in text
    assert ("*Measured when SHAP's was 1300" in text) == (SHAP_BYTES_PER_REFERENCE_PIXEL != 1300)


def test_a_stage_record_in_another_precision_says_what_16_bits_changed_not_what_the_book_costs(tmp_path):
    from wrenlib.bench import write_performance_page

    log = {"profile": "quick", "device": "cpu", "machine": "x86_64", "finished": "now",
           "chapters": {"01_wren_dialects": {"seconds": 60.0, "ok": True}}}
    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir()
    stages = [{"stage": "training one CNN", "epochs": 10, "seconds_per_epoch": 1.2, "seconds": 12.0,
               "precision": "bfloat16", "test_accuracy": 0.8958},
              {"stage": "training one CNN, float32", "epochs": 12, "seconds_per_epoch": 1.8, "seconds": 21.6,
               "precision": "float32", "test_accuracy": 0.9028, "agreement_with_16_bit": 0.9514}]
    record = {"profile": {"name": "quick", "mixed_precision": "off"}, "mixed_precision": "native",
              "machine": "x86_64, 2 cores", "device": "cpu (2 threads, 2 cores)", "python": "3.11", "torch": "2.13",
              "stages": stages, "total_seconds": 33.6}
    (benchmarks / "stages-quick-cpu-bf16.json").write_text(json.dumps(record))
    page = tmp_path / "performance.md"
    write_performance_page(page, log, benchmarks, tmp_path / "no-bench")
    text = page.read_text()
    assert 'profile `quick`, trained with `mixed_precision="native"`:' in text
    assert "| training one CNN, float32 | — | 21.6 | float32 | 90.3% | — | — | 95.1% |" in text
    assert ("In bfloat16 one epoch took 1.2 s against 1.8 s in float32 (1.5 times as fast); the two CNNs reached "
            "89.6% and 90.3% on the test clips and predicted the same dialect for 95.1% of them.") in text
    assert "The quick book trains" not in text  # its CNNs train in float32: this record does not time them
    assert "precision is not recorded" not in text
    record["mixed_precision"] = "off"
    (benchmarks / "stages-quick-cpu-bf16.json").write_text(json.dumps(record))
    write_performance_page(page, log, benchmarks, tmp_path / "no-bench")
    assert "The quick book trains 6 on an empty cache" in page.read_text()


def test_child_process_usage_sees_a_child_that_holds_memory_and_works():
    import subprocess
    import sys
    import time

    from wrenlib.bench import ChildProcessUsage

    holds = ("import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096])\n"
             "end = time.process_time() + 1.0\nwhile time.process_time() < end: pass\ntime.sleep(0.5)")
    # children that earlier tests left (a worker pool of joblib's, a resource tracker) count in every
    # sample: the test reads the difference this child makes
    already = ChildProcessUsage().sample() / 2**30
    started = time.perf_counter()
    with ChildProcessUsage(interval=0.05) as usage:
        subprocess.run([sys.executable, "-c", holds], check=True)
    wall = time.perf_counter() - started
    assert 0.28 < usage.peak_gib - already < 1.0  # the 300 MiB it touched, plus an interpreter
    assert 0.9 < usage.cpu_seconds <= wall + 0.1  # one second of work on one core
    assert usage.sample() / 2**30 - already < 0.1  # the child has ended


def test_child_process_usage_counts_only_the_work_a_running_child_does_inside_the_block():
    """A child started before the block (a worker pool an earlier job left) counts with the CPU time
    it spends inside the block, not with what it had used before."""
    import subprocess
    import sys
    import time

    from wrenlib.bench import ChildProcessUsage, _process_tree_cpu_seconds

    busy_then_idle = "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\ntime.sleep(3)"
    child = subprocess.Popen([sys.executable, "-c", busy_then_idle])
    try:
        while sum(cpu for (pid, _), cpu in _process_tree_cpu_seconds().items() if pid == child.pid) < 0.95:  # its second of work is (nearly) done
            time.sleep(0.05)
        with ChildProcessUsage(interval=0.05) as usage:
            time.sleep(0.4)
        assert usage.cpu_seconds < 0.2  # it slept all through the block
    finally:
        child.kill()
        child.wait()


def test_the_performance_page_counts_the_trainings_arithmetic(tmp_path):
    from wrenlib.bench import training_arithmetic, write_performance_page
    from wrenlib.model import ModelConfig, flops_per_image

    config = ModelConfig(32, 64)
    trained = {"model": config.to_dict(), "epochs": 10, "train_images": 400, "validation_images": 100,
               "precision": "float32"}
    flops = 10 * (400 * flops_per_image(config) + 100 * flops_per_image(config, training=False))
    rate = 3 * flops / 200.0 / 1e9  # GFLOP per core-second
    preparations = {"cnn_a": {"seconds": 100.0, "ok": True, "cores_busy": 1.0, "trained": [trained],
                              "matmul_gflops_per_core": 1.5 * rate},
                    "cnn_b": {"seconds": 50.0, "ok": True, "cores_busy": 2.0, "trained": [trained, trained],
                              "matmul_gflops_per_core": 2.5 * rate},
                    "cnn_cached": {"seconds": 3.0, "ok": True, "cores_busy": 1.0, "trained": []}}
    totals = training_arithmetic(json.loads(json.dumps(preparations)))  # as read back from execution.json
    assert totals == {"cnns": 3, "epochs": 30, "train_images": 12_000, "validation_images": 3_000,
                      "flops": 3 * flops, "core_seconds": 200.0}  # the cached model's load is not training
    assert training_arithmetic({"cnn_cached": preparations["cnn_cached"]}) is None
    log = {"profile": "quick", "device": "cpu (2 threads, 2 cores)", "machine": "x86_64, 2 cores", "finished": "now",
           "chapters": {}, "preparations": preparations}
    page = tmp_path / "performance.md"
    write_performance_page(page, log, tmp_path / "none", tmp_path / "none")
    text = page.read_text()
    assert (f"trained 3 CNNs for 30 epochs in all: 12,000 training and 3,000 validation images" in text
            and f"200 core-seconds of CPU time: {rate:.0f} GFLOP per core-second, 50% of what a large matrix product reached per core-second" in text)  # against their yardsticks' mean, 2x the rate
    cores = os.cpu_count()
    assert f"Spread over the machine's {cores} cores at that rate, the trainings alone need {200 / cores / 60:.1f} min" in text
    assert "of the 10-min target" in text and "Every CNN came from the cache" not in text  # two trained here
    log["profile"] = "full"  # on a CPU: its target is a GPU's
    write_performance_page(page, log, tmp_path / "none", tmp_path / "none")
    assert "core-seconds" in page.read_text() and "-min target" not in page.read_text()
    log["device"] = "cuda: NVIDIA H200"
    write_performance_page(page, log, tmp_path / "none", tmp_path / "none")
    assert "in 150 s of their jobs' time" in page.read_text() and "core-seconds" not in page.read_text()


def test_other_work_counts_the_rest_of_the_machine_not_this_process():
    import subprocess
    import sys
    import time

    from wrenlib.bench import OtherWork

    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    def measure():
        with OtherWork() as idle:
            time.sleep(1.0)  # the rest of the machine, as busy as it is now (another run's work may share it)
        with OtherWork() as own_work:
            burn(1.0)  # this process's own work is not "other"
        # a busy process outside this one's tree: started by a child that exits at once
        loop = "import time\nend = time.process_time() + 2.5\nwhile time.process_time() < end: pass"
        subprocess.run([sys.executable, "-c",
                        f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {loop!r}])"], check=True)
        with OtherWork() as beside:
            time.sleep(1.5)
        time.sleep(1.5)  # let the busy process end before another try
        return idle, own_work, beside

    # A machine that other work already keeps saturated has no core left to show the busy process
    # on; such load comes and goes, so the measurement gets three tries (code that missed other
    # processes, or counted this one's own work, fails all three).
    for _ in range(3):
        idle, own_work, beside = measure()
        if beside.cores - own_work.cores > 0.6 and own_work.cores < idle.cores + 0.5:
            break
    assert beside.cores - own_work.cores > 0.6, (idle.cores, own_work.cores, beside.cores)
    assert "other work keeping" in beside.note() and f"of its {os.cpu_count()} cores" in beside.note()
    assert own_work.cores < idle.cores + 0.5, (idle.cores, own_work.cores, beside.cores)


def test_the_machine_names_its_processor_and_the_kernels_torch_runs(tmp_path, monkeypatch):
    import torch

    from wrenlib import bench

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD  EPYC 9B45\nflags\t: fpu\n"
                       "processor\t: 1\nmodel name\t: AMD  EPYC 9B45\n")
    assert bench.processor_name(cpuinfo) == "AMD EPYC 9B45"  # the first one, its spaces tidied
    monkeypatch.setattr(bench.platform, "processor", lambda: "arm")
    assert bench.processor_name(tmp_path / "missing") == "arm"  # no /proc/cpuinfo: what Python knows
    monkeypatch.setattr(bench, "processor_name", lambda: "Test CPU 1")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    machine = bench.machine_description(torch.device("cpu"))["machine"]
    assert machine == f"{bench.platform.machine()}, {os.cpu_count()} cores, Test CPU 1 (AVX2 kernels)"
    monkeypatch.setattr(bench, "processor_name", lambda: "")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    assert bench.machine_description(torch.device("cpu"))["machine"] == f"{bench.platform.machine()}, {os.cpu_count()} cores"


def test_the_explainer_memory_probe_measures_its_own_call_not_its_parent():
    """Each probe runs in a fresh interpreter started by a process that already holds a large
    peak (as `make bench` does by then): the probe must still see one more reference or image cost
    memory (a peak that carried over from the parent would difference to 0)."""
    import numpy as np

    from wrenlib.bench import explainer_memory

    held = np.ones(2**30 // 8)  # 1 GiB in the parent while the probes run
    rows = {row["method"]: row for row in explainer_memory((120, 240), (1, 9))}
    assert held[0] == 1 and set(rows) == {"deeplift", "shap"}
    for row in rows.values():
        assert row["bytes per pixel"] > 0.3 * row["constant (bytes per pixel)"]  # 8 more: 150-600 MiB


def test_the_backend_benchmark_times_every_setting_and_puts_torchs_back(tmp_path):
    """Each workload in both precisions under each CPU setting (cuDNN's only on CUDA), against the
    book's own; torch's flags are as asked inside and as before afterwards; the page shows it."""
    import torch
    import torch.utils.deterministic

    from wrenlib.bench import BACKEND_SETTINGS, backend_settings, write_backend_benchmark, write_performance_page
    from wrenlib.runtime import BACKEND_MODES, set_seed

    set_seed(0)
    before = (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory,
              torch.backends.cudnn.benchmark)
    for mode, flags in BACKEND_MODES.items():
        with backend_settings(mode):
            assert (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory,
                    torch.backends.cudnn.benchmark) == flags
    path = write_backend_benchmark(tmp_path / "bench", image_size=(32, 64), device="cpu", lime_batch=4,
                                   train_batch=4, repeats=1)
    assert (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory,
            torch.backends.cudnn.benchmark) == before == (True, False, False)
    rows = json.loads(path.read_text())["rows"]
    on_cpu = [name for name, flags in BACKEND_SETTINGS.items() if not flags[2]]
    assert len(rows) == 2 * 2 * len(on_cpu) and {row["settings"] for row in rows} == set(on_cpu)
    assert {row["precision"] for row in rows} == {"float32", "bfloat16"}
    assert all(row["images_per_second"] > 0 for row in rows)
    assert all(row["speed-up"] == 1.0 for row in rows if row["settings"] == on_cpu[0])
    assert all(BACKEND_SETTINGS[row["settings"]] == BACKEND_MODES[row["mode"]] for row in rows)
    page = tmp_path / "performance.md"
    write_performance_page(page, {"profile": "quick", "chapters": {}}, tmp_path / "none", tmp_path / "bench")
    text = page.read_text()
    assert "### Backend settings" in text and "LIME batch (4 x 32 x 64)" in text and "not deterministic" in text


def test_the_calibration_keeps_deterministic_unless_another_mode_is_clearly_faster():
    """The geometric mean of a mode's speed-ups over the workloads decides, against a margin."""
    from wrenlib.bench import CALIBRATION_MARGIN, fastest_backend

    def rows(nondeterministic, benchmark):
        return [{"mode": "deterministic", "speed-up": 1.0}, {"mode": "nondeterministic", "speed-up": nondeterministic[0]},
                {"mode": "cudnn-benchmark", "speed-up": benchmark[0]}, {"mode": "deterministic", "speed-up": 1.0},
                {"mode": "nondeterministic", "speed-up": nondeterministic[1]},
                {"mode": "cudnn-benchmark", "speed-up": benchmark[1]}]

    mode, speedups = fastest_backend(rows((1.0, 1.0), (4.0, 1.0)))
    assert mode == "cudnn-benchmark" and speedups == {"deterministic": 1.0, "nondeterministic": 1.0,
                                                      "cudnn-benchmark": 2.0}
    assert fastest_backend(rows((1.05, 1.0), (0.5, 2.1)))[0] == "deterministic"  # 1.02 and 1.02: not worth it
    assert fastest_backend(rows((1.3, 1.3), (1.2, 1.2)))[0] == "nondeterministic"
    assert fastest_backend(rows((CALIBRATION_MARGIN,) * 2, (0.5, 0.5)))[0] == "nondeterministic"
    with pytest.raises(ValueError, match="no backend timings"):
        fastest_backend([])


def test_a_calibration_times_the_modes_chooses_one_and_keeps_the_evidence(tmp_path):
    """At the profile's precision and float32, every calibrated mode (cuDNN's only on CUDA), then
    the chosen mode with the weights in the default layout; backend.json keeps it all."""
    from wrenlib.bench import CALIBRATED_MODES, calibrate_backend, fastest_backend

    report = calibrate_backend("full", repeats=1, image_size=(32, 64), folder=tmp_path, device="cpu",
                               lime_batch=2, train_batch=2)
    assert json.loads((tmp_path / "backend.json").read_text()) == report
    on_cpu = [mode for mode in CALIBRATED_MODES if mode != "cudnn-benchmark"]
    layouts = {row["memory format"] for row in report["rows"]}
    assert layouts == {"channels_last", "contiguous"} and report["precision"] == "bfloat16"
    timed = [row for row in report["rows"] if row["memory format"] == "channels_last"]
    assert sorted({row["mode"] for row in timed}) == sorted(on_cpu) and len(timed) == 2 * 2 * len(on_cpu)
    plain = [row for row in report["rows"] if row["memory format"] == "contiguous"]
    assert {row["mode"] for row in plain} == {report["mode"]} and {row["precision"] for row in plain} == {"bfloat16"}
    assert (report["mode"], report["speedups"]) == fastest_backend([row for row in timed if row["precision"] == "bfloat16"])


def test_peak_memory_is_this_process_peak_in_gib():
    """The stage records' peak RAM: at least what the process holds now, in GiB (not KiB or TiB)."""
    import psutil

    from wrenlib.bench import peak_rss_gib

    now = psutil.Process().memory_info().rss / 2**30
    assert now * 0.95 <= peak_rss_gib() < psutil.virtual_memory().total / 2**30 + 1


def test_the_matmul_yardstick_counts_a_multiply_and_an_add_per_term_at_its_best_time(monkeypatch):
    """A product of two n x n matrices is 2 n^3 floating-point operations; the yardstick divides
    them by the fastest of its repeats (here a CPU clock that gives 0.5 s, then 0.25 s, then 1 s)."""
    from wrenlib import bench

    readings = iter([0.0, 0.5, 10.0, 10.25, 20.0, 21.0])
    monkeypatch.setattr(bench.time, "process_time", lambda: next(readings))
    assert bench.matmul_gflops(threads=1, size=64, repeats=3) == pytest.approx(2 * 64**3 / 0.25 / 1e9)


def test_the_explainer_memory_is_the_difference_of_two_probes_per_unit(monkeypatch):
    """One more unit costs the difference of the two probes' peaks (reported in KiB) divided by
    the difference of their counts, so what both share (imports, network) cancels."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from wrenlib.bench import explainer_memory

    if sys.platform != "linux":
        pytest.skip("the probe reads /proc/self/status")
    per_unit_kib = {"deeplift": 512 * 1024, "shap": 256 * 1024}  # 512 MiB, 256 MiB

    def probe(command, **kwargs):
        method, count = command[3], int(command[4])
        return SimpleNamespace(stdout=f"{300_000 + count * per_unit_kib[method]}\n")

    monkeypatch.setattr(subprocess, "run", probe)
    rows = {row["method"]: row for row in explainer_memory((16, 32), (2, 6))}
    assert rows["deeplift"]["GiB per unit"] == 0.5 and rows["shap"]["GiB per unit"] == 0.25
    assert rows["deeplift"]["bytes per pixel"] == 2**29 // (16 * 32) and rows["deeplift"]["per"] == "explained image"


def test_the_backend_benchmark_keeps_each_settings_best_round_and_compares_it_to_the_books(monkeypatch):
    """Images per second from a combination's fastest round (a slow spell in a later round does
    not count), and the speed-up of a faster setting above 1: here a clock on which deterministic
    work takes twice as long."""
    import torch

    from wrenlib import bench, explain, training

    clock = {"now": 0.0}
    calls = {}

    def work(kind):
        deterministic = torch.are_deterministic_algorithms_enabled()
        key = (kind, deterministic)
        calls[key] = calls.get(key, 0) + 1
        seconds = 2.0 if deterministic else 1.0
        clock["now"] += seconds * (5 if calls[key] > 2 else 1)  # the second round is slow

    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock["now"])
    monkeypatch.setattr(explain, "_timed_probabilities", lambda *args, **kwargs: work("lime"))
    monkeypatch.setattr(training, "training_step", lambda *args, **kwargs: work("train"))
    report = bench.benchmark_backend((32, 64), "cpu", lime_batch=8, train_batch=4, repeats=2,
                                     modes=("deterministic", "nondeterministic"), precisions=("off",))
    rows = {(row["workload"].split(" (")[0], row["mode"]): row for row in report["rows"]}
    assert rows["LIME batch", "deterministic"]["images_per_second"] == 4.0
    assert rows["training step", "nondeterministic"]["images_per_second"] == 4.0
    assert rows["LIME batch", "nondeterministic"]["speed-up"] == 2.0
    assert rows["training step", "deterministic"]["speed-up"] == 1.0


def test_a_calibration_chooses_on_the_profiles_precision_and_compares_layouts_in_the_chosen_mode(
        monkeypatch, tmp_path):
    """Only the timings in the precision the run computes in choose the mode (float32's may say
    otherwise), and the default layout's speed-up is its rate over channels-last's in that mode."""
    from wrenlib import bench

    def timed(size, device, repeats=2, modes=(), precisions=(), memory_format="channels_last", **sizes):
        if memory_format == "contiguous":
            return {"rows": [{"workload": "LIME batch", "precision": "float32", "mode": modes[0],
                              "memory format": "contiguous", "images_per_second": 50.0, "speed-up": 1.0}]}
        rates = {("float32", "deterministic"): 100.0, ("float32", "nondeterministic"): 200.0,
                 ("bfloat16", "deterministic"): 100.0, ("bfloat16", "nondeterministic"): 50.0}
        return {"rows": [{"workload": "LIME batch", "precision": precision, "mode": mode,
                          "memory format": "channels_last", "images_per_second": rate,
                          "speed-up": rate / rates[precision, "deterministic"]}
                         for (precision, mode), rate in rates.items()]}

    monkeypatch.setattr(bench, "benchmark_backend", timed)
    report = bench.calibrate_backend("quick", folder=tmp_path, device="cpu")  # quick computes in float32
    assert report["precision"] == "float32" and report["mode"] == "nondeterministic"
    assert report["speedups"] == {"deterministic": 1.0, "nondeterministic": 2.0}
    plain = [row for row in report["rows"] if row["memory format"] == "contiguous"]
    assert [row["speed-up"] for row in plain] == [0.25]  # 50 against channels-last's 200


def test_the_performance_page_judges_a_run_by_its_wall_time_and_its_whole_peak(tmp_path):
    """Jobs side by side: the time target is judged on the wall time (not the jobs' times added),
    the memory target on the higher of the run's peak and a job's, and a log that does not say the
    run was complete (one written before that was kept) is judged on neither."""
    from wrenlib.bench import write_performance_page

    log = {"profile": "quick", "device": "cpu (2 threads, 2 cores)", "machine": "x86_64, 2 cores", "finished": "now",
           "chapters": {"01_wren_dialects": {"seconds": 400.0, "ok": True, "peak_memory_gib": 2.0},
                        "03_training": {"seconds": 400.0, "ok": True, "peak_memory_gib": 3.0}},
           "preparations": {}, "complete": True, "jobs": 2, "wall_seconds": 540.0, "peak_memory_gib": 6.5}
    page = tmp_path / "performance.md"
    write_performance_page(page, log, tmp_path / "none", tmp_path / "none")
    text = page.read_text()
    assert "**9.0 min** of wall time for 2 chapters and 0 preparations, up to 2 side by side" in text
    assert "their own times add up to 13.3 min" in text
    assert "under 10 min on a 2-core CPU (met here: 9.0 min)" in text
    assert "peak memory under 6 GiB (not met: 6.50 GiB)" in text  # the run's, above every job's
    log.update(jobs=1, wall_seconds=800.0)  # one at a time: the jobs' own times are the run's
    del log["chapters"]["03_training"]
    write_performance_page(page, log, tmp_path / "none", tmp_path / "none")
    assert "**6.7 min** for 1 chapter and 0 preparations." in page.read_text()
    del log["complete"]
    write_performance_page(page, log, tmp_path / "none", tmp_path / "none")
    assert "are not judged here" in page.read_text() and "met here" not in page.read_text()


def test_the_performance_page_gives_the_trainings_rate_and_share_of_the_target(tmp_path, monkeypatch):
    """On a GPU the trainings' TFLOP per second of their jobs' time; on a CPU the share of the
    time target that the trainings' core-seconds, spread over the machine's cores, take."""
    from wrenlib import bench
    from wrenlib.model import ModelConfig, flops_per_image

    monkeypatch.setattr(bench.os, "cpu_count", lambda: 4)
    config = ModelConfig(32, 64)
    flops = 10 * 100 * flops_per_image(config)  # 10 epochs of 100 training images
    trained = {"model": config.to_dict(), "epochs": 10, "train_images": 100, "validation_images": 0}
    log = {"profile": "quick", "device": "cpu (4 threads, 4 cores)", "machine": "x86_64, 4 cores", "finished": "now",
           "chapters": {}, "preparations": {"cnn": {"seconds": 600.0, "ok": True, "cores_busy": 2.0,
                                                     "trained": [trained]}}}
    page = tmp_path / "performance.md"
    bench.write_performance_page(page, log, tmp_path / "none", tmp_path / "none")
    # 1,200 core-seconds over 4 cores: 5 min, half the 10-min target
    assert "the trainings alone need 5.0 min, 50% of the 10-min target." in page.read_text()
    log["device"] = "cuda: NVIDIA H200"
    bench.write_performance_page(page, log, tmp_path / "none", tmp_path / "none")
    assert f"in 600 s of their jobs' time: {flops / 600 / 1e12:.1f} TFLOP/s." in page.read_text()
    log["preparations"]["cnn"]["trained"] = [trained] * 1000  # enough arithmetic for a rate above 0.0
    bench.write_performance_page(page, log, tmp_path / "none", tmp_path / "none")
    assert f"in 600 s of their jobs' time: {1000 * flops / 600 / 1e12:.1f} TFLOP/s." in page.read_text()
    assert f"{1000 * flops / 600 / 1e12:.1f}" != "0.0"


def test_the_performance_page_describes_the_backend_mode_a_run_computed_in(tmp_path):
    """A run that chose another mode than deterministic says its numbers are not reproducible bit
    for bit, and lists the other modes' speed-ups; a deterministic run says one seed reproduces it."""
    from wrenlib.bench import backend_sentence

    assert backend_sentence({}) == "The jobs computed in torch's `deterministic` mode (one seed reproduces the run)."
    chosen = backend_sentence({"backend": {"mode": "cudnn-benchmark", "margin": 1.1, "speedups": {
        "deterministic": 1.0, "nondeterministic": 1.05, "cudnn-benchmark": 1.4}}})
    assert "`cudnn-benchmark` mode" in chosen and "`nondeterministic` 1.05x, `cudnn-benchmark` 1.4x;" in chosen
    assert "`deterministic` 1x" not in chosen and chosen.endswith("not reproducible bit for bit.")
    kept = backend_sentence({"backend": {"mode": "deterministic", "speedups": {"deterministic": 1.0,
                                                                                "nondeterministic": 1.02}}})
    assert "not reproducible" not in kept and "at least 1.1x as fast)." in kept


def test_a_kept_run_shows_its_jobs_longest_first_their_total_and_cut_off_jobs_as_lower_bounds(tmp_path):
    """The Kept runs section: the jobs' own time added up, each job longest first, a job cut off
    at 49.7 s shown as at least 49 s (never rounded up past what it ran), one job at a time not
    called side by side."""
    from wrenlib.bench import write_performance_page

    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir()
    (benchmarks / "jobs-quick-cpu-partial.json").write_text(json.dumps({
        "profile": "quick", "device": "cpu (toy)", "machine": "x86_64", "finished": "yesterday", "complete": False,
        "jobs": 1, "wall_seconds": 420.0, "seconds": {"01_a": 60.0, "03_b": 300.0, "02_c": 30.0},
        "peak_memory_gib": {"03_b": 2.5}, "cut_off_seconds": {"04_d": 49.7, "05_e": 120.2}}))
    page = tmp_path / "performance.md"
    write_performance_page(page, {"profile": "quick", "chapters": {}}, benchmarks, tmp_path / "none")
    text = page.read_text()
    assert "**a partial record**: only the jobs below have run, in one or more runs, 6.5 min of their own time" in text
    kept_line = next(line for line in text.splitlines() if line.startswith("Profile `quick` on cpu (toy)"))
    assert "side by side" not in kept_line and "the last run took 7.0 min of wall time." in kept_line
    order = [text.index(f"| {job} |") for job in ("03_b", "01_a", "02_c", "05_e", "04_d")]
    assert order == sorted(order)
    assert "| 03_b | 300 | 2.5 |" in text and "| 04_d | ≥ 49 (cut off) | — |" in text


def test_the_performance_page_gives_the_stages_total_and_readable_column_names(tmp_path):
    """The stage record's total in minutes to a tenth, and the bench's columns named in words
    (``clips_per_second`` is a key, not a heading)."""
    from wrenlib.bench import write_performance_page

    benchmarks, bench = tmp_path / "benchmarks", tmp_path / "bench"
    benchmarks.mkdir()
    bench.mkdir()
    (benchmarks / "stages-quick.json").write_text(json.dumps({
        "profile": {"name": "quick"}, "machine": "x86_64", "device": "cpu", "python": "3.12", "torch": "2.11",
        "stages": [{"stage": "training one CNN", "epochs": 4, "seconds_per_epoch": 10.0, "seconds": 40.0,
                    "precision": "float32", "peak_rss_gib": 1.0}], "total_seconds": 149.7}))
    (bench / "synth.json").write_text(json.dumps({"machine": "x86_64", "results": [
        {"benchmark": "surrogate generation", "processes": 2, "clips": 96, "clips_per_second": 8.1, "speed-up": 1.8}]}))
    page = tmp_path / "performance.md"
    write_performance_page(page, {"profile": "quick", "chapters": {}}, benchmarks, bench)
    text = page.read_text()
    assert "the stages above total 2.5 min." in text
    assert "| benchmark | processes | clips | clips per second | speed-up |" in text
