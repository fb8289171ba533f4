"""Which member owns what: rendezvous (highest random weight) hashing over the live members.

Each (member, key) pair gets a stable 64-bit weight; the member with the highest weight owns the key.
When a member joins it takes only the keys it now wins (about 1/N of them) and when it leaves only its
own keys move: no other assignment changes, unlike `hash % N`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(member: str, key: str) -> int:
    digest = hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_of(key: str, members: Iterable[str]) -> str | None:
    """The member that should own `key`; None when there is no member."""
    best: str | None = None
    best_weight = -1
    for member in members:
        w = weight(member, key)
        if w > best_weight or (w == best_weight and best is not None and member < best):
            best, best_weight = member, w
    return best


def shard_key(shard: int) -> str:
    return f"shard.{shard}"


def assignment(keys: Iterable[str], members: Iterable[str]) -> dict[str, list[str]]:
    """member -> the keys it should own (every member listed, possibly with none)."""
    live = sorted(set(members))
    owned: dict[str, list[str]] = {member: [] for member in live}
    for key in keys:
        owner = owner_of(key, live)
        if owner is not None:
            owned[owner].append(key)
    return owned
