"""Atomic file writes: a reader, or a crash, sees the old file or the new one, never half of one (no torch)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object], suffix: str = "") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    The temporary file is removed if anything fails (including Ctrl-C), so no partial file is left behind. The file
    gets the permissions a plain ``open(path, "w")`` would give it (0o666 minus the umask), and already has them
    before the rename, so the final name never shows a half-written file or a wrong mode.
    """
    target = Path(path)
    tmp = _new_temp_file(target, suffix)
    try:
        write(tmp)
        with open(tmp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _new_temp_file(target: Path, suffix: str) -> str:
    """Create an empty, uniquely named file beside ``target`` and return its name.

    Not ``tempfile.mkstemp``: that creates files with mode 0o600 whatever the umask, which would make every report
    private. Asking the kernel for 0o666 lets it apply the umask (and any default ACL of the folder) the usual way,
    without reading the umask, which can only be done by changing it for the whole process.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = str(target.parent / f".{target.name}.{secrets.token_hex(6)}{suffix}")
        try:
            os.close(os.open(name, flags, 0o666))
        except FileExistsError:  # a name taken (by a leftover of a killed process, say): draw another
            continue
        return name
    raise FileExistsError(f"no free temporary name beside {target}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode())
