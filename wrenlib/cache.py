"""The artifact cache (``artifacts/<profile>/``) and the book's one source of numbers.

Chapters ask for what they need ("the dataset for this profile"); the cache loads it when a build
with the same configuration exists and builds it otherwise, so any chapter runs on its own and a
re-run reuses work. Headline numbers go to ``results.json`` through :func:`record_result` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

ARTIFACTS_ENV = "WRENBOOK_ARTIFACTS"
RESULTS_FILE = "results.json"

# What this process computed for the artifact cache rather than loaded from it: one line for each
# artifact built, CNN trained or set of maps made (:func:`note_made`), so that a run's log can say
# which jobs did their work and which found it cached (the status page)
MADE: list[str] = []


def note_made(what: str) -> None:
    """Record that this process computed ``what`` (e.g. "surrogate", "12 lime maps") for the cache."""
    MADE.append(what)


def project_root(start: Path | None = None) -> Path | None:
    """The wrenbook checkout that contains ``start`` (default: the working folder), if any."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "wrenlib").is_dir():
            return folder
    return None


def artifacts_root() -> Path:
    """``$WRENBOOK_ARTIFACTS`` if set, else ``artifacts/`` at the project root (or here)."""
    if os.environ.get(ARTIFACTS_ENV):
        return Path(os.environ[ARTIFACTS_ENV]).expanduser().resolve()
    root = project_root() or Path.cwd()
    return root / "artifacts"


def profile_dir(profile: str) -> Path:
    """The cache folder of one profile, created on first use."""
    folder = artifacts_root() / profile
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def config_hash(config: Any) -> str:
    """A short, stable hash of a JSON-able configuration (the cache key)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_map_groups(folder: Path, groups: dict[str, dict[str, Any]], index: Any) -> None:
    """Save groups of named maps (arrays) to ``folder`` (a :func:`load_or_build` artifact): one
    ``maps.npz`` whose entries are ``group/name``, and ``index``, any JSON, beside it."""
    import numpy as np

    np.savez(folder / "maps.npz", **{f"{group}/{name}": values for group, maps in groups.items()
                                     for name, values in maps.items()})
    (folder / "index.json").write_text(json.dumps(index))


def load_map_groups(folder: Path) -> tuple[dict[str, dict[str, Any]], Any]:
    """The groups and index :func:`save_map_groups` saved in ``folder``."""
    import numpy as np

    groups: dict[str, dict[str, Any]] = {}
    with np.load(folder / "maps.npz") as stored:
        for key in stored.files:
            group, name = key.split("/", 1)
            groups.setdefault(group, {})[name] = stored[key]
    return groups, json.loads((folder / "index.json").read_text())


def kept_maps(folder: Path, name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One piece of a long build of maps (named arrays), kept in ``folder`` as soon as it is made,
    so that a build cut short (a time limit, Ctrl-C) goes on from its last finished piece: loaded
    when ``folder/<name>.npz`` exists, else made by ``make()`` and saved (written whole, then
    renamed into place, so a half-written piece is never read). ``folder`` is the artifact's
    :func:`parts_folder`, which :func:`load_or_build` removes once the whole artifact is saved."""
    import numpy as np

    path = folder / f"{name}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return {key: stored[key] for key in stored.files}
    maps = make()
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{name}.{os.getpid()}.tmp.npz"
    np.savez(staging, **maps)
    staging.replace(path)
    return maps


def parts_folder(folder: Path) -> Path:
    """Where the finished pieces of the artifact ``folder`` wait while it is built
    (:func:`kept_maps`): beside it, named after it (and so after its configuration's hash)."""
    return folder.with_name(f"{folder.name}.parts")


def load_or_build(
    folder: Path,
    config: dict[str, Any],
    build: Callable[[], T],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
) -> T:
    """Load the artifact in ``folder`` if it was built from ``config``; otherwise build and save it.

    The folder is written to a temporary sibling and renamed into place, so an interrupted build
    never leaves a half-written artifact that a later run would trust. Jobs side by side that ask
    for the same artifact (``wrenlib execute 10_sanity`` on an empty cache: three CNNs' trainings
    want the same clips and images) build it once: one builds under a lock beside the folder, the
    others wait for it and load what it built. A build must not ask for its own folder (it would
    wait for itself), and a rebuild under another configuration replaces the folder even while
    another process reads it: a folder holds one configuration at a time.
    """
    key = config_hash(config)
    if _built_from(folder, key):
        return load(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        _lock(lock)
        if _built_from(folder, key):  # another job built it while this one waited
            return load(folder)
        artifact = build()
        note_made(folder.name)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            save(artifact, staging)
            (staging / "config.json").write_text(
                json.dumps({"hash": key, "config": config}, indent=2, sort_keys=True, default=str)
            )
            if folder.exists():
                shutil.rmtree(folder)
            staging.rename(folder)
            shutil.rmtree(parts_folder(folder), ignore_errors=True)  # the pieces kept while it was built
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return artifact


def _built_from(folder: Path, key: str) -> bool:
    """Whether ``folder`` holds an artifact built from the configuration hashed to ``key``."""
    stamp = folder / "config.json"
    if not stamp.is_file():
        return False
    try:
        return json.loads(stamp.read_text()).get("hash") == key
    except (json.JSONDecodeError, OSError):
        return False


def _write_json_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        json.dump(data, stream, indent=2, sort_keys=True, default=_json_default)
    os.replace(name, path)


def _json_default(value: Any) -> Any:
    """NumPy scalars and arrays become plain numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot record a value of type {type(value).__name__} in results.json")


def read_results(profile: str) -> dict[str, Any]:
    """Everything recorded so far for ``profile`` (an empty dict before the first record)."""
    path = profile_dir(profile) / RESULTS_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def result_key(*parts: Any) -> str:
    """A key for :func:`record_result` made of names the book shows (chapters 08-11): the parts
    joined by "_", lower case, without hyphens, colons, brackets or quotes, every other run of
    characters that are not letters or digits one "_" ("Grad-CAM", "mask AUC" -> "gradcam_mask_auc";
    "reference: the image" -> "reference_the_image"; "average (GC+DL)" -> "average_gc_dl"). A dot
    is kept, as in a layer's or a number's name ("features.4.1", "0.5")."""
    text = re.sub(r"[-:()'\"]", "", "_".join(str(part) for part in parts).lower())
    key = re.sub(r"[^a-z0-9.]+", "_", text).strip("_")
    if not key:
        raise ValueError(f"no letters or digits to make a result key of in {parts!r}")
    return key


def record_result(profile: str, key: str, value: Any, glue: bool = True) -> None:
    """Record one headline number under ``key`` in ``artifacts/<profile>/results.json``.

    Inside an executing notebook it is also glued (myst-nb) under the same key, so the prose
    quotes the recorded value with ``{glue:}`key``` instead of retyping it.
    """
    if not key or any(ch.isspace() for ch in key):
        raise ValueError(f"result key must be a non-empty word, got {key!r}")
    plain = json.loads(json.dumps(value, default=_json_default))
    path = profile_dir(profile) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # chapters executed side by side record into the same file: read, change and write it under
    # a lock, so that neither loses the other's numbers
    with open(path.with_name(RESULTS_FILE + ".lock"), "w") as lock:
        _lock(lock)
        results = read_results(profile)
        results[key] = plain
        _write_json_atomically(path, results)
    if glue and _in_notebook():
        from myst_nb import glue as myst_glue

        myst_glue(key, value, display=False)


def _lock(stream) -> None:
    """Hold an exclusive lock on an open file until it is closed (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: chapters run one at a time there
        return
    fcntl.flock(stream, fcntl.LOCK_EX)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"
