"""MkDocs hooks: the pages' command output, figures and CLI reference, made by steplr itself at build time.

A page asks for a command's output with a comment on a line of its own::

    <!-- steplr: explain --lr 0.1 --step-size 10 --gamma 0.5 --epochs 40 -->
    <!-- steplr quiet: plot --lr 0.1 --step-size 10 --gamma 0.5 --epochs 40 -o runs/formula.png -->
    <!-- python: docs/examples/lightning_lr_monitor.py -->

The first is replaced by a console block with the command and everything it printed; the second runs the command
and leaves nothing in the page (for a figure); the third runs a Python file of the repository in a subprocess and
shows what it printed. ``steplr`` commands run in this process through :func:`steplr.cli.main.main`, in the folder
``build/docs-generated`` (so ``--out runs/x`` lands there), and any exit code but 0 fails the build. Every file
the commands write there is published under ``generated/`` (``runs/x/lr.png`` as ``generated/runs/x/lr.png``).

The CLI reference (``reference/cli.md``) is :func:`cli_reference_markdown`: the help of the parser the ``steplr``
command uses, so the options are written once, in the code.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "docs-generated"
PUBLISHED = "generated"
HELP_WIDTH = 92  # columns of help text in the CLI reference and of command output in the pages
MARKER = re.compile(r"^<!-- (steplr|steplr quiet|python): (.+?) -->[ \t]*$", re.MULTILINE)
_OUTPUTS: dict[tuple[str, str], str] = {}  # (kind, command) -> the Markdown that replaces the marker


# ------------------------------------------------------------------------------------------- CLI reference


@contextmanager
def _columns(width: int) -> Iterator[None]:
    """argparse wraps help to the terminal's width (``COLUMNS``): fix it, so the page is the same everywhere."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of ``parser`` by name, in the order ``steplr --help`` lists them."""
    for action in parser._actions:  # argparse keeps the subparsers only on this action
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The CLI reference page: ``steplr --help`` and each subcommand's ``--help``, from the parser itself.

    Args:
        parser: the parser to describe; by default the one the ``steplr`` command builds
            (:func:`steplr.cli.main.build_parser`).

    Returns:
        The page's Markdown: an introduction, then one section per subcommand with its help text.
    """
    if parser is None:
        from steplr.cli.main import build_parser

        parser = build_parser()
    with _columns(HELP_WIDTH):
        top = parser.format_help()
        sections = {name: sub.format_help() for name, sub in subcommands(parser).items()}
    lines = [
        "# Command line",
        "",
        "Everything below is generated when the documentation is built, from the same argument parser the "
        "`steplr` command uses (`steplr.cli.main.build_parser()`): it is what `steplr --help` and "
        "`steplr COMMAND --help` print.",
        "",
        "Commands: " + ", ".join(f"[`{name}`](#steplr-{name})" for name in sections) + ".",
        "",
        "## steplr",
        "",
        "```text",
        top.rstrip(),
        "```",
    ]
    for name, text in sections.items():
        lines += ["", f"## steplr {name}", "", "```text", text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- commands


@contextmanager
def _inside(folder: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_steplr(command: str) -> str:
    """Run ``steplr COMMAND`` in :data:`WORK` and return what it printed (standard output and error, in order).

    Raises:
        RuntimeError: if the command exits with a code other than 0 (the build fails, naming the command).
    """
    from steplr.cli.main import main

    printed = io.StringIO()
    WORK.mkdir(parents=True, exist_ok=True)
    with _inside(WORK), _columns(HELP_WIDTH):
        code = main(shlex.split(command), out=printed, err=printed)
    if code != 0:
        raise RuntimeError(f"docs: `steplr {command}` exited with {code}:\n{printed.getvalue()}")
    return printed.getvalue()


def run_python(path: str) -> str:
    """Run a Python file of the repository with this interpreter and return its standard output.

    Raises:
        RuntimeError: if it exits with a code other than 0.
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(ROOT / path)], cwd=WORK, capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"docs: `python {path}` exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _console(prompt: str, output: str) -> str:
    body = output.rstrip("\n")
    return f"```console\n$ {prompt}\n{body}\n```" if body else f"```console\n$ {prompt}\n```"


def render_marker(kind: str, command: str) -> str:
    """Run one marker's command (once per build) and return the Markdown that replaces it."""
    key = (kind, command)
    if key not in _OUTPUTS:
        if kind == "python":
            _OUTPUTS[key] = _console(f"python {command}", run_python(command))
        else:
            output = run_steplr(command)
            _OUTPUTS[key] = "" if kind == "steplr quiet" else _console(f"steplr {command}", output)
    return _OUTPUTS[key]


# ------------------------------------------------------------------------------------------- MkDocs events


def on_pre_build(config: Any) -> None:
    """Start each build from an empty work folder, so no figure of an older build is published."""
    _OUTPUTS.clear()
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "runs").mkdir(parents=True)  # where the pages' commands write (`-o runs/x.png`, `--out runs/x`)


def on_files(files: Any, config: Any) -> Any:
    """Run every page's commands (their figures must exist before MkDocs lists the site's files), then publish
    what they wrote and add the generated CLI reference."""
    from mkdocs.structure.files import File

    started = time.perf_counter()
    for page in [f for f in files if f.src_uri.endswith(".md")]:
        source = Path(page.abs_src_path).read_text(encoding="utf-8")
        for kind, command in MARKER.findall(source):
            render_marker(kind, command)
    for path in sorted(p for p in WORK.rglob("*") if p.is_file()):
        uri = f"{PUBLISHED}/{path.relative_to(WORK).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    files.append(File.generated(config, "reference/cli.md", content=cli_reference_markdown()))
    print(f"docs hooks: {len(_OUTPUTS)} commands run in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Put each command's output where its marker was."""
    return MARKER.sub(lambda match: render_marker(match.group(1), match.group(2)), markdown)
