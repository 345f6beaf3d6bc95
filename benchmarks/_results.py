"""Shared writer for benchmarks/RESULTS.md: each benchmark script owns one marked section of the file.

A section is the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``. :func:`write_section` replaces
that text (or appends a new section at the end of the file) and leaves everything else untouched, so the scripts
can be rerun one at a time without losing each other's numbers. Not a benchmark itself: imported by
``bench_core.py`` and ``bench_experiments.py`` (run those; see their docstrings).
"""

from __future__ import annotations

import re
from pathlib import Path

from steplr._files import atomic_write_text

__all__ = ["RESULTS", "write_section"]

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, markdown: str, path: Path | None = None) -> None:
    """Put ``markdown`` between the ``name`` markers of RESULTS.md (replacing what was there, or appending).

    The new file is written next to the old one and moved over it with :func:`os.replace`, so a reader or a
    crash sees either the old file or the new one, never a mix.

    Raises:
        ValueError: for a name that cannot be used in a marker, or a file whose markers for ``name`` are
            missing one half, out of order or repeated (the file is then left as it is).
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"section name must match {_NAME.pattern}, got {name!r}")
    target = RESULTS if path is None else Path(path)
    start, end = _markers(name)
    block = f"{start}\n{markdown.strip(chr(10))}\n{end}"
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    starts, ends = old.count(start), old.count(end)
    if starts == ends == 0:
        new = f"{old.rstrip(chr(10))}\n\n{block}\n" if old.strip() else f"{block}\n"
    elif starts == ends == 1 and old.index(start) < old.index(end):
        head, rest = old.split(start, 1)
        tail = rest.split(end, 1)[1]
        new = head + block + tail
    else:
        raise ValueError(f"{target}: the markers of section {name!r} are unpaired or repeated; fix the file by hand")
    atomic_write_text(target, new)
