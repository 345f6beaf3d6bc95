"""Atomic file writes: a reader, or a crash, sees the old file or the new one, never half of one (no torch).

A process killed during a write (SIGKILL, power loss) leaves its hidden temporary file behind;
:func:`remove_stale_temps` removes such leftovers of named files, and only those no live writer holds.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so no way to tell a leftover from a file being written (see below)
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "remove_stale_temps"]

_TOKEN_BYTES = 6  # a temporary name is ".NAME.<12 hex digits>SUFFIX"


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object], suffix: str = "") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    The temporary file is removed if anything fails (including Ctrl-C), so no partial file is left behind. The file
    gets the permissions a plain ``open(path, "w")`` would give it (0o666 minus the umask), and already has them
    before the rename, so the final name never shows a half-written file or a wrong mode. While it is written, the
    temporary file is locked (``flock``), which tells :func:`remove_stale_temps` that it is not a leftover.
    """
    target = Path(path)
    try:
        lock, tmp = _new_temp_file(target, suffix)
    except OSError as error:  # name the file the user asked for, not a temporary one
        raise OSError(error.errno, error.strerror, str(target)) from None
    try:
        write(tmp)
        with open(tmp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename in (tmp, Path(tmp)):
            raise OSError(error.errno, error.strerror, str(target)) from None
        raise
    finally:
        if lock is not None:
            os.close(lock)  # releases the lock
    return target


def _new_temp_file(target: Path, suffix: str) -> tuple[int | None, str]:
    """Create an empty, uniquely named file beside ``target``; return a descriptor holding its lock, and its name.

    Not ``tempfile.mkstemp``: that creates files with mode 0o600 whatever the umask, which would make every report
    private. Asking the kernel for 0o666 lets it apply the umask (and any default ACL of the folder) the usual way,
    without reading the umask, which can only be done by changing it for the whole process.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = str(target.parent / f".{target.name}.{secrets.token_hex(_TOKEN_BYTES)}{suffix}")
        try:
            descriptor = os.open(name, flags, 0o666)
        except FileExistsError:  # a name taken (by a leftover of a killed process, say): draw another
            continue
        if fcntl is None:
            os.close(descriptor)
            return None, name
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # remove_stale_temps took it in the instant between creation and lock: it deletes it
            os.close(descriptor)
            continue
        return descriptor, name
    raise FileExistsError(f"no free temporary name beside {target}")


def _temp_name_pattern(name: str) -> re.Pattern[str]:
    """The names :func:`atomic_write` gives temporary files of ``name`` (with no suffix, or the file's own, as the
    figure writers pass)."""
    extension = Path(name).suffix
    own_suffix = f"(?:{re.escape(extension)})?" if extension else ""
    return re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{{2 * _TOKEN_BYTES}}}{own_suffix}")


def remove_stale_temps(folder: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """Remove the temporary files that interrupted :func:`atomic_write` calls left beside the files ``names``.

    Only regular files named exactly as :func:`atomic_write` names the temporary files of ``names`` are candidates,
    and of those only the ones no process is writing (a writer holds a lock on its file until it is renamed), so
    this is safe while another process writes in ``folder``. Without ``flock`` (Windows) nothing is removed.

    Returns:
        The files removed (none if ``folder`` does not exist).
    """
    if fcntl is None:
        return []
    patterns = [_temp_name_pattern(name) for name in names]
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for entry in entries:
        if not any(p.fullmatch(entry.name) for p in patterns) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            descriptor = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:  # gone already (renamed into place by its writer), or not ours to read
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it
            os.close(descriptor)
            continue
        try:
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
        finally:
            os.close(descriptor)
    return removed


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode())
