"""Files written whole or not at all: a temporary file named for its writer, then renamed."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from .errors import UserError

_HOST = socket.gethostname().replace(".", "_")


class WriteError(UserError):
    """A file could not be written (read-only or full disk): one line with the path and the reason."""


def atomic_write(path: Path, write) -> Path:
    tmp = path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.tmp")  # whose it is, for sweep()
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # nothing half-written stays behind
        tmp.unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
