"""The bank over HTTP: a Starlette app whose lifespan owns the event store and the runtime.

Run it with ``python -m examples.bank.web`` (needs the ``web`` extra); ``BANK_DB`` names the SQLite
file (default ``bank.db``). Amounts are integer cents, interest rates basis points. A request may carry
an ``Idempotency-Key`` header: it becomes the command id, so a retried request is never applied twice.

Several workers (``uvicorn --workers N --factory examples.bank.web:app_from_env``) share the accounts
through a cluster, so that each account lives in one worker and the others route its commands there:

- ``BANK_NATS``: a NATS URL (JetStream on) turns the cluster on; ``BANK_CLUSTER`` names it (default
  ``bank``), ``BANK_SHARDS`` its shard count (default 256). Each worker joins as a node of its own
  (host, pid and a random suffix).
- ``BANK_PG``: a PostgreSQL DSN to use instead of the SQLite file (``BANK_PG_SCHEMA``, default ``bank``).

Or, on one machine and without NATS, one runtime per core (``actorsrc.cores``):

- ``BANK_CORES``: a directory turns it on: each worker claims a free part of it, owns the accounts placed on
  that part (in the part's own SQLite file there, or in ``BANK_PG``'s database) and routes the others'
  commands to their owners over Unix sockets. ``BANK_CORES_COUNT``: how many parts; start exactly that many
  workers (default: ``WEB_CONCURRENCY``, which ``uvicorn --workers`` also reads, else the machine's cores).
- ``BANK_LOG=info``: log the runtime's and the cluster's events (joins, leases, conflicts) to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import msgspec
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actorsrc import (
    AggregateRef,
    AskTimeoutError,
    CodecError,
    CommandOutcome,
    ConcurrencyError,
    EventStore,
    InvalidStreamIdError,
    LimitExceededError,
    OutcomeUnknownError,
    Runtime,
    RuntimeClosedError,
    SQLiteEventStore,
    StoreUnavailableError,
)
from actorsrc.cluster import Cluster
from actorsrc.cores import Cores, part_of
from actorsrc.errors import ClusterError, ConfigurationError, ShardMovingError
from actorsrc.recovery import load_state
from examples.bank.domain import (
    AccountState,
    AlreadyOpen,
    ApplyInterest,
    Command,
    Credit,
    Debit,
    Event,
    InsufficientFunds,
    InvalidAmount,
    NotOpen,
    OpenAccount,
    account,
)

T = TypeVar("T")
AccountRef = AggregateRef[AccountState, Command, Event]

# -- request bodies: msgspec checks types strictly (no "10" for 10, no true for 1) --------------


class OpenBody(msgspec.Struct, forbid_unknown_fields=True):
    owner: str
    overdraft_limit: int = 0


class AmountBody(msgspec.Struct, forbid_unknown_fields=True):
    amount: int


class InterestBody(msgspec.Struct, forbid_unknown_fields=True):
    rate_bp: int


# -- errors: one table from exception to HTTP status ----------------------------------------------

# Starlette finds a handler by walking the exception's MRO, so msgspec.DecodeError also covers
# msgspec.ValidationError (wrong or missing field), which subclasses it.
_STATUS: dict[type[Exception], int] = {
    msgspec.DecodeError: 422,
    InvalidAmount: 422,
    InsufficientFunds: 409,
    AlreadyOpen: 409,
    NotOpen: 404,
    InvalidStreamIdError: 400,
    CodecError: 422,
    LimitExceededError: 413,
    RuntimeClosedError: 503,
    StoreUnavailableError: 503,  # nothing was written: retry after a moment
    OutcomeUnknownError: 503,  # may have been written: retry with the same command id
    AskTimeoutError: 504,
    ConcurrencyError: 409,  # another writer moved the account on (workers without a cluster): retry
    ShardMovingError: 503,  # the account's shard had no owner for the whole timeout: nothing was done
    ClusterError: 503,  # NATS unreachable, or the owning node failed in a way this worker cannot rebuild
}
# A client may retry these after a moment (the store's breaker probes again within about 2 s).
_RETRY_AFTER: dict[type[Exception], str] = {
    ConcurrencyError: "0",
    StoreUnavailableError: "1",
    OutcomeUnknownError: "1",
    ShardMovingError: "1",
    ClusterError: "1",
}


def _responder(status: int, retry_after: str | None) -> Callable[[Request, Exception], Awaitable[Response]]:
    headers = {"Retry-After": retry_after} if retry_after is not None else None

    async def respond(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status, headers=headers)

    return respond


# -- the app ----------------------------------------------------------------------------------------


async def _body(request: Request, body_type: type[T]) -> T:
    return msgspec.json.decode(await request.body(), type=body_type)


def _written(outcome: CommandOutcome[Event], **extra: Any) -> dict[str, Any]:
    return {**extra, "version": outcome.version, "position": outcome.position}


class _Bank:
    """The endpoints, bound to the store and runtime that exist while the lifespan runs."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        ask_timeout: float,
        cluster: Cluster | None,
        postgres: str | None,
        cores: Cores | None,
    ) -> None:
        if cluster is not None and cores is not None:
            raise ConfigurationError("the bank runs in a cluster or on cores, not both")
        self._db_path = db_path
        self._ask_timeout = ask_timeout
        self._cluster = cluster
        self._postgres = postgres
        self._cores = cores
        self._store: EventStore | None = None
        self._part_stores: list[EventStore] = []  # on cores with a SQLite file per part: every part's, to read
        self._runtime: Runtime | None = None

    @asynccontextmanager
    async def _open_store(self) -> AsyncIterator[EventStore]:
        if self._postgres is None:
            async with SQLiteEventStore.open(self._db_path) as store:
                yield store
            return
        from actorsrc.store.postgres import PostgresEventStore  # asyncpg only when asked for

        schema = os.environ.get("BANK_PG_SCHEMA", "bank")
        async with PostgresEventStore.open(self._postgres, schema=schema) as pg_store:
            yield pg_store

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self._cores is not None:
            async with self._on_cores(self._cores):
                yield
            return
        # Exits in reverse: the runtime finishes queued commands (and, in a cluster, hands its shards
        # off) before the store flushes and closes.
        async with (
            self._open_store() as store,
            Runtime(store, aggregates=[account], cluster=self._cluster) as runtime,
        ):
            self._store, self._runtime = store, runtime
            try:
                yield
            finally:
                self._store = self._runtime = None

    @asynccontextmanager
    async def _on_cores(self, cores: Cores) -> AsyncIterator[None]:
        """This worker's runtime on a free part of `cores`; reads go to the store holding the account."""
        async with AsyncExitStack() as stack:
            if self._postgres is not None:  # one database for every part
                store = await stack.enter_async_context(self._open_store())
                self._store = store
            runtime = await stack.enter_async_context(Runtime.for_cores(cores, [account], store=self._store))
            if self._store is None:  # a SQLite file per part: opened here too, to read any account
                for part in range(cores.count):
                    path = cores.database_path(part)
                    self._part_stores.append(await stack.enter_async_context(SQLiteEventStore.open(path)))
            self._runtime = runtime
            try:
                yield
            finally:
                self._store = self._runtime = None
                self._part_stores = []

    def _store_of(self, account_id: str) -> EventStore:
        """The store holding `account_id`'s events."""
        if self._part_stores:
            return self._part_stores[part_of(account.stream_id(account_id), len(self._part_stores))]
        assert self._store is not None  # set together with the runtime, which _ref checked
        return self._store

    def _ref(self, request: Request) -> AccountRef:
        if self._runtime is None:
            raise RuntimeClosedError("the bank is not running (outside the app's lifespan)")
        # ref() validates the id (length, blank, NUL): InvalidStreamIdError becomes a 400.
        return self._runtime.ref(account, request.path_params["account_id"])

    async def _ask(self, request: Request, ref: AccountRef, command: Command) -> CommandOutcome[Event]:
        # The store checks the key like any command id (length, characters): a bad one is a 400.
        command_id = request.headers.get("idempotency-key")
        return await ref.ask(command, timeout=self._ask_timeout, command_id=command_id)

    async def open_account(self, request: Request) -> Response:
        ref = self._ref(request)
        body = await _body(request, OpenBody)
        outcome = await self._ask(request, ref, OpenAccount(body.owner, body.overdraft_limit))
        return JSONResponse(_written(outcome, account_id=ref.aggregate_id), status_code=201)

    async def credit(self, request: Request) -> Response:
        ref = self._ref(request)
        body = await _body(request, AmountBody)
        return JSONResponse(_written(await self._ask(request, ref, Credit(body.amount))))

    async def debit(self, request: Request) -> Response:
        ref = self._ref(request)
        body = await _body(request, AmountBody)
        return JSONResponse(_written(await self._ask(request, ref, Debit(body.amount))))

    async def interest(self, request: Request) -> Response:
        ref = self._ref(request)
        body = await _body(request, InterestBody)
        return JSONResponse(_written(await self._ask(request, ref, ApplyInterest(body.rate_bp))))

    async def get_account(self, request: Request) -> Response:
        ref = self._ref(request)
        store = self._store_of(ref.aggregate_id)
        # Read from the store rather than through the actor: a GET for an unknown id must not create
        # an actor, and an acknowledged command is already durable, so this sees every reported write.
        loaded = await load_state(store, account, ref.aggregate_id)
        if loaded.version == 0:
            raise NotOpen(f"account {ref.aggregate_id!r} does not exist")
        state = loaded.state
        return JSONResponse(
            {
                "account_id": ref.aggregate_id,
                "owner": state.owner,
                "balance": state.balance,
                "overdraft_limit": state.overdraft_limit,
                "closed": state.closed,
                "version": loaded.version,
                "position": loaded.position,
            }
        )


def create_app(
    db_path: str | os.PathLike[str],
    *,
    ask_timeout: float = 5.0,
    cluster: Cluster | None = None,
    postgres: str | None = None,
    cores: Cores | None = None,
) -> Starlette:
    """A bank app on the SQLite file `db_path` (or the PostgreSQL DSN `postgres`), in `cluster` or on a part
    of `cores` if given; the store opens and the node joins (or the part is claimed) when the app's lifespan
    starts."""
    bank = _Bank(db_path, ask_timeout, cluster, postgres, cores)
    routes = [
        Route("/accounts/{account_id}", bank.open_account, methods=["POST"]),
        Route("/accounts/{account_id}", bank.get_account, methods=["GET"]),
        Route("/accounts/{account_id}/credits", bank.credit, methods=["POST"]),
        Route("/accounts/{account_id}/debits", bank.debit, methods=["POST"]),
        Route("/accounts/{account_id}/interest", bank.interest, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=bank.lifespan,
        exception_handlers={cls: _responder(status, _RETRY_AFTER.get(cls)) for cls, status in _STATUS.items()},
        max_body_size=64 * 1024,  # bodies are a few fields; refuse anything large before parsing
    )


def app_from_env() -> Starlette:
    """The app as the environment describes it (see the module's docstring): ``uvicorn --factory``
    calls this in every worker, so each worker is a node (or a part) of its own."""
    if os.environ.get("BANK_LOG") == "info":
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.dev.ConsoleRenderer(colors=False)],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        )
    nats = os.environ.get("BANK_NATS")
    cluster = None
    if nats:
        shards = int(os.environ.get("BANK_SHARDS", "256"))
        cluster = Cluster(nats=nats, name=os.environ.get("BANK_CLUSTER", "bank"), shards=shards)
    return create_app(
        os.environ.get("BANK_DB", "bank.db"),
        cluster=cluster,
        postgres=os.environ.get("BANK_PG"),
        cores=cores_from_env(),
    )


def cores_from_env() -> Cores | None:
    """`Cores(BANK_CORES, BANK_CORES_COUNT)` when ``BANK_CORES`` is set (see the module's docstring)."""
    directory = os.environ.get("BANK_CORES")
    if not directory:
        return None
    for variable in ("BANK_CORES_COUNT", "WEB_CONCURRENCY"):
        value = os.environ.get(variable)
        if value:
            try:
                count = int(value)
            except ValueError:
                raise ConfigurationError(f"{variable} must be a number of parts (workers), got {value!r}") from None
            return Cores(directory, count)
    return Cores(directory)


def main() -> None:
    import uvicorn  # the `web` extra; imported here so building the app needs only Starlette

    app = app_from_env()
    # Loopback only: there is no authentication.
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("BANK_PORT", "8000")))


if __name__ == "__main__":
    main()
