"""Atomic writes: files get the umask's permissions, a failed write leaves the old file and no debris, and the
debris of a killed writer is removed (never a live writer's file, never another file)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from steplr._files import atomic_write, atomic_write_bytes, atomic_write_text, remove_stale_temps


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """Set the process umask for one test (``umask(value)``) and put the old one back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    text = atomic_write_text(tmp_path / "report.html", "<p>hi</p>")
    data = atomic_write_bytes(tmp_path / "data.bin", b"\x00\x01")
    # a writer that opens the path itself, as matplotlib's savefig and torch.save do
    figure = atomic_write(tmp_path / "lr.png", lambda tmp: Path(tmp).write_bytes(b"png"), ".png")
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as stream:  # what a normal write gives, for comparison
        stream.write("x")
    assert mode(plain) == expected
    assert [mode(text), mode(data), mode(figure)] == [expected] * 3
    assert text.read_text() == "<p>hi</p>" and data.read_bytes() == b"\x00\x01" and figure.read_bytes() == b"png"


def test_the_temporary_file_has_its_final_mode_before_the_rename(tmp_path, umask):
    umask(0o022)
    seen = []

    def write(tmp: str) -> None:
        seen.append((Path(tmp).parent, Path(tmp).name, mode(Path(tmp))))
        Path(tmp).write_text("new")

    atomic_write(tmp_path / "summary.json", write, ".json")
    ((folder, name, tmp_mode),) = seen
    assert folder == tmp_path and name.startswith(".summary.json.") and name.endswith(".json")
    assert tmp_mode == 0o644  # no chmod after the fact: the final name never shows another mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_replacing_a_file_gives_it_the_umask_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "summary.csv"
    target.write_text("old")
    target.chmod(0o600)  # as the previous version of atomic_write left it
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o644


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path, error):
    target = tmp_path / "config.json"
    target.write_text('{"lr": 0.1}')

    def write(tmp: str) -> None:
        Path(tmp).write_text('{"lr"')  # half written, then the failure
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, write)
    assert target.read_text() == '{"lr": 0.1}'
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_a_failing_first_write_leaves_nothing(tmp_path):
    def write(tmp: str) -> None:
        raise OSError("no space left")

    with pytest.raises(OSError, match="no space left"):
        atomic_write(tmp_path / "history.json", write)
    assert list(tmp_path.iterdir()) == []


_OURS = [
    ".checkpoint.pt.0123456789ab",
    ".history.json.abcdef012345",
    ".lr.png.00ff00ff00ff.png",
    ".lr.png.00ff00ff00fe",
]
_NOT_OURS = [
    ".checkpoint.pt.0123456789AB",  # upper case: token_hex never writes it
    ".checkpoint.pt.0123456789a",  # one digit short
    ".checkpoint.pt.0123456789ab.bak",  # another suffix
    ".checkpoint.pt.backup",
    "checkpoint.pt.0123456789ab",  # not hidden
    ".notes.txt.0123456789ab",  # the temporary name of a file not asked about
    ".history.json.old",
]


def test_remove_stale_temps_removes_exactly_the_temporary_names_of_the_given_files(tmp_path):
    for name in _OURS + _NOT_OURS:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / ".history.csv.abcdefabcdef").mkdir()  # a folder is never a temporary file of ours
    removed = remove_stale_temps(tmp_path, ["checkpoint.pt", "history.json", "lr.png"])
    assert sorted(p.name for p in removed) == sorted(_OURS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*_NOT_OURS, ".history.csv.abcdefabcdef"])
    assert remove_stale_temps(tmp_path / "nowhere", ["checkpoint.pt"]) == []


_SLOW_WRITER = """
import sys
from pathlib import Path
from steplr._files import atomic_write

def write(tmp):
    Path(tmp).write_bytes(b"half")
    print(Path(tmp).name, flush=True)
    sys.stdin.readline()  # written until the test says go on
    Path(tmp).write_bytes(b"whole")

atomic_write(sys.argv[1], write)
"""

_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from steplr._files import atomic_write

def write(tmp):
    Path(tmp).write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)

atomic_write(sys.argv[1], write)
"""


def test_a_file_being_written_by_a_live_process_is_kept_and_a_killed_writers_file_removed(tmp_path):
    target = tmp_path / "history.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        live = writer.stdout.readline().strip()
        assert (tmp_path / live).is_file()
        assert remove_stale_temps(tmp_path, ["history.json"]) == []
        assert (tmp_path / live).read_bytes() == b"half"
    finally:
        writer.communicate("go on\n", timeout=60)
    assert writer.returncode == 0 and target.read_bytes() == b"whole"
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)])
    assert killed.returncode == -signal.SIGKILL
    (left,) = [p for p in tmp_path.iterdir() if p != target]
    assert left.name.startswith(".history.json.") and left.read_bytes() == b"half"
    assert remove_stale_temps(tmp_path, ["history.json"]) == [left]
    assert list(tmp_path.iterdir()) == [target] and target.read_bytes() == b"whole"


def test_a_failed_write_names_the_target_not_its_temporary_file(tmp_path):
    from steplr._files import atomic_write

    target = tmp_path / "report.html"

    def fails(tmp: str) -> None:
        raise OSError(28, "No space left on device", tmp)  # what a full disk reports, naming the file written

    with pytest.raises(OSError) as info:
        atomic_write(target, fails)
    assert info.value.filename == str(target) and info.value.strerror == "No space left on device"
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "missing-folder" / "x.json", lambda tmp: None)
    assert info.value.filename == str(tmp_path / "missing-folder" / "x.json")
