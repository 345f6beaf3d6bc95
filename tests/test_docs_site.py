"""The documentation site: its CLI reference comes from the parser, its command markers run steplr, the examples in
its pages and its example files run and print what the pages say."""

from __future__ import annotations

import doctest
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from steplr.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def load_hooks():
    spec = importlib.util.spec_from_file_location("steplr_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def hooks(tmp_path, monkeypatch):
    module = load_hooks()
    monkeypatch.setattr(module, "WORK", tmp_path)  # the commands' folder: a temporary one, not build/
    return module


def section(page: str, command: str) -> str:
    """The text of the ``## steplr COMMAND`` section of the CLI reference."""
    start = page.index(f"\n## steplr {command}\n")
    end = page.find("\n## ", start + 1)
    return page[start : end if end >= 0 else len(page)]


def test_cli_reference_lists_every_subcommand_and_every_flag_of_the_parser(hooks):
    page = hooks.cli_reference_markdown()
    commands = hooks.subcommands(build_parser())
    assert list(commands) == ["explain", "plot", "train", "compare", "sweep"]
    for name, parser in commands.items():
        text = section(page, name)
        assert f"usage: steplr {name}" in text
        for action in parser._actions:
            for flag in action.option_strings:
                assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), f"steplr {name} {flag}"


def test_cli_reference_follows_the_parser_it_is_given(hooks):
    parser = build_parser()
    hooks.subcommands(parser)["plot"].add_argument("--made-up-flag", help="a flag only this parser has")
    page = hooks.cli_reference_markdown(parser)
    assert "--made-up-flag" in section(page, "plot")
    assert "a flag only this parser has" in section(page, "plot")
    assert "--made-up-flag" not in hooks.cli_reference_markdown()


def test_a_steplr_marker_becomes_the_command_and_what_it_printed(hooks):
    shown = hooks.render_marker("steplr", "explain --lr 0.1 --step-size 10 --gamma 0.5 --epochs 40")
    lines = shown.splitlines()
    assert lines[0] == "```console" and lines[-1] == "```"
    assert lines[1] == "$ steplr explain --lr 0.1 --step-size 10 --gamma 0.5 --epochs 40"
    assert "  epochs 10-19: lr 0.05" in lines
    assert "3 decays; final lr 0.0125" in lines


def test_a_quiet_marker_leaves_nothing_but_its_files(hooks, tmp_path):
    (tmp_path / "runs").mkdir()
    assert hooks.render_marker("steplr quiet", "plot --lr 0.1 --step-size 2 --epochs 6 -o runs/x.png") == ""
    assert (tmp_path / "runs" / "x.png").stat().st_size > 0


def test_a_failing_command_fails_the_build_naming_it(hooks):
    with pytest.raises(RuntimeError, match=r"steplr explain --lr 0.1 --step-size 0` exited with 2"):
        hooks.render_marker("steplr", "explain --lr 0.1 --step-size 0")


def test_markers_in_the_pages_replace_whole_lines_only(hooks):
    markdown = "before\n<!-- steplr: explain --lr 0.1 --step-size 1 --epochs 2 -->\nafter `<!-- steplr: x -->`\n"
    replaced = hooks.on_page_markdown(markdown, None, None, None)
    assert replaced.startswith("before\n```console\n$ steplr explain --lr 0.1 --step-size 1 --epochs 2\n")
    assert replaced.endswith("```\nafter `<!-- steplr: x -->`\n")


def pages():
    return sorted(DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_command_comment_in_a_page_is_a_marker_the_build_runs(page):
    hooks = load_hooks()
    text = page.read_text(encoding="utf-8")
    comments = re.findall(r"^<!-- *(?:steplr|python)\b.*$", text, re.MULTILINE)
    assert [c for c in comments if not hooks.MARKER.fullmatch(c)] == []


@pytest.mark.parametrize("page", [p for p in pages() if ">>> " in p.read_text()], ids=lambda p: p.name)
def test_the_python_examples_in_a_page_run(page):
    # A code fence ends an example's expected output, as a blank line does in a docstring.
    text = re.sub(r"^```.*$", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    test = doctest.DocTestParser().get_doctest(text, {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert test.examples
    assert runner.failures == 0


def test_the_lightning_example_logs_steplr_rates_through_learning_rate_monitor(tmp_path):
    pytest.importorskip("lightning.pytorch")
    done = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "lightning_lr_monitor.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert [(int(r[0]), float(r[1]), float(r[2])) for r in rows] == [
        (epoch, 0.1 * 0.5 ** (epoch // 2), 0.1 * 0.5 ** (epoch // 2)) for epoch in range(6)
    ]


def test_the_your_own_model_example_compares_and_sweeps(tmp_path):
    done = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "your_own_model.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("engine: functional")
    assert [line.split()[0] for line in done.stdout.splitlines()[1:4]] == ["none", "step", "cosine"]
    assert "chosen on validation: step (step_size " in done.stdout
    assert (tmp_path / "runs" / "mine" / "report.html").is_file()
