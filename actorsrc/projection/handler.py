"""`Handler`: what the read side runs, a projection or a process manager."""

from __future__ import annotations

from typing import Any

from actorsrc.projection.process_manager import ProcessManager
from actorsrc.projection.projection import Projection

Handler = Projection | ProcessManager[Any]
