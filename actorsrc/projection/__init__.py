"""Read-side handlers as values: projections into SQL read models, and process managers (sagas).

Like aggregates, they are plain values registered on the runtime; the dispatcher feeds each one the
global log from its own checkpoint. One module per concept:

- `envelope`: `EventEnvelope`, a decoded event with where and when it was recorded, and `envelope_of`;
- `failure`: `FailurePolicy`, what a handler does when its own code keeps failing;
- `handler_codec`: the codec and name check every handler shares;
- `projection`: `Projection`, which builds a read model;
- `process_manager`: `ProcessManager` and the `Send` it returns;
- `handler`: `Handler`, either of the two.
"""

from __future__ import annotations

from actorsrc.projection.envelope import EventEnvelope, envelope_of
from actorsrc.projection.failure import FailurePolicy
from actorsrc.projection.handler import Handler
from actorsrc.projection.process_manager import ProcessManager, Send
from actorsrc.projection.projection import Projection

__all__ = ["EventEnvelope", "FailurePolicy", "Handler", "ProcessManager", "Projection", "Send", "envelope_of"]
