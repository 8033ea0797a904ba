"""Writing a file whole or not at all: the one way expolib writes checkpoints, models and photos.

:func:`atomic_write` hands the writer a temporary path next to the destination and renames it over
the destination only once the write has finished and reached the disk. A write that fails part-way
(a full disk, a file-size limit, a killed process) leaves the previous file as it was and no partial
file behind, and whatever the writer raised (Pillow and the kernel raise ``OSError``; PyTorch's zip
writer a ``RuntimeError`` such as ``unexpected pos``; safetensors its own error) becomes one
:class:`WriteError` that names the destination and says what to do.

Written by hand because no library the project uses writes files atomically across these writers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Union

PathLike = Union[str, os.PathLike]

TEMP_SUFFIX = ".tmp"
NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # disk full, file too large, quota exceeded


class WriteError(OSError):
    """A file that could not be written; the message names it and says the previous one was kept.
    ``errno`` is the system's error number when there was one (see :data:`NO_SPACE`)."""

    @property
    def no_space(self) -> bool:
        """True when the disk (or the file-size limit or quota) had no room for the file."""
        return self.errno in NO_SPACE


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_name(path: Path) -> str:
    """The prefix of the temporary files written for ``path`` (hidden, next to it)."""
    return f".{path.name}."


def remove_temporaries(path: PathLike) -> list[Path]:
    """Delete temporary files that a killed writer of ``path`` left next to it; returns them."""
    path = Path(path)
    removed = []
    if path.parent.is_dir():
        for tmp in path.parent.glob(f"{temporary_name(path)}*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _reason(error: BaseException) -> tuple[int | None, str]:
    if isinstance(error, OSError) and error.errno is not None:
        if error.errno in NO_SPACE:
            return error.errno, f"no space left for it ({os.strerror(error.errno).lower()})"
        return error.errno, os.strerror(error.errno).lower()
    text = " ".join(str(error).split())
    if "No space left" in text or "unexpected pos" in text or "File too large" in text:
        return errno.ENOSPC, "the write stopped part-way (is the disk full?)"
    return None, text or type(error).__name__


@contextlib.contextmanager
def atomic_write(path: PathLike, what: str = "file") -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it replaces ``path``.

    On any failure the temporary file is removed, ``path`` keeps its previous content, and the error
    is raised again as a :class:`WriteError` naming ``path`` (``what`` says what it is: "checkpoint",
    "photo"...). Missing parent folders are created. The new file gets the usual permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=temporary_name(path), suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        if isinstance(error, (ValueError, TypeError)) and not isinstance(error, OSError):
            raise  # the caller's mistake (an unknown extension, a wrong object), not the disk's
        code, reason = _reason(error)
        kept = "the previous one is kept" if path.exists() else "nothing was written"
        failure = WriteError(f"{path}: could not write the {what}: {reason}; {kept}")
        failure.errno = code  # type: ignore[assignment]
        raise failure from error


__all__ = ["NO_SPACE", "TEMP_SUFFIX", "WriteError", "atomic_write", "remove_temporaries", "temporary_name"]
