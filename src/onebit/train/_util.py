"""Small helpers shared by the training modules."""

from __future__ import annotations

import importlib
import os
import tempfile
from types import ModuleType
from typing import Callable

__all__ = ["atomic_write", "optional_import"]


def optional_import(name: str) -> ModuleType | None:
    """``import name``, or None when that module (not one it imports) is missing.

    A directory without ``__init__.py`` imports as an empty namespace package; that counts as missing.
    """
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise
    if getattr(module, "__file__", None) is None:
        return None
    return module


def _fsync(path: str, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: a crash never leaves a half-written file.

    The data is fsync'ed before the rename and the directory after it, so even a power loss leaves
    either the old file or the complete new one (a SIGKILL alone needs neither)."""
    directory = os.path.dirname(os.fspath(path)) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:
        _fsync(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # some file systems cannot fsync a directory; the rename itself has happened
        pass
