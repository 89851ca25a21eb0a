"""Files only this user may read (the admin token, the key that seals secrets), created whole.

The content is written to a temporary file (mode 0600) beside the target and linked into place:
two processes starting at once agree on one content, and a crash mid-write never leaves an
empty or partial file behind to be read as a valid (empty) secret.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def create_private_file(path: Path, content: str) -> str:
    """Create ``path`` holding ``content`` unless it exists; returns what the file holds."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp makes it 0600
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text()
        return content
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
