"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Run ``write(binary_file)`` on a temp file next to ``path``, then rename it over ``path``.

    The temp file lives in the same folder because ``os.replace`` is only atomic within
    one file system; it is removed again if ``write`` fails.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data must be on disk before the rename is
        # mkstemp makes the file private (0600); a report is meant to be shared / served.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically write UTF-8 text (``\\n`` line endings on every OS)."""
    # a file name that is not valid UTF-8 (its bytes arrive as surrogates) is written
    # as \udcNN escapes rather than failing the whole report
    atomic_write(path, lambda f: f.write(text.encode("utf-8", "backslashreplace")))
