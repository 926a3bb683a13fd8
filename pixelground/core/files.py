"""Output files: paths checked before any work starts, files written atomically.

Every file a command writes goes to a temporary name beside it and is renamed into place
when complete, so an interruption never leaves a torn file. :func:`check_output` and
:func:`check_output_dir` are called before any model loads: a path under a file, a file where
a folder is wanted (or the reverse), or a folder that cannot be created is one InputError.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from pixelground.core.errors import InputError


def _blocking_file(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is a file (so nothing fits under it)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _make_dir(folder: Path, option: str) -> None:
    blocker = _blocking_file(folder / "x")
    if blocker is not None:
        raise InputError(f"{option} {folder}: {blocker} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"{option} {folder}: cannot create the folder ({error.strerror})"
        ) from error
    if not os.access(folder, os.W_OK):
        raise InputError(f"{option} {folder}: the folder is not writable")


def check_output(path: str | Path | None, option: str = "-o") -> Path | None:
    """Check that a file can be written at ``path`` and create its folder.

    Args:
        path: where a command will write a file; None (nothing to write) passes through.
        option: the option that named it, for the message (e.g. ``"--overlay"``).

    Returns:
        ``path`` as a Path, or None.

    Raises:
        InputError: ``path`` is a folder, lies under a file, or its folder cannot be created.
    """
    if path is None or path == "":
        return None
    target = Path(path).expanduser()
    if target.is_dir():
        raise InputError(f"{option} {target} is a folder; give a file name")
    _make_dir(target.parent, option)
    return target


def check_output_dir(path: str | Path | None, option: str = "--out") -> Path | None:
    """Check that ``path`` is (or can become) a writable folder, and create it.

    Raises:
        InputError: ``path`` is a file, lies under a file, or cannot be created.
    """
    if path is None or path == "":
        return None
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{option} {folder} is a file; give a folder")
    _make_dir(folder, option)
    return folder


def _new_temp(target: Path) -> Path:
    """Create an empty, unique temporary file beside ``target``. Opened with ``"x"`` (not
    ``mkstemp``, whose files are 0600) so the result gets the permissions of the umask like
    any file the user writes."""
    for _ in range(100):
        temp = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.partial{target.suffix}")
        try:
            with open(temp, "x"):
                return temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


@contextlib.contextmanager
def atomic_path(path: str | Path, keep_partial: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) renamed to ``path`` on success.

    Args:
        path: the final file.
        keep_partial: also rename on an exception (for appended whole records, where what
            was written so far is finished work); otherwise the temporary file is removed.

    Yields:
        The temporary path to write to.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _new_temp(target)
    try:
        yield temp
    except BaseException:
        if keep_partial and temp.exists():
            os.replace(temp, target)
        else:
            temp.unlink(missing_ok=True)
        raise
    os.replace(temp, target)


@contextlib.contextmanager
def atomic_open(
    path: str | Path,
    mode: str = "w",
    keep_partial: bool = False,
    encoding: str = "utf-8",
    fsync: bool = False,
) -> Iterator[IO]:
    """``open(path, mode)`` on a temporary file renamed into place (see :func:`atomic_path`).

    With ``fsync`` the content reaches the disk before the rename, so a commit survives a
    machine crash too (the data engine's shards).
    """
    with atomic_path(path, keep_partial) as temp:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(temp, mode, **kwargs) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    with atomic_open(path) as handle:
        handle.write(text)


def save_atomic(path: str | Path, save: Callable[[Path], object]) -> None:
    """Call ``save(temporary_path)`` and rename the result to ``path`` when it returns."""
    with atomic_path(path) as temp:
        save(temp)
