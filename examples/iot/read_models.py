"""The sensors' read models: hourly and daily temperature trends, and "what was the reading at ...?".

`temperature_trends` keeps, per sensor and per hour and day (UTC, by the moment the reading was
taken), the count, minimum, maximum and sum of the readings; the average is the sum over the count.
It is written once, in the portable form (`setup(db)` and `handle(db, envelope)` over ``db.execute``
with ``?`` placeholders, SQL that SQLite and PostgreSQL both accept: ``DOUBLE PRECISION``, ``CASE``
for the smaller of two values, ``INSERT ... ON CONFLICT ... DO UPDATE``), so the same object runs on
the SQLite file read model, the in-memory one and PostgreSQL.

The past needs no table of its own: `reading_at` and `sensor_as_of` travel back in the sensor's
stream (`load_state` with `to_version=` or `at=`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from actorsrc import EventEnvelope, EventStore, Projection, load_state, stream_history
from examples.iot.domain import SensorState, TemperatureRecorded, sensor

Period = Literal["hour", "day"]


class Queryable(Protocol):
    """What the queries need of a read model: `SQLiteReadModel` and `PostgresReadModel` both take
    ``query(sql, (params,))`` with ``?`` placeholders."""

    async def query(self, sql: str, params: Sequence[Any] = (), /) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class Trend:
    sensor_id: str
    starts: str  # the hour ("2026-07-04T13:00Z") or the day ("2026-07-04"), UTC
    readings: int
    min_celsius: float
    max_celsius: float
    avg_celsius: float


def hour_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:00Z")


def _setup(db: Any) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS temperature_trends (sensor_id TEXT NOT NULL, period TEXT NOT NULL,"
        " starts TEXT NOT NULL, readings BIGINT NOT NULL, min_celsius DOUBLE PRECISION NOT NULL,"
        " max_celsius DOUBLE PRECISION NOT NULL, sum_celsius DOUBLE PRECISION NOT NULL,"
        " PRIMARY KEY (sensor_id, period, starts))"
    )


def _reset(db: Any) -> None:
    db.execute("DROP TABLE IF EXISTS temperature_trends")


_ADD_READING = (
    "INSERT INTO temperature_trends (sensor_id, period, starts, readings, min_celsius, max_celsius, sum_celsius)"
    " VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (sensor_id, period, starts) DO UPDATE SET"
    " readings = temperature_trends.readings + 1,"
    " min_celsius = CASE WHEN excluded.min_celsius < temperature_trends.min_celsius"
    " THEN excluded.min_celsius ELSE temperature_trends.min_celsius END,"
    " max_celsius = CASE WHEN excluded.max_celsius > temperature_trends.max_celsius"
    " THEN excluded.max_celsius ELSE temperature_trends.max_celsius END,"
    " sum_celsius = temperature_trends.sum_celsius + excluded.sum_celsius"
)


def _handle(db: Any, envelope: EventEnvelope[Any]) -> None:
    if isinstance(envelope.event, TemperatureRecorded):
        sensor_id = envelope.stream_id.removeprefix("sensor-")
        celsius, at = float(envelope.event.celsius), envelope.event.at.astimezone(UTC)
        db.executemany(
            _ADD_READING,
            [
                (sensor_id, "hour", hour_of(at), celsius, celsius, celsius),
                (sensor_id, "day", at.date().isoformat(), celsius, celsius, celsius),
            ],
        )


temperature_trends = Projection(
    name="temperature_trends",
    handle=_handle,
    setup=_setup,
    reset=_reset,
    aggregates=[sensor],
)


async def _trends(read_model: Queryable, sensor_id: str, period: Period, first: str, last: str) -> list[Trend]:
    rows = await read_model.query(
        "SELECT starts, readings, min_celsius, max_celsius, sum_celsius FROM temperature_trends"
        " WHERE sensor_id = ? AND period = ? AND starts >= ? AND starts <= ? ORDER BY starts",
        (sensor_id, period, first, last),
    )
    return [
        Trend(sensor_id, str(starts), int(n), float(low), float(high), float(total) / int(n))
        for starts, n, low, high, total in rows
    ]


async def hourly_trend(read_model: Queryable, sensor_id: str, day: date) -> list[Trend]:
    """Min, max and average of each hour of `day` (UTC) with readings, in order."""
    return await _trends(read_model, sensor_id, "hour", f"{day.isoformat()}T00:00Z", f"{day.isoformat()}T23:00Z")


async def daily_trend(read_model: Queryable, sensor_id: str, first: date, last: date) -> list[Trend]:
    """Min, max and average of each day from `first` to `last` (UTC, both included) with readings."""
    return await _trends(read_model, sensor_id, "day", first.isoformat(), last.isoformat())


# -- time travel ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    celsius: float  # calibrated
    at: datetime  # when the probe took it
    offset_celsius: float  # the calibration in force then
    version: int  # the reading's version in the sensor's stream


async def reading_at(store: EventStore, sensor_id: str, moment: datetime) -> Reading | None:
    """The reading in force at `moment` (device time): the last one taken at or before it, with the
    calibration of that time; None before the first reading. The sensor's stream is read, the reading's
    version found, and the sensor's state loaded as of that version."""
    if moment.tzinfo is None:
        raise ValueError(f"moment must be timezone-aware, got {moment.isoformat()}")
    found: TemperatureRecorded | None = None
    version = 0
    for envelope in await stream_history(store, sensor, sensor_id):
        if isinstance(envelope.event, TemperatureRecorded):
            if envelope.event.at > moment:
                break  # readings are recorded in the order they were taken
            found, version = envelope.event, envelope.version
    if found is None:
        return None
    then = (await load_state(store, sensor, sensor_id, to_version=version)).state
    return Reading(found.celsius, found.at, then.offset_celsius, version)


async def sensor_as_of(store: EventStore, sensor_id: str, moment: datetime) -> SensorState:
    """What the system knew of the sensor at `moment` (the time its events were stored): its range,
    calibration, readings so far and last reading, whatever arrived afterwards."""
    return (await load_state(store, sensor, sensor_id, at=moment)).state
