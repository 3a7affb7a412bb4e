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
