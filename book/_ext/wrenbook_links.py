"""A small Sphinx extension of the book: in the API reference, every "chapter NN" that a wrenlib
docstring names becomes a link to that chapter's page, so each function leads to the chapter that
explains it."""

from __future__ import annotations

import re
from pathlib import Path

CHAPTER = re.compile(r"\bchapters? (\d{2})\b")


def chapter_pages(root: Path) -> dict[str, str]:
    """Chapter number -> document name, from the chapter sources in ``notebooks/``."""
    return {path.stem[:2]: f"/book/chapters/{path.stem}" for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))}


def link_chapters(lines: list[str], pages: dict[str, str]) -> None:
    """Turn each "chapter NN" of a docstring (its lines, changed in place) into a :doc: link."""
    def replace(match: re.Match) -> str:
        page = pages.get(match.group(1))
        return f":doc:`{match.group(0)} <{page}>`" if page else match.group(0)

    for index, line in enumerate(lines):
        if "``" not in line:  # leave literal code alone
            lines[index] = CHAPTER.sub(replace, line)


def setup(app):
    pages = chapter_pages(Path(app.srcdir))
    app.connect("autodoc-process-docstring",
                lambda app, what, name, obj, options, lines: link_chapters(lines, pages))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
