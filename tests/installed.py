"""Where the installed commands are: the ``hongshan`` of this virtual environment."""

from __future__ import annotations

import sys
from pathlib import Path

HONGSHAN = str(Path(sys.executable).with_name("hongshan"))
