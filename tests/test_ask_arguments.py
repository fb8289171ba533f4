"""`ask` checks every argument before it sends anything, and ids follow the store's one length limit."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from actorsrc import (
    ActorsrcError,
    ConfigurationError,
    InvalidStreamIdError,
    Runtime,
    SQLiteEventStore,
    SQLiteReadModel,
    UnknownCommandError,
)
from actorsrc.errors import LimitExceededError
from actorsrc.store.base import MAX_STREAM_ID_LENGTH
from examples.bank import Credit, OpenAccount, account
from tests.read_side_fixtures import balances


@asynccontextmanager
async def with_balances(tmp_path: Path) -> AsyncIterator[tuple[SQLiteEventStore, Runtime]]:
    async with (
        SQLiteEventStore.open(tmp_path / "events.db") as store,
        SQLiteReadModel.open(tmp_path / "read.db") as read_model,
        Runtime(store, [account], handlers=[balances], read_model=read_model) as runtime,
    ):
        yield store, runtime


elsewhere = dataclasses.replace(balances, name="elsewhere")
impostor = dataclasses.replace(balances)  # the registered name, but not the registered handler


@pytest.mark.parametrize(
    "consistency",
    [[elsewhere], ["nope"], [balances, "nope"], [impostor], ["balances", 42]],
    ids=["other-projection", "unknown-name", "one-of-two", "same-name-other-object", "not-a-handler"],
)
async def test_unregistered_consistency_handlers_are_refused_before_anything_is_written(
    tmp_path: Path, consistency: list[Any]
) -> None:
    async with with_balances(tmp_path) as (store, runtime):
        with pytest.raises(ConfigurationError, match=r"(registered: balances|neither a handler).*not sent"):
            await runtime.ref(account, "a").ask(OpenAccount("ann"), consistency=consistency)
        assert await store.stream_version("account-a") == 0
        assert await store.last_position() == 0
        # The same command with a registered handler goes through.
        assert (await runtime.ref(account, "a").ask(OpenAccount("ann"), consistency=[balances])).version == 1


async def test_consistency_on_a_runtime_without_handlers_names_none_registered(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as store, Runtime(store, [account]) as runtime:
        with pytest.raises(ConfigurationError, match=r"'balances' is not registered .*\(registered: none\)"):
            await runtime.ref(account, "a").ask(OpenAccount("ann"), consistency=["balances"])
        assert await store.stream_version("account-a") == 0


BAD_ARGUMENTS: list[tuple[str, object, dict[str, Any], type[ActorsrcError], str]] = [
    ("command-of-another-type", "open", {}, UnknownCommandError, "not a command of aggregate 'account'"),
    ("command-class", OpenAccount, {}, UnknownCommandError, "pass an instance"),
    ("zero-timeout", None, {"timeout": 0}, ConfigurationError, "timeout must be a number of seconds > 0"),
    ("negative-timeout", None, {"timeout": -1.0}, ConfigurationError, "timeout"),
    ("nan-timeout", None, {"timeout": float("nan")}, ConfigurationError, "timeout"),
    ("text-timeout", None, {"timeout": "5"}, ConfigurationError, "timeout"),
    ("bool-timeout", None, {"timeout": True}, ConfigurationError, "timeout"),
    ("text-wait-for-space", None, {"wait_for_space": "no"}, ConfigurationError, "wait_for_space must be True or"),
    ("none-wait-for-space", None, {"wait_for_space": None}, ConfigurationError, "wait_for_space"),
    ("int-wait-for-space", None, {"wait_for_space": 0}, ConfigurationError, "wait_for_space"),
    ("empty-command-id", None, {"command_id": ""}, ConfigurationError, "command_id must be a non-empty str"),
    ("int-command-id", None, {"command_id": 7}, ConfigurationError, "command_id must be a non-empty str"),
    ("surrogate-command-id", None, {"command_id": "c\udc80"}, ConfigurationError, "command_id must be valid UTF-8"),
    ("nul-causation-id", None, {"causation_id": "c\x00"}, ConfigurationError, "causation_id must not contain control"),
    ("newline-correlation-id", None, {"correlation_id": "c\n"}, ConfigurationError, "correlation_id must not"),
    ("c1-control-command-id", None, {"command_id": "c\x85"}, ConfigurationError, "command_id must not contain"),
    ("long-command-id", None, {"command_id": "c" * 513}, LimitExceededError, "513 characters, over the limit of 512"),
    ("handler-not-in-a-list", None, {"consistency": balances}, ConfigurationError, "takes a list of handlers"),
    ("name-not-in-a-list", None, {"consistency": "balances"}, ConfigurationError, "takes a list of handlers"),
]


@pytest.mark.parametrize(
    ("command", "options", "error", "message"),
    [case[1:] for case in BAD_ARGUMENTS],
    ids=[case[0] for case in BAD_ARGUMENTS],
)
async def test_bad_ask_arguments_are_typed_errors_and_write_nothing(
    tmp_path: Path, command: object, options: dict[str, Any], error: type[ActorsrcError], message: str
) -> None:
    async with with_balances(tmp_path) as (store, runtime):
        ref = runtime.ref(account, "a")
        with pytest.raises(error, match=message):
            await ref.ask(OpenAccount("ann") if command is None else command, **options)  # type: ignore[arg-type]
        assert await store.stream_version("account-a") == 0
        assert runtime.live_actors == 0  # nothing was even delivered
        assert (await ref.ask(OpenAccount("ann"))).version == 1


async def test_state_refuses_a_bad_timeout(tmp_path: Path) -> None:
    async with with_balances(tmp_path) as (_, runtime):
        with pytest.raises(ConfigurationError, match="timeout"):
            await runtime.ref(account, "a").state(timeout=-1)


# -- one id limit: the store's 512 characters -------------------------------------------------------

LONGEST_ACCOUNT_ID = MAX_STREAM_ID_LENGTH - len("account-")


async def test_an_aggregate_id_is_accepted_when_its_stream_id_fits_the_store(tmp_path: Path) -> None:
    assert MAX_STREAM_ID_LENGTH == 512
    longest = "x" * LONGEST_ACCOUNT_ID
    async with SQLiteEventStore.open(tmp_path / "b.db") as store, Runtime(store, [account]) as runtime:
        outcome = await runtime.ref(account, longest).ask(OpenAccount("ann"))
        assert len(outcome.stream_id) == 512
        assert await store.stream_version(account.stream_id(longest)) == 1
        with pytest.raises(InvalidStreamIdError) as refused:
            runtime.ref(account, longest + "x")
        assert "505 characters, over the limit of 504" in str(refused.value)
        assert "at most 512 characters" in str(refused.value)
        assert await store.last_position() == 1


@pytest.mark.parametrize("name", ["command_id", "causation_id", "correlation_id"])
async def test_metadata_ids_follow_the_stores_limit_of_512(tmp_path: Path, name: str) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as store, Runtime(store, [account]) as runtime:
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        with pytest.raises(LimitExceededError, match=f"{name} is 513 characters, over the limit of 512") as refused:
            await ref.ask(Credit(1), **{name: "i" * 513})  # type: ignore[arg-type]
        assert (refused.value.what, refused.value.size, refused.value.limit) == (name, 513, 512)
        assert await store.stream_version("account-a") == 1
        await ref.ask(Credit(1), **{name: "i" * 512})  # type: ignore[arg-type]
        [stored] = await store.read_stream("account-a", 2)
        assert getattr(stored.metadata, name) == "i" * 512
