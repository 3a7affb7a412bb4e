"""Executing the book: papermill runs each chapter, timings are kept, the status page is written.

``make execute`` calls :func:`execute_chapters`. An error in any cell stops the run with the
chapter's name and a non-zero exit status; papermill's partly executed copy is kept for reading.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .bench import ChildProcessUsage
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
    """``auto`` becomes ``full`` with a CUDA GPU and ``quick`` without; other names pass through."""
    from .profiles import get_profile
    from .runtime import default_profile_name

    name = default_profile_name() if profile == "auto" else profile
    get_profile(name)  # raises a clear error for an unknown name
    return name


def execute_chapters(profile: str = "auto", kernel: str = "wrenbook",
                     only: list[str] | None = None, root: Path | None = None) -> int:
    """Run every chapter (or those named in ``only``) with papermill; return an exit status."""
    import papermill

    from .runtime import describe_device

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
    out_dir = root / "book" / "chapters"
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"Executing {len(chapters)} chapter(s) with profile {profile!r} on {describe_device()}")
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress widgets in the rendered pages
    log_path = profile_dir(profile) / "execution.json"
    log: dict[str, Any] = json.loads(log_path.read_text()) if log_path.is_file() else {}
    log.setdefault("chapters", {})
    status = 0
    for chapter in chapters:
        target = out_dir / chapter.name
        started = time.perf_counter()
        print(f"  {chapter.stem} ...", flush=True)
        usage = ChildProcessUsage()  # the kernel and its worker processes
        try:
            with usage:
                papermill.execute_notebook(
                    str(chapter), str(target), parameters={"PROFILE": profile},
                    kernel_name=kernel, language="python", cwd=str(chapter.parent),
                    progress_bar=False,
                )
        except Exception as error:  # papermill's own error names the failing cell
            seconds = time.perf_counter() - started
            log["chapters"][chapter.stem] = {"seconds": seconds, "ok": False,
                                             "peak_memory_gib": round(usage.peak_gib, 2)}
            print(f"wrenlib execute: chapter {chapter.stem} failed after {seconds:.0f} s: "
                  f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}",
                  file=sys.stderr)
            print(f"  the partly executed notebook is {target}", file=sys.stderr)
            status = 1
            break
        seconds = time.perf_counter() - started
        _hide_injected_parameters(target)
        _add_launch_links(target, chapter, root)
        log["chapters"][chapter.stem] = {"seconds": seconds, "ok": True, "parameters": chapter_parameters(chapter),
                                         "peak_memory_gib": round(usage.peak_gib, 2),
                                         "cores_busy": round(usage.cpu_seconds / seconds, 2)}
        print(f"  {chapter.stem} done in {seconds:.1f} s, peak memory {usage.peak_gib:.2f} GiB, "
              f"{usage.cpu_seconds / seconds:.1f} cores busy", flush=True)
    log.update(
        profile=profile,
        device=describe_device(),
        finished=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        versions=package_versions(),
    )
    log_path.write_text(json.dumps(log, indent=2, sort_keys=True))
    write_status_page(root / "book" / "status.md", log)
    from .bench import write_performance_page

    write_performance_page(root / "book" / "performance.md", log, root / "book" / "benchmarks",
                           artifacts_root() / "bench")
    from .cache import record_result

    seconds = {name: round(entry["seconds"], 1) for name, entry in sorted(log["chapters"].items())}
    record_result(profile, "execution_seconds", seconds, glue=False)
    record_result(profile, "execution_total_seconds", round(sum(seconds.values()), 1), glue=False)
    memory = {name: entry["peak_memory_gib"] for name, entry in sorted(log["chapters"].items())
              if "peak_memory_gib" in entry}
    if memory:
        record_result(profile, "execution_peak_memory_gib", memory, glue=False)
        record_result(profile, "execution_peak_memory_max_gib", max(memory.values()), glue=False)
    return status


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


def write_status_page(path: Path, log: dict[str, Any]) -> None:
    """The book's status / provenance page, written from the execution log."""
    chapters = log.get("chapters", {})
    total = sum(entry["seconds"] for entry in chapters.values())
    lines = [
        "# Status and provenance",
        "",
        "This page is written by `make execute` each time the chapters run; nothing on it is typed"
        " by hand. Every number in the book comes from the run described here.",
        "",
        f"- **Profile:** `{log.get('profile')}`",
        f"- **Device:** {log.get('device')}",
        f"- **Machine:** {log.get('machine')}",
        f"- **Finished:** {log.get('finished')}",
        f"- **Total execution time:** {total:.0f} s",
        "",
        "## Chapters",
        "",
        "| chapter | run time (s) | peak memory (GiB) | status | parameters (seeds) |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, entry in sorted(chapters.items()):
        state = "executed" if entry["ok"] else "**failed**"
        parameters = ", ".join(f"`{key}={value}`" for key, value in entry.get("parameters", {}).items())
        memory = f"{entry['peak_memory_gib']:.2f}" if "peak_memory_gib" in entry else "—"
        lines.append(f"| [{name}](chapters/{name}.ipynb) | {entry['seconds']:.1f} | {memory} | {state} | "
                     f"{parameters or '—'} |")
    lines += ["", "## Package versions", "", "| package | version |", "| --- | --- |"]
    for name, version in log.get("versions", {}).items():
        lines.append(f"| {name} | {version} |")
    lines += [
        "",
        "## Seeds",
        "",
        "Every chapter takes a `SEED` parameter (default 0) beside `PROFILE`; `wrenlib.set_seed`"
        " seeds Python, NumPy and torch and pins torch to 2 CPU threads, so a quick-profile run"
        " reproduces its numbers on a CPU.",
        "",
    ]
    path.write_text("\n".join(lines))
