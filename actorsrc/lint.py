"""Lint event names: an event is a specific fact, in the past tense (`AccountCredited`, not `DataChanged`).

The checks are heuristics over the CamelCase words of each registered name, so they are warnings,
never errors: a name they flag may still be the right one for a domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from actorsrc.domain import Aggregate

__all__ = ["NamingWarning", "check_event_names"]


@dataclass(frozen=True, slots=True)
class NamingWarning:
    """One event name that reads as vague or not as a past fact, with what to do instead."""

    aggregate: str
    event: str
    problem: str
    suggestion: str

    def __str__(self) -> str:
        return f"{self.aggregate}: {self.event}: {self.problem}; {self.suggestion}"


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that carry no domain meaning on their own.
_GENERIC = _set(
    "data info information details detail state status thing things item items entity object record stuff "
    "value values field fields property properties event events update updates change changes "
    "updated changed modified processed handled created saved done happened occurred"
)
# Past participles that record a change without saying which one: fine only with an attribute
# besides the aggregate's own name (`UserEmailAddressChanged`, not `AccountChanged`). The CRUD ones
# also need one besides the entity, whatever the aggregate is called (`AccountUpdated` is vague).
_CHANGE_VERBS = _set("changed updated modified edited altered")
_CRUD_VERBS = _set("updated modified edited altered")
# Verbs about processing the message, not about the domain: the outcome is the fact.
_TECHNICAL_VERBS = _set("processed handled executed performed happened occurred triggered saved")
# Present-tense generic verbs and nouns: a CRUD request, not a fact.
_GENERIC_PRESENT = _set("update change modify edit process handle data info details event")
# Words ending in -eed that are past participles; other -eed words (Succeed, Exceed, Need) are not.
_PAST_EED = _set("agreed disagreed freed guaranteed decreed refereed")
_IRREGULAR_PAST = _set(
    """
    sent paid made held built fed wed won lost put set cut read begun done written taken given sold bought
    arisen awoken beaten become begotten bent bet bid bitten blown born borne bound broadcast broken
    brought burnt burst cast caught chosen clung come cost crept dealt drawn dreamt driven drunk dug
    dwelt eaten fallen felt fit fled flung flown forbidden forecast foregone foreseen forgiven forgotten
    forsaken found frozen got gotten gone ground grown heard hidden hit hung hurt input kept knelt known
    laid lain leant leapt learnt led left lent let lit meant met mistaken misunderstood mown outgrown
    output outrun overcome overdrawn overheard overridden overrun overseen overtaken overthrown proven
    quit rebuilt redone reset resent resold retaken rewritten ridden risen run rung said sat seen sewn
    shaken shed shone shot shown shrunk shut slept slid sought sown spelt spent spilt split spoken
    spread sprung stolen stood struck stuck stung strewn striven sung sunk swept sworn swum swung taught
    thought thrown told torn undergone undersold understood undertaken underwritten undone unbound
    unwound upheld upset withdrawn withheld withstood woken won worn wound wept wrung
    """
)
# Present -> past where adding -d/-ed would be wrong; used only to phrase a suggestion.
_PAST_OF = {
    "send": "Sent", "pay": "Paid", "make": "Made", "hold": "Held", "build": "Built", "win": "Won",
    "lose": "Lost", "sell": "Sold", "buy": "Bought", "write": "Written", "take": "Taken", "give": "Given",
    "begin": "Begun", "do": "Done", "withdraw": "Withdrawn", "ship": "Shipped", "stop": "Stopped",
    "drop": "Dropped", "plan": "Planned", "submit": "Submitted", "cancel": "Cancelled", "commit": "Committed",
    "transfer": "Transferred", "admit": "Admitted", "permit": "Permitted", "emit": "Emitted", "bring": "Brought",
    "keep": "Kept", "find": "Found", "choose": "Chosen", "set": "Set", "put": "Put", "cut": "Cut",
}  # fmt: skip

_VERSION_TAG = re.compile(r"_?[Vv]?\d+$")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def check_event_names(aggregates: Iterable[Aggregate[Any, Any, Any]]) -> list[NamingWarning]:
    """Warnings for the registered event names of `aggregates` that are vague or not past facts."""
    warnings = []
    for aggregate in aggregates:
        for name in aggregate.events:
            warning = _check(aggregate.name, name)
            if warning is not None:
                warnings.append(warning)
    return warnings


def _check(aggregate: str, name: str) -> NamingWarning | None:
    # A version tag (`OrderPlacedV2`) and digits are not words to judge.
    words = [word for word in _WORD.findall(_VERSION_TAG.sub("", name)) if word.isalpha()]
    if not words:
        return NamingWarning(aggregate, name, "not made of words", f"name the fact, e.g. {_subject(aggregate)}Created")
    lower = [word.lower() for word in words]
    found = (
        _event_suffix(aggregate, words, lower)
        or _only_generic(aggregate, lower)
        or _vague_verb(aggregate, words, lower)
        or _not_past(aggregate, words, lower)
    )
    return NamingWarning(aggregate, name, *found) if found else None


Finding = tuple[str, str] | None  # (problem, suggestion)


def _event_suffix(aggregate: str, words: Sequence[str], lower: Sequence[str]) -> Finding:
    if len(words) < 2 or lower[-1] not in ("event", "events"):
        return None
    stem = words[:-1]
    if _is_past(stem[-1].lower()) and not _only_generic(aggregate, [w.lower() for w in stem]):
        return "'Event' suffix", f"drop the 'Event' suffix: {''.join(stem)}"
    return "'Event' suffix", f"drop the 'Event' suffix and name the fact, e.g. {''.join(stem)}Created"


def _only_generic(aggregate: str, lower: Sequence[str]) -> Finding:
    if not all(word in _GENERIC for word in lower):
        return None
    subject = _subject(aggregate)
    return "vague: says nothing about what happened", f"name a specific fact, e.g. {subject}Created or {subject}Closed"


def _vague_verb(aggregate: str, words: Sequence[str], lower: Sequence[str]) -> Finding:
    last = lower[-1]
    subject = "".join(w for w in words[:-1] if w.lower() not in _GENERIC) or _subject(aggregate)
    if last in _TECHNICAL_VERBS:
        return (
            f"vague: '{words[-1]}' records handling a message, not its outcome",
            f"name the outcome, e.g. {subject}Approved or {subject}Rejected",
        )
    if last in _CHANGE_VERBS and not _names_an_attribute(aggregate, lower[:-1], crud=last in _CRUD_VERBS):
        problem = f"vague: '{words[-1]}' without saying what changed"
        if {"status", "state"} & set(lower):  # a status change is a transition with a name of its own
            return problem, f"name the transition, e.g. {subject}Approved or {subject}Closed"
        return problem, f"use a specific past-tense fact, e.g. {subject}EmailAddressChanged"
    if last in _GENERIC_PRESENT:
        return "vague: a generic word, not a fact", f"use a specific past-tense fact, e.g. {subject}EmailAddressChanged"
    return None


def _names_an_attribute(aggregate: str, subject: Sequence[str], *, crud: bool) -> bool:
    """Whether the words before a change verb name more than the entity that changed."""
    own = {word.lower() for word in _WORD.findall(_subject(aggregate))}
    meaningful = [word for word in subject if word not in _GENERIC]
    if crud and len(meaningful) < 2:
        return False
    return any(word not in own for word in meaningful)


def _not_past(aggregate: str, words: Sequence[str], lower: Sequence[str]) -> Finding:
    if _is_past(lower[-1]):
        return None
    past = "".join(words[:-1]) + _past_of(words[-1])
    return "not in the past tense", f"name what happened, e.g. {past}"


def _is_past(word: str) -> bool:
    if word in _IRREGULAR_PAST:
        return True
    if word.endswith("eed"):
        return word in _PAST_EED
    return word.endswith("ed") and len(word) > 3


def _past_of(word: str) -> str:
    lower = word.lower()
    if lower in _PAST_OF:
        return _PAST_OF[lower]
    if lower.endswith("e"):
        return f"{word}d"
    if len(lower) > 1 and lower.endswith("y") and lower[-2] not in "aeiou":
        return f"{word[:-1]}ied"
    return f"{word}ed"


def _subject(aggregate: str) -> str:
    """The aggregate's name as the CamelCase subject of an example event name."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._]", aggregate) if part)
