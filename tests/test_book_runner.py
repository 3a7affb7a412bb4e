"""make execute: a failing chapter stops the run with its name and a non-zero status."""

from __future__ import annotations

import math
import os

import nbformat
import pytest

from wrenlib.book import execute_chapters, write_status_page


def _project(tmp_path, cells):
    (tmp_path / "_toc.yml").write_text("root: book/intro\n")
    for folder in ("wrenlib", "notebooks", "book"):
        (tmp_path / folder).mkdir(exist_ok=True)  # again: chapters rewritten in place
    for name, source in cells.items():
        notebook = nbformat.v4.new_notebook()
        parameters = nbformat.v4.new_code_cell('PROFILE = "quick"')
        parameters.metadata["tags"] = ["parameters"]
        notebook.cells = [parameters, nbformat.v4.new_code_cell(source)]
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, tmp_path / "notebooks" / f"{name}.ipynb")
    return tmp_path


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failing_chapter_stops_the_run(jobs, tmp_path, isolated_artifacts, capsys):
    root = _project(tmp_path, {"01_good": "x = 1", "02_bad": "raise ValueError('broken chapter')",
                               "03_never": "y = 2"})
    status = execute_chapters("quick", kernel="python3", root=root, jobs=jobs, preparations=[])
    assert status == 1
    error = capsys.readouterr().err
    assert "02_bad failed" in error and "broken chapter" in error
    assert (root / "book" / "chapters" / "01_good.ipynb").is_file()
    assert not (root / "book" / "chapters" / "03_never.ipynb").exists()
    assert "not run after the failure: 03_never (--keep-going" in error
    status_page = (root / "book" / "status.md").read_text()
    assert "**failed**" in status_page and "01_good" in status_page


def test_keep_going_runs_what_needs_nothing_that_failed(tmp_path, isolated_artifacts, capsys):
    """Chapter 04 waits for 02 (CHAPTER_NEEDS), which fails; 12 needs only 03, not in the run."""
    root = _project(tmp_path, {"02_bad": "raise ValueError('broken chapter')", "04_needs_02": "x = 1",
                               "12_apart": "y = 2"})
    status = execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[], keep_going=True)
    assert status == 1
    assert (root / "book" / "chapters" / "12_apart.ipynb").is_file()
    assert not (root / "book" / "chapters" / "04_needs_02.ipynb").exists()
    error = capsys.readouterr().err
    assert "02_bad failed" in error and "not run after the failure: 04_needs_02\n" in error


def test_after_a_failure_no_new_job_starts_and_one_worker_runs_one_job_at_a_time(tmp_path, isolated_artifacts, capsys):
    """Without --keep-going a failure ends the run: a chapter that needs nothing that failed is
    not started after it. With one worker, independent chapters run one after the other."""
    import json

    root = _project(tmp_path, {"02_bad": "raise ValueError('broken chapter')", "12_apart": "y = 2"})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[]) == 1
    assert not (root / "book" / "chapters" / "12_apart.ipynb").exists()
    assert "not run after the failure: 12_apart" in capsys.readouterr().err
    stamp = ("import json, time\nfrom pathlib import Path\nstarted = time.time()\ntime.sleep(1)\n"
             "Path({path!r}).write_text(json.dumps([started, time.time()]))")
    names = ["04_x", "06_y", "12_z"]  # none waits for another in the run
    (tmp_path / "one").mkdir()
    root = _project(tmp_path / "one", {name: stamp.format(path=str(tmp_path / f"{name}.json")) for name in names})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[]) == 0
    spans = sorted(json.loads((tmp_path / f"{name}.json").read_text()) for name in names)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), spans


def test_an_interrupted_run_keeps_what_finished_and_its_wall_time(tmp_path, isolated_artifacts, monkeypatch, capsys):
    """Ctrl-C (or a time limit's SIGINT) while a job runs: the log keeps the finished job, the
    run's wall time and that it was interrupted; the status is 130; the running job and its kernel
    are stopped at once."""
    import concurrent.futures
    import json
    import time

    import psutil

    real_wait, calls = concurrent.futures.wait, []

    def wait_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # while the second chapter runs
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "wait", wait_then_interrupt)
    root = _project(tmp_path, {"01_first": "x = 1", "02_second": "import time\ntime.sleep(120)"})
    started = time.perf_counter()
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[]) == 130
    assert time.perf_counter() - started < 60  # the running chapter was stopped, not waited for
    assert not [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    assert log["interrupted"] is True and log["wall_seconds"] >= log["chapters"]["01_first"]["seconds"]
    assert set(log["chapters"]) == {"01_first"} and "bounds" not in log
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is POSIX's")
def test_a_schedulers_sigterm_interrupts_the_run_like_ctrl_c():
    """A batch scheduler ends a job at its time limit with SIGTERM: the run keeps what finished."""
    import signal

    from wrenlib.book import _restore_sigterm, _sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    previous = _sigterm_as_interrupt()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler as the call returns
    finally:
        _restore_sigterm(previous)
    assert signal.getsignal(signal.SIGTERM) == before


def test_resume_goes_on_with_the_last_run_only(tmp_path, isolated_artifacts, monkeypatch, capsys):
    """A complete run, then a run cut short after its first chapter, then --resume: only the
    chapters the cut-short run did not finish run again (not those an earlier run finished), its
    preparation is not trained again, the parts' wall times add up, and the run, now whole, has
    its bounds; a resume with nothing left runs nothing."""
    import concurrent.futures
    import json

    root = _project(tmp_path, {"01_a": "x = 1", "02_b": "y = 2", "03_c": "z = 3"})
    toy = _recording("cnn_toy", ("02",), key="made")
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[toy]) == 0
    first_log = isolated_artifacts / "quick" / "execution.json"
    first_log.write_text(json.dumps({key: value for key, value in json.loads(first_log.read_text()).items()
                                     if key not in ("device", "machine", "finished", "jobs", "wall_seconds")}))
    real_wait, calls, ends = concurrent.futures.wait, [], []

    def wait_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # after 01_a and the preparation: while 02_b runs
            # what a part killed outright (no handler runs) leaves: its wall time up to its last job
            written = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
            ends.append(max(entry["started"] + entry["seconds"] for entry in written["chapters"].values()
                            if entry["run"] == written["run_id"]))
            assert written["wall_seconds"] >= ends[0] - 0.1
            # and where it ran, and when its last job finished: a partial record of it names both
            assert written["device"].startswith("cpu") and written["machine"] and written["jobs"] == 1
            assert written["finished"].endswith("UTC")
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "wait", wait_then_interrupt)
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[toy]) == 130
    monkeypatch.setattr(concurrent.futures, "wait", real_wait)
    cut = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    assert cut["interrupted"] and cut["parts"] == 1 and "bounds" not in cut
    assert {job for kind in ("chapters", "preparations") for job, entry in cut[kind].items()
            if entry["run"] == cut["run_id"]} == {"01_a", "cnn_toy"}
    # the first part peaked high (as a training beside a chapter would): the run's peak stays its highest part's
    cut["peak_memory_gib"] = 99.0
    (isolated_artifacts / "quick" / "execution.json").write_text(json.dumps(cut))
    capsys.readouterr()
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[toy], resume=True) == 0
    out = capsys.readouterr().out
    assert "1 chapter(s) it executed are left as they are (01_a)" in out and "cnn_toy ..." not in out
    assert f"resuming the run started {cut['run_id'][:10]} " in out  # named by when it began: it never finished
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    # the second part's jobs start after the first part's time: the timeline's parts do not overlap
    assert min(log["chapters"][stem]["started"] for stem in ("02_b", "03_c")) >= cut["wall_seconds"]
    assert log["run_id"] == cut["run_id"] and log["parts"] == 2 and not log["interrupted"]
    assert log["chapters"]["01_a"] == cut["chapters"]["01_a"]  # not run again
    assert log["preparations"]["cnn_toy"] == cut["preparations"]["cnn_toy"]  # not trained again
    assert log["run_jobs"] == ["01_a", "02_b", "03_c", "cnn_toy"] and log["bounds"]["chain"][0] in ("01_a", "cnn_toy")
    assert log["wall_seconds"] > cut["wall_seconds"]
    assert log["peak_memory_gib"] == 99.0  # not this part's alone
    assert "peak memory under 6 GiB (not met: 99.00 GiB)" in (root / "book" / "performance.md").read_text()
    assert "the run came in 2 parts" in (root / "book" / "status.md").read_text()
    assert "The run came in 2 parts" in (root / "book" / "performance.md").read_text()
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[toy], resume=True) == 0
    assert "nothing left to run" in capsys.readouterr().out


def test_a_part_killed_outright_by_older_code_does_not_inherit_the_last_runs_wall_time(tmp_path, isolated_artifacts):
    """Code before the log kept the wall time after each job left, for a part killed outright, the
    earlier complete run's wall time beside the new run's id: resumed, the run goes on from the end
    of its own last job, not from that."""
    import json

    root = _project(tmp_path, {"01_a": "x = 1", "02_b": "y = 2"})
    run = "2024-05-02T10:00:00.000000Z"
    log = {"run_id": run, "parts": 1, "run_jobs": ["01_a", "02_b"], "profile": "quick",
           "wall_seconds": 5000.0, "finished": "2024-05-01 09:00 UTC",  # the run before, complete
           "chapters": {"01_a": {"ok": True, "run": run, "seconds": 3.0, "started": 0.0, "peak_memory_gib": 0.1,
                                 "cores_busy": 1.0}}, "preparations": {}}
    (isolated_artifacts / "quick").mkdir(parents=True, exist_ok=True)
    (isolated_artifacts / "quick" / "execution.json").write_text(json.dumps(log))
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[], resume=True) == 0
    after = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    assert 3.0 <= after["chapters"]["02_b"]["started"] < 100 and after["wall_seconds"] < 100
    assert after["parts"] == 2 and after["chapters"]["01_a"] == log["chapters"]["01_a"]


@pytest.mark.skipif(os.name != "posix", reason="local sockets are POSIX's")
def test_chapters_kernels_talk_over_sockets_of_their_own_and_get_the_runs_threads(tmp_path, isolated_artifacts,
                                                                                 monkeypatch):
    """Two kernels side by side once took each other's sockets (named after the working folder)."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    check = ("import json, os\nfrom ipykernel import get_connection_info\n"
             "info = json.loads(get_connection_info())\n"
             "assert info['transport'] == 'ipc' and os.path.basename(os.path.dirname(info['ip'])).startswith("
             "'wrenbook-kernel-'), info\n"
             "assert os.environ['WRENBOOK_TORCH_THREADS'] == '3'")
    root = _project(tmp_path, {"04_one": check, "06_two": check})  # neither waits for the other
    monkeypatch.setenv("WRENBOOK_TORCH_THREADS", "3")
    assert execute_chapters("quick", kernel="python3", root=root, jobs=2, preparations=[]) == 0
    assert not list((tmp_path / "tmp").glob("wrenbook-kernel-*"))  # each folder went with its kernel


def test_status_page_lists_chapters_device_and_versions(tmp_path):
    log = {"profile": "quick", "device": "cpu (2 threads)", "machine": "x86_64", "finished": "now",
           "chapters": {"01_a": {"seconds": 12.5, "ok": True, "peak_memory_gib": 1.5},
                        "02_b": {"seconds": 1.0, "ok": False}}, "versions": {"torch": "2.13.0"}}
    write_status_page(tmp_path / "status.md", log)
    text = (tmp_path / "status.md").read_text()
    for fragment in ("`quick`", "cpu (2 threads)", "| [01_a](chapters/01_a.ipynb) | 12.5 | 1.50 | executed |",
                     "| [02_b](chapters/02_b.ipynb) | 1.0 | — | **failed** |",
                     "| torch | 2.13.0 |", "Total execution time:** 14 s", "all from the run described here"):
        assert fragment in text
    # a run of one chapter: the others' rows are an earlier run's, and say so
    log.update(run_id="b", chapters={"01_a": {**log["chapters"]["01_a"], "run": "a"},
                                     "02_b": {"seconds": 2.0, "ok": True, "run": "b"}})
    write_status_page(tmp_path / "status.md", log)
    text = (tmp_path / "status.md").read_text()
    assert "| [01_a](chapters/01_a.ipynb) | 12.5 | 1.50 | executed in an earlier run |" in text
    assert "an earlier one for 1 chapter it did not run" in text and "Total execution time:** 2 s" in text
    log["preparations"] = {"cnn_old": {"seconds": 5.0, "ok": True, "run": "a", "description": "a CNN"},
                           "cnn_new": {"seconds": 6.0, "ok": True, "run": "b", "description": "a CNN"}}
    write_status_page(tmp_path / "status.md", log)
    text = (tmp_path / "status.md").read_text()
    assert "| `cnn_old` | a CNN | 5.0 | — | done in an earlier run |" in text
    assert "| `cnn_new` | a CNN | 6.0 | — | done |" in text
    assert "loaded from the cache" not in text  # a log from before the made lists were kept claims nothing
    # a preparation that found all its work in the cache says so, and the page says whose numbers they are
    log["preparations"]["cnn_new"].update(made=[], trained=[])
    log["preparations"]["maps"] = {"seconds": 9.0, "ok": True, "run": "b", "description": "maps",
                                   "made": ["12 lime maps"], "trained": []}
    write_status_page(tmp_path / "status.md", log)
    text = (tmp_path / "status.md").read_text()
    assert "| `cnn_new` | a CNN | 6.0 | — | loaded from the cache |" in text
    assert "| `maps` | maps | 9.0 | — | done |" in text
    assert 'The 1 preparation marked "loaded from the cache" found their work' in text


def test_start_chapter_seeds_and_loads_the_asked_model(monkeypatch):
    """Every chapter from 04 on starts with this one call; it must pass profile, seed and
    background through and seed the random state before anything is drawn."""
    import numpy as np
    import torch

    from wrenlib import book, training

    asked = []

    def fake_load(profile, background="mixed", seed=0, device=None, progress=True):
        asked.append((profile, background, seed, str(device), progress, float(torch.rand(1))))
        return "model", None, "images"

    monkeypatch.setattr(training, "load_or_train_model", fake_load)
    first = book.start_chapter("quick", seed=3, background="white", device="cpu")
    draw = np.random.random()
    second = book.start_chapter("quick", seed=3, background="white", device="cpu")
    assert first[0].name == "quick" and str(first[1]) == "cpu" and first[2:] == ("model", "images")
    assert asked[0][:5] == ("quick", "white", 3, "cpu", False)
    assert asked[0][5] == asked[1][5] and np.random.random() == draw  # seeded the same way both times


def test_executed_chapters_get_launch_links_seeds_and_timings(tmp_path, isolated_artifacts):
    import json

    root = _project(tmp_path, {"01_only": "x = 1"})
    (root / "_config.yml").write_text("repository:\n  url: https://github.com/someone/somebook/\n")
    source = root / "notebooks" / "01_only.ipynb"
    notebook = nbformat.read(source, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell("# Only\n\nIntro."))
    notebook.cells[1].source = 'PROFILE = "quick"\nSEED = 7'
    notebook.cells.append(nbformat.v4.new_code_cell("from wrenlib.metrics import mask_auc, region_share\n"
                                                    "from wrenlib.metrics import mask_auc\nimport numpy"))
    nbformat.write(notebook, source)
    assert execute_chapters("quick", kernel="python3", root=root, preparations=[]) == 0
    assert execute_chapters("quick", kernel="python3", root=root, preparations=[]) == 0  # a re-run adds no second line
    executed = nbformat.read(root / "book" / "chapters" / "01_only.ipynb", as_version=4)
    links = [cell for cell in executed.cells if "launch-links" in cell.metadata.get("tags", [])]
    assert len(links) == 1 and executed.cells.index(links[0]) == 1  # under the introduction
    assert ("https://colab.research.google.com/github/someone/somebook/blob/main/notebooks/01_only.ipynb"
            in links[0].source and "raw/main/notebooks/01_only.py" in links[0].source)
    assert "https://mybinder.org/v2/gh/someone/somebook/main?labpath=notebooks%2F01_only.ipynb" in links[0].source
    assert links[0].source.endswith("{py:obj}`~wrenlib.metrics.mask_auc`, {py:obj}`~wrenlib.metrics.region_share`")
    assert "`SEED=7`" in (root / "book" / "status.md").read_text()
    results = json.loads((isolated_artifacts / "quick" / "results.json").read_text())
    assert set(results["execution_seconds"]) == {"01_only"}
    assert results["execution_total_seconds"] == results["execution_seconds"]["01_only"] > 0
    # the kernel's memory was seen while it ran (a Python kernel with numpy holds tens of MiB)
    assert 0.02 < results["execution_peak_memory_gib"]["01_only"] == results["execution_peak_memory_max_gib"] < 4
    assert results["execution_peak_memory_run_gib"] > 0.02  # the whole run, sampled apart from the chapter


def test_chapters_whose_prerequisites_have_finished_run_side_by_side(tmp_path, isolated_artifacts):
    """04 and 05 need only 02 (not in this run), so they start together; 09 needs both and waits."""
    import json

    from wrenlib.book import chapter_prerequisites

    stamp = ("import json, time\nfrom pathlib import Path\nstarted = time.time()\ntime.sleep({sleep})\n"
             "Path({path!r}).write_text(json.dumps([started, time.time()]))\n"
             "from wrenlib.cache import record_result\nrecord_result('quick', {name!r}, 1, glue=False)")
    names = ["04_first", "05_second", "09_after_both"]
    root = _project(tmp_path, {name: stamp.format(sleep=3 if name != names[2] else 0,
                                                  path=str(tmp_path / f"{name}.json"), name=name)
                               for name in names})
    assert chapter_prerequisites("09_after_both", names) == {"04_first", "05_second"}
    assert chapter_prerequisites("05_second", names) == set()
    assert chapter_prerequisites("99_scorecard", [*names, "99_scorecard"]) == set(names)  # not listed: waits for all
    assert execute_chapters("quick", kernel="python3", root=root, jobs=2, preparations=[]) == 0
    spans = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in names}
    assert spans["04_first"][0] < spans["05_second"][1] and spans["05_second"][0] < spans["04_first"][1]  # overlap
    assert spans["09_after_both"][0] >= max(spans["04_first"][1], spans["05_second"][1])
    results = json.loads((isolated_artifacts / "quick" / "results.json").read_text())
    assert {"04_first", "05_second", "09_after_both"} <= set(results)
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    assert log["jobs"] == 2 and log["wall_seconds"] < sum(entry["seconds"] for entry in log["chapters"].values())
    bounds = log["bounds"]  # the longest chain is one of the 3-second chapters, then 08
    assert bounds["chain"][-1] == "09_after_both" and bounds["chain"][0] in ("04_first", "05_second")
    assert bounds["work_seconds"] == pytest.approx(sum(e["seconds"] for e in log["chapters"].values()), abs=0.2)
    chapters = log["chapters"]
    assert abs(chapters["04_first"]["started"] - chapters["05_second"]["started"]) < 1.5  # started together
    assert chapters["09_after_both"]["started"] >= chapters["04_first"]["started"] + chapters["04_first"]["seconds"] - 0.5
    assert "side by side" in (root / "book" / "status.md").read_text()


def _recording(name, used_by, needs=(), key=None, call="wrenlib.cache:record_result"):
    """A toy preparation: records ``key`` in results.json (or calls ``call`` with a bad name)."""
    from wrenlib.book import Preparation

    arguments = (("profile", "quick"), ("key", key or name), ("value", 1), ("glue", False))
    if call != "wrenlib.cache:record_result":
        arguments = (("name", "no such profile"),)
    return Preparation(name, f"toy {name}", call, arguments, needs, used_by)


@pytest.mark.parametrize("jobs", [1, 2])
def test_preparations_finish_before_the_chapters_that_use_them(jobs, tmp_path, isolated_artifacts):
    """A chapter reads what its preparation recorded; a preparation no chapter of the run uses is
    not run; one that needs a chapter waits for it."""
    import json

    check = ("import wrenlib\nresults = wrenlib.read_results('quick')\n"
             "assert results.get({key!r}) == 1, sorted(results)")
    root = _project(tmp_path, {"01_first": "x = 1", "04_user": check.format(key="made_for_04")})
    preparations = [_recording("cnn_toy", ("04",), needs=("01",), key="made_for_04"),
                    _recording("cnn_unused", ("07",))]
    assert execute_chapters("quick", kernel="python3", root=root, jobs=jobs, preparations=preparations) == 0
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    assert set(log["preparations"]) == {"cnn_toy"} and log["preparations"]["cnn_toy"]["ok"]
    entry = log["preparations"]["cnn_toy"]
    assert entry["started"] >= log["chapters"]["01_first"]["started"] + log["chapters"]["01_first"]["seconds"] - 0.5
    assert entry["peak_memory_gib"] > 0.02  # its own process (Python with wrenlib) was measured
    assert entry["trained"] == []  # it trained no CNN (the Performance page's arithmetic counts those)
    assert "matmul_gflops_per_core" not in entry  # nor the yardstick of that arithmetic
    results = json.loads((isolated_artifacts / "quick" / "results.json").read_text())
    assert set(results["execution_preparation_seconds"]) == {"cnn_toy"}
    assert results["execution_total_seconds"] == pytest.approx(
        sum(results["execution_seconds"].values()) + results["execution_preparation_seconds"]["cnn_toy"], abs=0.2)
    status_page = (root / "book" / "status.md").read_text()
    # the toy computed nothing for the cache (wrenlib.cache.MADE): the page says its work was found there
    assert "| `cnn_toy` | toy cnn_toy |" in status_page and "| loaded from the cache |" in status_page
    assert entry["made"] == []


def test_a_failing_preparation_stops_the_chapters_that_need_it(tmp_path, isolated_artifacts, capsys):
    root = _project(tmp_path, {"04_user": "x = 1"})
    failing = _recording("cnn_broken", ("04",), call="wrenlib.profiles:get_profile")
    assert execute_chapters("quick", kernel="python3", root=root, jobs=2, preparations=[failing]) == 1
    error = capsys.readouterr().err
    assert "preparation cnn_broken (toy cnn_broken) failed" in error and "unknown profile" in error
    assert not (root / "book" / "chapters" / "04_user.ipynb").exists()
    # --keep-going runs what needs nothing that failed, and still not the chapter that needs the CNN
    root = _project(tmp_path, {"04_user": "x = 1", "12_apart": "y = 2"})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[failing], keep_going=True) == 1
    assert (root / "book" / "chapters" / "12_apart.ipynb").is_file()
    assert not (root / "book" / "chapters" / "04_user.ipynb").exists()
    assert "not run after the failure: 04_user" in capsys.readouterr().err


def test_resume_runs_again_the_chapters_that_failed(tmp_path, isolated_artifacts):
    """A chapter that failed is not finished: after it is fixed, --resume runs it (and only it)."""
    import json

    ran = tmp_path / "ran.txt"
    cell = "open({path!r}, 'a').write('{name} ')"
    root = _project(tmp_path, {"01_a": cell.format(path=str(ran), name="01_a"), "02_b": "raise ValueError('broken')"})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[], keep_going=True) == 1
    _project(tmp_path, {"02_b": cell.format(path=str(ran), name="02_b")})  # fixed
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[], resume=True) == 0
    assert ran.read_text().split() == ["01_a", "02_b"]
    assert json.loads((isolated_artifacts / "quick" / "execution.json").read_text())["chapters"]["02_b"]["ok"]


def test_job_priorities_follow_the_longest_chain_of_waiting_work():
    from wrenlib.book import job_priorities

    needs = {"train": set(), "chapter": {"train"}, "long_alone": set(), "unknown": set()}
    priority = job_priorities(needs, {"train": 10, "chapter": 100, "long_alone": 50})
    assert priority == {"train": 110, "chapter": 100, "long_alone": 50, "unknown": 60}
    assert max(priority, key=priority.get) == "train"  # short itself, but the most work waits for it


def test_the_critical_path_is_the_longest_chain_of_waiting_jobs():
    from wrenlib.book import critical_path

    needs = {"01": set(), "prep": {"01"}, "03": {"01", "prep"}, "04": {"01"}, "99": {"03", "04"}}
    seconds = {"01": 5, "prep": 100, "03": 10, "04": 90, "99": 1}
    assert critical_path(needs, seconds) == (116, ["01", "prep", "03", "99"])
    assert critical_path({}, {}) == (0.0, [])


def test_the_books_preparations_train_what_its_chapters_load():
    """Every preparation calls a wrenlib function with arguments it takes, with the chapters'
    default seed, for every stability seed and confound strength of the profile."""
    import inspect
    from importlib import import_module
    from pathlib import Path

    from wrenlib.book import PREPARATION_SEED, book_preparations, chapter_parameters, chapter_sources
    from wrenlib.profiles import get_profile

    for profile in ("quick", "full"):
        preparations = book_preparations(profile)
        sizes = get_profile(profile)
        # the CNNs, then the five map jobs and the two data jobs
        assert len(preparations) == 3 + sizes.stability_seeds - 1 + sum(s > 0 for s in sizes.confound_strengths) + 5 + 2
        for preparation in preparations:
            module, function = preparation.call.split(":")
            inspect.signature(getattr(import_module(module), function)).bind(**dict(preparation.arguments))
            assert dict(preparation.arguments)["seed"] == PREPARATION_SEED
    root = Path(__file__).resolve().parents[1]
    users = {number for p in book_preparations("quick") for number in p.used_by}
    for chapter in chapter_sources(root):
        if chapter.stem[:2] in users:
            assert chapter_parameters(chapter)["SEED"] == str(PREPARATION_SEED), chapter.stem


def test_chapters_kept_apart_never_run_side_by_side(tmp_path, isolated_artifacts):
    """03 and 07 (each times the paper-size network) wait for one another although both are
    ready at the start; a third chapter fills the free worker meanwhile."""
    import json

    from wrenlib.book import kept_apart

    assert kept_apart("03_training", ["07_shap"]) and kept_apart("07_shap", ["cnn_black", "03_training"])
    assert not kept_apart("04_gradcam", ["07_shap"]) and not kept_apart("03_training", ["cnn_mixed"])
    stamp = ("import json, time\nfrom pathlib import Path\nstarted = time.time()\ntime.sleep(2)\n"
             "Path({path!r}).write_text(json.dumps([started, time.time()]))")
    names = ["03_heavy", "06_light", "07_heavy"]
    root = _project(tmp_path, {name: stamp.format(path=str(tmp_path / f"{name}.json")) for name in names})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=2, preparations=[]) == 0
    spans = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in names}
    first, second = sorted([spans["03_heavy"], spans["07_heavy"]])
    assert second[0] >= first[1]  # one after the other
    assert spans["06_light"][0] < first[1]  # the free worker was not left idle


def test_a_run_without_a_log_orders_its_jobs_by_the_kept_times(tmp_path, isolated_artifacts):
    """A fresh clone has no execution log; the seconds kept in book/benchmarks (``wrenlib bench
    --job-times``) still put the longest work first, and a complete run can be kept in turn."""
    import json

    from wrenlib.book import job_times_path, save_job_times

    names = ["04_short", "06_long"]  # both wait only for chapter 02, which is not in the run
    root = _project(tmp_path, {name: "x = 1" for name in names})
    with pytest.raises(ValueError, match="no complete run"):
        save_job_times(root, "quick")
    kept = job_times_path(root, "quick", "cpu")
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps({"device": "cpu (toy)", "finished": "yesterday",
                                "seconds": {"04_short": 1.0, "06_long": 500.0}}))
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[]) == 0
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    assert log["chapters"]["06_long"]["started"] < log["chapters"]["04_short"]["started"]  # by the kept times
    assert "book/benchmarks/jobs-quick-cpu.json" in log["order_from"]
    assert "book/benchmarks/jobs-quick-cpu.json" in (root / "book" / "performance.md").read_text()
    assert save_job_times(root, "quick") == kept  # this run replaces the kept one
    assert json.loads(kept.read_text())["seconds"] == {name: round(log["chapters"][name]["seconds"], 1)
                                                        for name in names}
    assert json.loads(kept.read_text())["complete"] is True
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[]) == 0
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    assert log["order_from"] == "this checkout's earlier runs"


def test_jobs_a_kept_record_lacks_take_another_records_times_scaled(tmp_path):
    """A first GPU run's partial record lacks the chapters it did not reach: they take their time
    in a complete record of another run, scaled by the median ratio over the jobs both have, so
    that a long chapter is still started early; a partial record is no such source."""
    import json

    from wrenlib.book import expected_from_runs, job_times_path

    benchmarks = tmp_path / "book" / "benchmarks"
    benchmarks.mkdir(parents=True)
    gpu = job_times_path(tmp_path, "full", "cuda", partial=True)
    gpu.write_text(json.dumps({"device": "cuda: toy", "complete": False,
                               "seconds": {"01_a": 20.0, "02_b": 40.0, "03_c": 10.0, "04_d": 30.0}}))
    (benchmarks / "jobs-full-cpu-partial.json").write_text(json.dumps({
        "device": "cpu: partial", "complete": False, "seconds": {"01_a": 1.0, "02_b": 1.0, "03_c": 1.0, "10_e": 1.0}}))
    (benchmarks / "jobs-quick-cpu.json").write_text(json.dumps({
        "device": "cpu: toy", "complete": True,
        "seconds": {"01_a": 10.0, "02_b": 10.0, "03_c": 10.0, "04_d": 100.0, "10_e": 50.0, "99_f": 2.0}}))
    expected, source = expected_from_runs(tmp_path, "full", "cuda", {})
    # ratios over the shared jobs: 20/10, 40/10, 10/10, 30/100; their median is 1.5
    assert expected["10_e"] == pytest.approx(75.0) and expected["99_f"] == pytest.approx(3.0)
    assert expected["01_a"] == 20.0  # measured on this device: kept as it is
    assert "jobs-quick-cpu.json" in source and "median ratio over the 4 jobs" in source
    expected, _ = expected_from_runs(tmp_path, "full", "cuda", {}, "peak_memory_gib")
    assert expected == {}  # memory is not scaled from another machine's
    (benchmarks / "jobs-quick-cpu.json").unlink()
    expected, source = expected_from_runs(tmp_path, "full", "cuda", {})
    assert "10_e" not in expected and "neither" not in source  # the partial CPU record serves no one


def test_a_partial_run_is_kept_only_when_asked_and_the_page_says_it_was_partial(tmp_path, isolated_artifacts):
    """The full profile on a CPU takes many hours: the chapters that did run are its evidence."""
    import json

    from wrenlib.bench import write_performance_page
    from wrenlib.book import job_times_path, save_job_times

    root = _project(tmp_path, {"01_first": "x = 1", "02_second": "y = 2"})
    with pytest.raises(ValueError, match="no finished job of the profile 'quick'"):
        save_job_times(root, "quick", partial=True)
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[],
                            only=["01_first"]) == 0
    with pytest.raises(ValueError, match="no complete run"):
        save_job_times(root, "quick")  # one chapter of two is not a run to order a whole book by
    kept = save_job_times(root, "quick", partial=True)
    assert kept == job_times_path(root, "quick", "cpu", partial=True) != job_times_path(root, "quick", "cpu")
    record = json.loads(kept.read_text())
    assert record["complete"] is False and list(record["seconds"]) == ["01_first"]
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    page = tmp_path / "performance.md"
    write_performance_page(page, log, root / "book" / "benchmarks", tmp_path / "no-bench")
    text = page.read_text()
    assert "## Kept runs" in text and "**a partial record**: only the jobs below have run" in text
    assert f"| 01_first | {record['seconds']['01_first']:.0f} |" in text
    assert f"the last run took {log['wall_seconds'] / 60:.1f} min of wall time." in text
    assert record["parts"] == 1  # a resumed run's wall time is its parts' together, and the page says so
    kept.write_text(json.dumps({**record, "parts": 2}))
    write_performance_page(page, log, root / "book" / "benchmarks", tmp_path / "no-bench")
    assert "min of wall time, its 2 parts together (resumed with `--resume`)." in page.read_text()
    kept.write_text(json.dumps({**record, "note": "Stopped at the device's time limit."}))  # a kept run's note shows
    write_performance_page(page, log, root / "book" / "benchmarks", tmp_path / "no-bench")
    assert "*Stopped at the device's time limit.*" in page.read_text()
    # the other chapter in a run of its own: the book has run, but no one run had all of it
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[],
                            only=["02_second"]) == 0
    with pytest.raises(ValueError, match="no complete run"):
        save_job_times(root, "quick")
    assert list(json.loads(save_job_times(root, "quick", partial=True).read_text())["seconds"]) == ["01_first",
                                                                                                  "02_second"]
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[]) == 0
    assert json.loads(save_job_times(root, "quick").read_text())["complete"] is True
    # a job that failed has no time to keep: its seconds are those of a run that broke off
    root = _project(tmp_path, {"03_bad": "raise ValueError('broken')"})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[], only=["03_bad"]) == 1
    assert sorted(json.loads(save_job_times(root, "quick", partial=True).read_text())["seconds"]) == [
        "01_first", "02_second"]


def test_the_log_is_written_after_every_job_so_a_run_cut_short_keeps_what_finished(tmp_path, isolated_artifacts):
    import json

    (isolated_artifacts / "quick").mkdir(parents=True)
    (isolated_artifacts / "quick" / "execution.json").write_text(json.dumps(
        {"chapters": {}, "preparations": {}, "bounds": {"work_seconds": 1.0}, "run_jobs": ["01_first"]}))
    check = ("import json, os\n"
             "log = json.load(open(os.path.join(os.environ['WRENBOOK_ARTIFACTS'], 'quick', 'execution.json')))\n"
             "assert log['chapters']['01_first']['ok'], log\n"
             "assert 'bounds' not in log and log['run_jobs'] == ['01_first', '02_check'], log")
    root = _project(tmp_path, {"01_first": "x = 1", "02_check": check})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[]) == 0


def test_a_preparation_reports_the_trainings_it_did(monkeypatch):
    """Only those of its own run: a worker process may have trained before."""
    from wrenlib import book, training

    monkeypatch.setattr(training, "TRAINED", [{"epochs": 99}])
    monkeypatch.setattr(book.Preparation, "run", lambda self: training.TRAINED.append({"epochs": 3}))
    outcome = book._run_preparation(_recording("cnn_toy", ("04",)))
    assert outcome["error"] is None and outcome["trained"] == [{"epochs": 3}] and outcome["made"] == []
    assert outcome["matmul_gflops_per_core"] > 0.1  # the arithmetic's yardstick, in the same process


def test_a_preparation_ends_the_worker_processes_it_started(monkeypatch):
    """joblib keeps map_batches's workers idle for 5 minutes, and a job's process waits for its
    children before it exits: a preparation that synthesised clips held its slot of the run, and
    every job queued behind it, for those 5 minutes."""
    import psutil

    from wrenlib import book
    from wrenlib.runtime import map_batches

    def workers():
        return [child for child in psutil.Process().children(recursive=True)
                if "loky" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())]

    started = []

    def synthesise(self):
        assert list(map_batches(abs, [-1, -2, 3, -4], 2)) == [1, 2, 3, 4]
        started.extend(workers())

    monkeypatch.setattr(book.Preparation, "run", synthesise)
    outcome = book._run_preparation(_recording("cnn_toy", ("04",)))
    assert outcome["error"] is None and len(started) == 2  # the job did start joblib's workers
    _, alive = psutil.wait_procs(workers(), timeout=30)
    assert not alive, f"{len(alive)} joblib workers outlived the preparation"


def test_jobs_whose_peaks_would_pass_the_memory_budget_run_one_after_the_other(tmp_path, isolated_artifacts):
    """The peaks of a kept run (or of this checkout's) keep two large jobs apart; small ones overlap."""
    import json

    from wrenlib.book import job_times_path, memory_budget_gib, over_memory_budget

    assert memory_budget_gib("quick") == 5.5
    import psutil

    total = psutil.virtual_memory().total / 2**30
    assert memory_budget_gib("full") == pytest.approx(0.8 * total - 0.5)  # no target: the machine's, GPU or not
    peaks = {"03_training": 4.0, "10_sanity": 1.8, "cnn_mixed": 1.1}
    assert over_memory_budget("10_sanity", ["03_training"], peaks, 5.5)
    assert not over_memory_budget("cnn_mixed", ["03_training"], peaks, 5.5)
    assert not over_memory_budget("03_training", [], peaks, 5.5)  # alone, a job always starts
    assert not over_memory_budget("03_training", [], {"03_training": 99.0}, 5.5)  # even one larger than the budget
    assert not over_memory_budget("unmeasured", ["03_training"], peaks, 5.5)
    assert not over_memory_budget("10_sanity", ["03_training"], peaks, None)  # no target, no budget
    stamp = ("import json, time\nfrom pathlib import Path\nstarted = time.time()\ntime.sleep(2)\n"
             "Path({path!r}).write_text(json.dumps([started, time.time()]))")
    names = ["04_large", "06_large"]  # both wait only for chapter 02, which is not in the run
    root = _project(tmp_path, {name: stamp.format(path=str(tmp_path / f"{name}.json")) for name in names})
    kept = job_times_path(root, "quick", "cpu")
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps({"seconds": {}, "peak_memory_gib": {"04_large": 3.0, "06_large": 3.0}}))
    assert execute_chapters("quick", kernel="python3", root=root, jobs=2, preparations=[]) == 0
    first, second = sorted(json.loads((tmp_path / f"{name}.json").read_text()) for name in names)
    assert second[0] >= first[1]  # one after the other
    kept.write_text(json.dumps({"seconds": {}, "peak_memory_gib": {"04_large": 1.0, "06_large": 1.0}}))
    (isolated_artifacts / "quick" / "execution.json").unlink()  # no log of its own: the kept peaks count
    assert execute_chapters("quick", kernel="python3", root=root, jobs=2, preparations=[]) == 0
    first, second = sorted(json.loads((tmp_path / f"{name}.json").read_text()) for name in names)
    assert second[0] < first[1]  # side by side
    kept.unlink()  # where only a partial record is kept (the full profile on a CPU), its peaks count
    job_times_path(root, "quick", "cpu", partial=True).write_text(json.dumps(
        {"complete": False, "seconds": {}, "peak_memory_gib": {"04_large": 3.0, "06_large": 3.0}}))
    (isolated_artifacts / "quick" / "execution.json").unlink()
    assert execute_chapters("quick", kernel="python3", root=root, jobs=2, preparations=[]) == 0
    first, second = sorted(json.loads((tmp_path / f"{name}.json").read_text()) for name in names)
    assert second[0] >= first[1]



def test_a_preparation_waits_for_the_preparations_it_loads_when_they_are_in_the_run():
    from wrenlib.book import Preparation, book_preparations, job_graph

    cnn = Preparation("cnn_x", "a CNN", "wrenlib.cache:record_result", (), ("02",), ("10",))
    maps = Preparation("maps_x", "its maps", "wrenlib.cache:record_result", (), ("02",), ("10",), ("cnn_x",))
    stems = ["02_images", "10_sanity"]
    graph = job_graph(stems, [cnn, maps])
    assert graph["maps_x"] == {"02_images", "cnn_x"} and graph["cnn_x"] == {"02_images"}
    assert graph["10_sanity"] == {"cnn_x", "maps_x"}
    assert job_graph(stems, [maps])["maps_x"] == {"02_images"}  # its CNN is cached: nothing to wait for
    for name, chapters in (("sanity_cascade", ("10",)), ("validation_maps", ("08", "10")),
                           ("test_maps", ("06", "07", "08"))):
        maps = {p.name: p for p in book_preparations("quick")}[name]
        assert maps.after == ("images", "cnn_mixed") and maps.used_by == chapters and maps.trains == 0
    graph = job_graph(["02_spectrogram_images", "06_lime", "07_shap", "08_ensembles"], book_preparations("quick"))
    assert graph["validation_maps"] == {"images", "cnn_mixed"}  # beside chapter 06, not after it
    assert {"validation_maps", "test_maps"} <= graph["08_ensembles"]
    # chapter 08 waits for LIME's and SHAP's maps, not for chapters 06 and 07, which wait for them too
    assert not {"06_lime", "07_shap"} & graph["08_ensembles"] and "test_maps" in graph["06_lime"] & graph["07_shap"]
    stability = {p.name: p for p in book_preparations("full")}["stability_maps"]  # 3 seeds: two other CNNs
    assert stability.after == ("images", "cnn_mixed", "cnn_mixed_init1", "cnn_mixed_init2")
    assert stability.used_by == ("10",)
    assert stability.trains == 0


def test_the_data_comes_first_as_preparations_the_cnns_wait_for_instead_of_chapters_01_and_02():
    """At the full profile on a GPU, chapters 01 and 02 took 107 s before any CNN could start;
    the clips and their images are preparations of their own, which those chapters load."""
    from wrenlib.book import book_preparations, job_graph

    stems = ["01_wren_dialects", "02_spectrogram_images", "03_training", "04_gradcam", "11_confound"]
    preparations = book_preparations("full")
    graph = job_graph(stems, preparations)
    assert graph["surrogate"] == set() and graph["images"] == {"surrogate"}
    assert graph["01_wren_dialects"] == {"surrogate"} and "images" in graph["02_spectrogram_images"]
    for name in ("cnn_mixed", "cnn_black", "cnn_white", "cnn_mixed_init1"):
        assert graph[name] == {"images"}, name
    assert graph["cnn_confound100"] == {"surrogate"}
    assert not any(needs & set(stems) for job, needs in graph.items() if job not in stems)  # no preparation waits for a chapter
    calls = {p.name: p.call for p in preparations}
    assert calls["surrogate"] == "wrenlib.dataset:load_surrogate_dataset"  # the calls chapters 01 and 02 make
    assert calls["images"] == "wrenlib.images:load_spectrogram_dataset"


def test_chapter_11s_maps_wait_for_every_cnn_they_explain():
    from wrenlib.book import book_preparations, job_graph

    preparations = book_preparations("full")
    maps = {p.name: p for p in preparations}["confound_maps"]
    assert set(maps.after) == {"surrogate", "cnn_black", "cnn_confound025", "cnn_confound050", "cnn_confound075",
                               "cnn_confound100"}
    assert maps.trains == 0 and maps.used_by == ("11",)
    graph = job_graph(["01_wren_dialects", "02_spectrogram_images", "08_ensembles", "11_confound"], preparations)
    assert graph["confound_maps"] == {"surrogate", *maps.after}
    assert "confound_maps" in graph["11_confound"] and "08_ensembles" in graph["11_confound"]


def test_a_preparation_starts_seeded_with_the_runs_threads_like_a_chapter(monkeypatch):
    """A preparation that makes maps from cached CNNs never reaches a training's set_seed: the
    worker seeds it as a chapter is seeded (torch threads, deterministic algorithms, GPU share)."""
    import torch

    from wrenlib.book import Preparation, _run_preparation

    threads = torch.get_num_threads()
    wanted = 1 if threads != 1 else 2
    monkeypatch.setenv("WRENBOOK_TORCH_THREADS", str(wanted))
    probe = Preparation("probe", "reads nothing", "torch:get_num_threads", (), (), ())
    try:
        outcome = _run_preparation(probe)
        assert outcome["error"] is None and torch.get_num_threads() == wanted
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(threads)


def test_every_preparation_waits_only_for_preparations_there_are_and_that_its_chapters_use():
    """A name in ``after`` that is no preparation would drop the edge without a word; one whose
    chapters are not the waiting preparation's could leave it out of a run that needs it."""
    from wrenlib.book import book_preparations
    from wrenlib.profiles import PROFILES

    for profile in PROFILES:
        preparations = {p.name: p for p in book_preparations(profile)}
        for preparation in preparations.values():
            for name in preparation.after:
                assert name in preparations, f"{preparation.name} waits for {name!r}, which is no preparation"
                assert set(preparation.used_by) <= set(preparations[name].used_by), (preparation.name, name)


def test_a_job_cut_off_is_kept_as_a_lower_bound_that_orders_the_next_run(tmp_path, isolated_artifacts, monkeypatch):
    """A run interrupted while a job runs keeps how long that job had run; a partial record passes
    it on, the Performance page shows it as a bound, and the next run (a fresh clone with only
    the record) counts the job at least that long, above a shorter guess from another record."""
    import concurrent.futures
    import json

    from wrenlib.bench import write_performance_page
    from wrenlib.book import expected_from_runs, save_job_times

    real_wait, calls = concurrent.futures.wait, []

    def wait_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # while the second chapter runs
            import time

            time.sleep(2.0)
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "wait", wait_then_interrupt)
    root = _project(tmp_path, {"01_first": "x = 1", "02_second": "import time\ntime.sleep(120)"})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[]) == 130
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    assert set(log["cut_off"]) == {"02_second"} and log["cut_off"]["02_second"]["seconds"] >= 2.0
    record = json.loads(save_job_times(root, "quick", partial=True).read_text())
    assert record["cut_off_seconds"] == {"02_second": log["cut_off"]["02_second"]["seconds"]}
    assert "02_second" not in record["seconds"]
    page = tmp_path / "performance.md"
    write_performance_page(page, log, root / "book" / "benchmarks", tmp_path / "no-bench")
    assert f"| 02_second | ≥ {math.floor(record['cut_off_seconds']['02_second'])} (cut off) |" in page.read_text()
    # a fresh clone: no log of its own, a partial record (three jobs measured, one cut off after
    # 50 s), and a complete record of another machine whose times scale 02_second to 2 s only
    kept = root / "book" / "benchmarks" / "jobs-quick-cpu-partial.json"
    kept.write_text(json.dumps({**record, "seconds": {"01_first": 2.0, "03_x": 2.0, "04_y": 2.0},
                                "cut_off_seconds": {"02_second": 50.0}}))
    (root / "book" / "benchmarks" / "jobs-quick-other.json").write_text(json.dumps(
        {"profile": "quick", "complete": True, "seconds": {"01_first": 1, "02_second": 1, "03_x": 1, "04_y": 1}}))
    expected, source = expected_from_runs(root, "quick", "cpu", {})
    assert expected == {"01_first": 2.0, "02_second": 50.0, "03_x": 2.0, "04_y": 2.0}
    assert "times 2" in source and "cut off: 02_second" in source
    kept.write_text(json.dumps({**json.loads(kept.read_text()), "cut_off_seconds": {"02_second": 0.5}}))
    assert expected_from_runs(root, "quick", "cpu", {})[0]["02_second"] == 2.0  # a bound below the guess is no news


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_backend_calibration_runs_first_and_later_jobs_compute_in_the_mode_it_chose(jobs, tmp_path,
                                                                                   isolated_artifacts):
    """The calibration (here on the CPU at a tiny size, as a GPU run of the full profile does it at
    paper size) starts with the chapters that compute on the CPU; every other job waits for it,
    and a chapter and a preparation after it compute in the mode it chose, which the log keeps."""
    import json

    from wrenlib.book import CALIBRATION, Preparation, save_job_times

    calibration = Preparation(CALIBRATION, "toy calibration", "wrenlib.bench:calibrate_backend",
                              (("profile", "quick"), ("repeats", 1), ("image_size", (32, 64)), ("device", "cpu"),
                               ("lime_batch", 2), ("train_batch", 2)), (), ("04",), trains=0, first=True)
    check = ("import json, os, torch, wrenlib\nfrom wrenlib.cache import profile_dir\n"
             "mode = json.loads((profile_dir('quick') / 'backend.json').read_text())['mode']\n"
             "assert os.environ['WRENBOOK_BACKEND'] == mode, (os.environ.get('WRENBOOK_BACKEND'), mode)\n"
             "wrenlib.set_seed(0)\n"
             "assert torch.are_deterministic_algorithms_enabled() == mode.startswith('deterministic')\n")
    root = _project(tmp_path, {"01_cpu": "x = 1", "04_gpu": check})
    toy = Preparation("cnn_toy", "toy", "wrenlib.runtime:set_seed", (("seed", 0),), (), ("04",))
    assert execute_chapters("quick", kernel="python3", root=root, jobs=jobs, preparations=[toy],
                            calibration=calibration) == 0
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    chosen = json.loads((isolated_artifacts / "quick" / "backend.json").read_text())["mode"]
    assert log["backend"]["mode"] == log["backend_mode"] == chosen and log["backend"]["run"] == log["run_id"]
    ends = {job: entry["started"] + entry["seconds"] for kind in ("chapters", "preparations")
            for job, entry in log[kind].items()}
    starts = {job: entry["started"] for kind in ("chapters", "preparations") for job, entry in log[kind].items()}
    for job in ("04_gpu", "cnn_toy"):
        assert starts[job] >= ends[CALIBRATION] - 0.5
    if jobs == 2:  # chapter 01 computes on the CPU: it does not wait
        assert starts["01_cpu"] < ends[CALIBRATION]
    for page in ("status.md", "performance.md"):  # which mode, and that the run chose it
        assert f"computed in torch's `{chosen}` mode, which the run chose by timing" in (root / "book" / page).read_text()
    record = json.loads(save_job_times(root, "quick").read_text())  # a kept run keeps the choice and its evidence
    assert record["backend"]["mode"] == chosen and record["backend"]["rows"] == log["backend"]["rows"]


def test_a_failed_calibration_leaves_the_run_deterministic_and_stops_nothing(tmp_path, isolated_artifacts, capsys):
    import json

    from wrenlib.book import CALIBRATION, Preparation

    broken = Preparation(CALIBRATION, "toy calibration", "wrenlib.bench:calibrate_backend",
                         (("profile", "no such profile"),), (), ("04",), trains=0, first=True)
    root = _project(tmp_path, {"04_gpu": "import os\nassert os.environ['WRENBOOK_BACKEND'] == 'deterministic'"})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[], calibration=broken) == 0
    log = json.loads((isolated_artifacts / "quick" / "execution.json").read_text())
    assert log["backend_mode"] == "deterministic" and "backend" not in log and log["chapters"]["04_gpu"]["ok"]
    assert not log["preparations"][CALIBRATION]["ok"]
    assert "the backend calibration failed" in capsys.readouterr().err


def test_no_calibration_on_a_cpu_or_where_the_profile_or_the_caller_fixes_the_mode(monkeypatch):
    from wrenlib.book import CALIBRATION, backend_calibration, job_graph, run_backend_mode

    numbers = {"01", "02", "04"}
    assert backend_calibration("full", "cpu", numbers) is None
    assert backend_calibration("quick", "cuda", numbers) is None  # the quick profile stays deterministic
    assert backend_calibration("full", "cuda", {"01"}) is None  # nothing computes on the GPU
    calibration = backend_calibration("full", "cuda", numbers)
    assert calibration.name == CALIBRATION and set(calibration.used_by) == {"02", "04"}
    graph = job_graph(["01_a", "02_b", "04_c"], [calibration, *[p for p in _book_preparations("full")]])
    assert CALIBRATION not in graph["01_a"] and not graph[CALIBRATION]
    # every job waits for it but chapter 01 and the surrogate clips, which compute on the CPU
    assert not graph["surrogate"] and CALIBRATION in graph["images"]
    assert all(CALIBRATION in needs for job, needs in graph.items() if job not in ("01_a", "surrogate", CALIBRATION))
    assert run_backend_mode("full", "cuda") == run_backend_mode("full", "cpu") == "deterministic"
    monkeypatch.setenv("WRENBOOK_BACKEND", "cudnn-benchmark")
    assert backend_calibration("full", "cuda", numbers) is None and run_backend_mode("quick", "cpu") == "cudnn-benchmark"
    monkeypatch.setenv("WRENBOOK_BACKEND", "fast")
    with pytest.raises(ValueError, match="WRENBOOK_BACKEND must be one of deterministic"):
        run_backend_mode("quick", "cpu")


def _book_preparations(profile):
    from wrenlib.book import book_preparations

    return book_preparations(profile)


def test_a_cut_off_bound_is_the_runs_longest_and_never_beats_a_measured_time(tmp_path):
    """record_cut_off keeps this run's bounds only, each the longest of its parts; expected_from_runs
    takes a job's time from this checkout's runs before a kept record, and a bound never replaces
    a time the job was measured to take."""
    import json

    from wrenlib.book import expected_from_runs, job_times_path, record_cut_off

    log = {"cut_off": {"07_old": {"seconds": 500.0, "run": "earlier"}, "06_lime": {"seconds": 300.0, "run": "now"}}}
    record_cut_off(log, "now", {"06_lime": 120.0, "10_sanity": 40.0})  # a second part, cut off sooner
    assert log["cut_off"] == {"06_lime": {"seconds": 300.0, "run": "now"}, "10_sanity": {"seconds": 40.0, "run": "now"}}
    kept = job_times_path(tmp_path, "quick", "cpu")
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps({"device": "cpu: kept", "seconds": {"03_training": 100.0, "04_gradcam": 10.0}}))
    log = {"chapters": {"03_training": {"seconds": 50.0}},
           "cut_off": {"03_training": {"seconds": 80.0, "run": "now"}, "04_gradcam": {"seconds": 30.0, "run": "now"}}}
    expected, _ = expected_from_runs(tmp_path, "quick", "cpu", log)
    assert expected["03_training"] == 50.0  # measured here: neither the kept 100 s nor the 80 s bound
    assert expected["04_gradcam"] == 30.0  # kept 10 s, but a run had given it 30 s before it was cut off


def test_a_complete_record_keeps_the_last_runs_jobs_only(tmp_path, isolated_artifacts):
    """The record that orders fresh clones' runs holds the last complete run's jobs: a preparation
    an earlier run made (of other code, perhaps) is not passed on as if this run had timed it."""
    import json

    from wrenlib.book import save_job_times

    root = _project(tmp_path, {"01_a": "x = 1"})
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1,
                            preparations=[_recording("cnn_toy", ("01",), key="made")]) == 0
    assert execute_chapters("quick", kernel="python3", root=root, jobs=1, preparations=[]) == 0
    assert sorted(json.loads(save_job_times(root, "quick").read_text())["seconds"]) == ["01_a"]
