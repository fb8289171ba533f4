"""A digest of a command, kept with its command id so that reusing the id for another command is caught.

Computed only for commands sent with a command id. It covers the command's class name (qualname) and
its msgspec encoding with dict keys and sets sorted, so equal commands always give the same digest.
"""

from __future__ import annotations

import hashlib
import reprlib

import msgspec

_encoder = msgspec.json.Encoder(order="deterministic")
_prefixes: dict[type, hashlib.blake2b] = {}  # per command class: a hasher that has seen its name
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 80


def command_digest(command: object) -> str | None:
    """32 hex characters, or None for a command msgspec cannot encode (its id is then not checked)."""
    try:
        encoded = _encoder.encode(command)
    except (TypeError, ValueError, OverflowError):
        return None
    cls = type(command)
    prefix = _prefixes.get(cls)
    if prefix is None:  # once per command class: hashing its name again for each command costs ~0.2 us
        prefix = _prefixes[cls] = hashlib.blake2b(cls.__qualname__.encode() + b"\0", digest_size=16)
    digest = prefix.copy()
    digest.update(encoded)
    return digest.hexdigest()


def describe(command: object) -> str:
    """The command as an error message shows it: its repr, shortened."""
    return _repr.repr(command)
