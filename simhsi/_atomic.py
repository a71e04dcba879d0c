"""Atomic output files: write to a temporary name in the target folder, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from simhsi.errors import OutputError


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Check that ``path`` can be written; return it as a :class:`Path`.

    Raises :class:`OutputError` if it exists and ``overwrite`` is false, if its folder does not
    exist, or if the folder is not writable. Nothing is created.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError("is a directory; give a file name", path=p)
    if p.exists() and not overwrite:
        raise OutputError("already exists; pass --overwrite (overwrite=True) to replace it", path=p)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"folder {str(parent)!r} does not exist", path=p)
    if not os.access(parent, os.W_OK):
        raise OutputError(f"folder {str(parent)!r} is not writable", path=p)
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched, so an output is
    never half-written and never silently overwritten::

        with atomic_path("scene.nc", overwrite=False) as tmp:
            ds.to_netcdf(tmp)
    """
    final = check_output_path(path, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent or ".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if final.exists() and not overwrite:  # appeared while we were writing
            raise OutputError("appeared while writing; pass overwrite=True to replace it", path=final)
        if tmp.exists():  # mkstemp makes 0600 files: give the usual 0666 & ~umask
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
