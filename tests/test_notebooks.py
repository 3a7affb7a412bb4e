"""Chapter sources: .py is the source, .ipynb its output-free pair; one parameters cell each."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_there_are_chapters_and_every_one_is_in_the_table_of_contents():
    assert SOURCES, "no chapters in notebooks/"
    toc = (ROOT / "_toc.yml").read_text()
    for source in SOURCES:
        assert f"book/chapters/{source.stem}" in toc


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_pair_is_in_sync_and_has_no_outputs(source):
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} missing: run make sync"
    expected = jupytext.read(source)
    actual = nbformat.read(paired, as_version=4)
    assert [(c.cell_type, c.source) for c in actual.cells] == \
        [(c.cell_type, c.source) for c in expected.cells], f"{paired.name} is out of sync: run make sync"
    for cell in actual.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{paired.name} has outputs"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_one_parameters_cell_and_no_other_profile_branching(source):
    notebook = jupytext.read(source)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    assert re.search(r"^PROFILE\s*=", parameters[0].source, re.M)
    for cell in code:
        if cell is not parameters[0]:
            assert not re.search(r"PROFILE\s*(==|!=|in\b)|if\s+PROFILE", cell.source), cell.source


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_widget_has_a_static_figure_and_a_hidden_live_cell(source):
    notebook = jupytext.read(source)
    for cell in notebook.cells:
        for widget in re.findall(r"^(\w+)\(\)\s*$", cell.source, re.M):
            if widget == "song_designer":
                assert "remove-output" in cell.metadata.get("tags", [])
                assert any(f"{widget}_figure(" in c.source for c in notebook.cells)


def _key_pattern(key: str) -> str:
    """A regex for the keys a record_result key (an f-string's text: ``{...}`` is any word) makes."""
    return "[A-Za-z0-9_]+".join(re.escape(part) for part in re.split(r"\{[^{}]*\}", key))


def test_a_chapter_that_quotes_another_chapters_number_waits_for_it():
    """``wrenlib execute`` runs chapters side by side once their CHAPTER_NEEDS have finished: a
    chapter whose code reads a number (results.json) that another chapter records must wait for
    that chapter, directly or through the chapters it waits for, or it quotes a stale or missing
    value depending on which job finished first. Keys written or read as f-strings count: their
    ``{...}`` parts stand for any word."""
    from wrenlib.book import chapter_prerequisites

    stems = [source.stem for source in SOURCES]
    code = {source.stem: "\n".join(c.source for c in jupytext.read(source).cells if c.cell_type == "code")
            for source in SOURCES}
    writers: dict[str, set[str]] = {}
    for stem, text in code.items():
        for key in re.findall(r"record_result\(\s*PROFILE,\s*f?\"([^\"]+)\"", text):
            writers.setdefault(_key_pattern(key), set()).add(stem)
        # wrenlib.result_key("score", row.map, row.score): the literal parts, any word for the others
        for call in re.findall(r"record_result\(\s*PROFILE,\s*wrenlib\.result_key\(([^()]*)\)", text):
            parts = [part.strip() for part in call.split(",")]
            key = "_".join(part.strip('"') if part.startswith('"') and "{" not in part else "{x}" for part in parts)
            writers.setdefault(_key_pattern(key), set()).add(stem)
    assert {_key_pattern("gradcam_relevance_mass_median"), _key_pattern("adaptive_temperature"),
            _key_pattern("score_{row.map}_{row.score}")} <= set(writers)

    def waits_for(stem: str) -> set[str]:
        found, todo = set(), [stem]
        while todo:
            for earlier in chapter_prerequisites(todo.pop(), stems) - found:
                found.add(earlier)
                todo.append(earlier)
        return found

    checked = set()
    for reader, text in code.items():
        if "read_results(" not in text:
            continue
        literals = [re.sub(r"\{[^{}]*\}", "x", literal) for _, literal in re.findall(r"(f?)\"([^\"\n]+)\"", text)]
        for pattern, written_by in writers.items():
            if reader in written_by or not any(re.fullmatch(pattern, literal) for literal in literals):
                continue
            assert written_by & waits_for(reader), f"{reader} reads a key like {pattern!r} from {sorted(written_by)} " \
                "but need not wait for it (wrenlib.book.CHAPTER_NEEDS)"
            checked.add((reader, tuple(sorted(written_by))))
    # 03, 10, 11 and 12 quote numbers of earlier chapters (10 through f-strings: chapter 08's scores)
    assert {"03_training", "10_sanity", "11_confound", "12_your_recordings"} <= {reader for reader, _ in checked}
    assert ("10_sanity", ("08_ensembles",)) in checked


def _requirement_names(requirements: list[str]) -> set[str]:
    from packaging.requirements import Requirement
    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def _imported_modules(text: str) -> set[str]:
    """The top-level modules a Python source imports (anywhere in it, functions included), less
    the standard library's."""
    import ast
    import sys

    modules = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names)


def _undeclared(modules: set[str], declared: set[str]) -> set[str]:
    """The modules no distribution in ``declared`` (normalised names) provides. A module that another
    dependency happens to bring along counts as missing: what is imported is named."""
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    return {module for module in modules
            if not {d.lower().replace("_", "-") for d in distributions.get(module, [module])} & declared}


def _declared(extras: tuple[str, ...] | set[str] = ()) -> set[str]:
    """pyproject.toml's dependencies and those of ``extras``, by normalised name."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = _requirement_names(project["dependencies"])
    for extra in extras:
        names |= _requirement_names(project["optional-dependencies"][extra])
    return names


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_colab_cell_installs_every_package_the_chapter_imports(source):
    """On Colab the first cell is all that installs: the extras it names must bring every module the
    chapter imports (myst_nb's glue comes with the book extra, not with wrenlib alone)."""
    from packaging.requirements import Requirement

    text = source.read_text()
    found = re.search(r'"(wrenlib[^"]*@ git\+[^"]+)"', text)
    assert found, f"{source.name}: no Colab install cell"
    missing = _undeclared(_imported_modules(text) - {"wrenlib", "google"}, _declared(Requirement(found.group(1)).extras))
    assert not missing, f"{source.name}: the Colab cell's {found.group(1)!r} installs no package for {sorted(missing)}"


# wrenlib's modules that run only where the book is built: they may import the `book` extra's packages
# (cache.py glues a result with myst-nb only inside an executing notebook)
BOOK_MODULES = {"book.py", "cache.py"}


@pytest.mark.parametrize("module", sorted((ROOT / "wrenlib").glob("*.py")), ids=lambda p: p.name)
def test_every_package_the_library_imports_is_declared(module):
    """`pip install wrenlib` must bring what the library imports: a package that one of its
    dependencies happens to pull in today (psutil through IPython 9) may not come with another
    version, and the CPU's explainers then fail for want of it."""
    extras = ("book",) if module.name in BOOK_MODULES else ()
    missing = _undeclared(_imported_modules(module.read_text()) - {"wrenlib"}, _declared(extras))
    where = "the core dependencies" + (" or the book extra" if extras else "")
    assert not missing, f"wrenlib/{module.name} imports {sorted(missing)}, which {where} in pyproject.toml do not name"
