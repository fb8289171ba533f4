"""The IoT example: a sensor's validation, hourly and daily trends on every read model, the past read back."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from actorsrc import Runtime, SQLiteEventStore, check_event_names, stream_history
from actorsrc.testing import given, on, project
from examples.iot import (
    CalibrateSensor,
    InvalidCalibration,
    InvalidSensorRange,
    InvalidTimestamp,
    Reading,
    ReadingOutOfOrder,
    ReadingOutOfRange,
    RecordTemperature,
    RegisterSensor,
    RetireSensor,
    SensorAlreadyRegistered,
    SensorCalibrated,
    SensorCommand,
    SensorNotRegistered,
    SensorOutOfService,
    SensorRegistered,
    SensorRetired,
    TemperatureRecorded,
    Trend,
    daily_trend,
    hour_of,
    hourly_trend,
    reading_at,
    sensor,
    sensor_as_of,
    temperature_trends,
)
from examples.iot.app import main
from tests.example_read_models import READ_MODELS


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 7, day, hour, minute, tzinfo=UTC)


REGISTERED = SensorRegistered("greenhouse", -10.0, 50.0)

# -- the sensor's rules --------------------------------------------------------------------------


def test_a_sensor_is_registered_once_with_a_range_that_holds_something() -> None:
    given(sensor).when(RegisterSensor("greenhouse", -10.0, 50.0)).then(REGISTERED).then_state(status="active")
    given(sensor).when(RegisterSensor("greenhouse", 5.0, 5.0)).then_rejected(InvalidSensorRange, match="is empty")
    given(sensor).when(RegisterSensor("greenhouse", float("nan"), 5.0)).then_rejected(InvalidSensorRange)
    given(sensor, REGISTERED).when(RegisterSensor("cellar", 0.0, 1.0)).then_rejected(
        SensorAlreadyRegistered, match="'greenhouse'"
    )


def test_readings_are_calibrated_kept_in_utc_and_counted() -> None:
    given(sensor).when(RecordTemperature(20.0, at(4, 13))).then_rejected(SensorNotRegistered)
    local = datetime(2026, 7, 4, 15, 5, tzinfo=timezone(timedelta(hours=2)))
    first = given(sensor, REGISTERED).when(RecordTemperature(20.0, local)).then(TemperatureRecorded(20.0, at(4, 13, 5)))
    first_event = first.events[0]
    assert isinstance(first_event, TemperatureRecorded)
    assert first_event.at.tzinfo is UTC
    calibrated = first.when(CalibrateSensor(0.5, at(4, 13, 50))).then(SensorCalibrated(0.5, at(4, 13, 50)))
    calibrated.when(RecordTemperature(25.0, at(4, 14, 10))).then(TemperatureRecorded(25.5, at(4, 14, 10))).then_state(
        readings=2, last_celsius=25.5, last_at=at(4, 14, 10), offset_celsius=0.5
    )


def test_readings_out_of_range_out_of_order_or_without_a_timezone_are_refused() -> None:
    read = given(sensor, REGISTERED, SensorCalibrated(1.0, at(4, 12)), TemperatureRecorded(21.0, at(4, 13)))
    read.when(RecordTemperature(49.5, at(4, 14))).then_rejected(
        ReadingOutOfRange, match=r"50.5 °C is outside the sensor's range -10.0..50.0 °C"
    )
    read.when(RecordTemperature(-11.5, at(4, 14))).then_rejected(ReadingOutOfRange)
    read.when(RecordTemperature(float("nan"), at(4, 14))).then_rejected(ReadingOutOfRange)
    read.when(RecordTemperature(20.0, at(4, 12, 59))).then_rejected(ReadingOutOfOrder, match="before the sensor's last")
    read.when(RecordTemperature(20.0, datetime(2026, 7, 4, 14))).then_rejected(InvalidTimestamp, match="no timezone")
    read.when(RecordTemperature(49.0, at(4, 13))).then(
        TemperatureRecorded(50.0, at(4, 13))
    )  # the same moment, the edge


def test_calibration_is_bounded_and_a_retired_sensor_takes_nothing_more() -> None:
    given(sensor, REGISTERED).when(CalibrateSensor(-5.5, at(4, 1))).then_rejected(InvalidCalibration, match="±5.0")
    given(sensor, REGISTERED).when(CalibrateSensor(float("inf"), at(4, 1))).then_rejected(InvalidCalibration)
    retired = given(sensor, REGISTERED).when(RetireSensor(at(5, 0))).then(SensorRetired(at(5, 0)))
    retired.then_state(status="retired")
    retired.when(RecordTemperature(20.0, at(5, 1))).then_rejected(SensorOutOfService, match="RecordTemperature")
    retired.when(RetireSensor(at(5, 2))).then_rejected(SensorOutOfService)


def test_the_sensor_events_are_named_as_specific_past_facts() -> None:
    assert check_event_names([sensor]) == []


# -- trends --------------------------------------------------------------------------------------

GREENHOUSE = (
    REGISTERED,
    TemperatureRecorded(20.0, at(4, 13, 5)),
    TemperatureRecorded(22.5, at(4, 13, 35)),
    TemperatureRecorded(21.0, at(4, 13, 59)),
    SensorCalibrated(0.5, at(4, 13, 59)),
    TemperatureRecorded(25.5, at(4, 14, 10)),
    TemperatureRecorded(18.0, at(5, 9)),
)


async def test_readings_fold_into_hourly_and_daily_min_max_and_sum() -> None:
    tables = await project(
        temperature_trends,
        on(sensor, "gh-1", *GREENHOUSE),
        on(sensor, "cellar", SensorRegistered("cellar", 0.0, 20.0), TemperatureRecorded(11.0, at(4, 13, 30))),
    )
    tables.then_rows(
        "temperature_trends",
        ("gh-1", "hour", "2026-07-04T13:00Z", 3, 20.0, 22.5, 63.5),
        ("gh-1", "hour", "2026-07-04T14:00Z", 1, 25.5, 25.5, 25.5),
        ("gh-1", "hour", "2026-07-05T09:00Z", 1, 18.0, 18.0, 18.0),
        ("gh-1", "day", "2026-07-04", 4, 20.0, 25.5, 89.0),
        ("gh-1", "day", "2026-07-05", 1, 18.0, 18.0, 18.0),
        ("cellar", "hour", "2026-07-04T13:00Z", 1, 11.0, 11.0, 11.0),
        ("cellar", "day", "2026-07-04", 1, 11.0, 11.0, 11.0),
    )


def test_hours_are_named_in_utc() -> None:
    assert hour_of(datetime(2026, 7, 4, 15, 59, tzinfo=timezone(timedelta(hours=2)))) == "2026-07-04T13:00Z"


# -- end to end, on every read model ------------------------------------------------------------

COMMANDS: list[SensorCommand] = [
    RegisterSensor("greenhouse", -10.0, 50.0),
    RecordTemperature(20.0, at(4, 13, 5)),
    RecordTemperature(22.5, at(4, 13, 35)),
    RecordTemperature(21.0, at(4, 13, 59)),
    CalibrateSensor(0.5, at(4, 13, 59)),
    RecordTemperature(25.0, at(4, 14, 10)),
    RecordTemperature(17.5, at(5, 9)),
]

HOURLY = [
    Trend("gh-1", "2026-07-04T13:00Z", 3, 20.0, 22.5, 63.5 / 3),
    Trend("gh-1", "2026-07-04T14:00Z", 1, 25.5, 25.5, 25.5),
]
DAILY = [Trend("gh-1", "2026-07-04", 4, 20.0, 25.5, 22.25), Trend("gh-1", "2026-07-05", 1, 18.0, 18.0, 18.0)]


@pytest.mark.parametrize("kind", list(READ_MODELS))
async def test_sensors_report_through_a_runtime_and_their_past_is_read_back(kind: str, tmp_path: Path) -> None:
    async with (
        READ_MODELS[kind](tmp_path) as read_model,
        SQLiteEventStore.open(":memory:") as store,
        Runtime(store, [sensor], handlers=[temperature_trends], read_model=read_model) as runtime,
    ):
        ref = runtime.ref(sensor, "gh-1")
        for command in COMMANDS:
            await ref.ask(command)
        with pytest.raises(ReadingOutOfRange):
            await ref.ask(RecordTemperature(60.0, at(5, 10)))
        await runtime.wait_for(temperature_trends, await store.last_position(), timeout=10)
        assert await hourly_trend(read_model, "gh-1", date(2026, 7, 4)) == HOURLY
        assert await daily_trend(read_model, "gh-1", date(2026, 7, 1), date(2026, 7, 31)) == DAILY
        assert await daily_trend(read_model, "gh-1", date(2026, 7, 5), date(2026, 7, 5)) == DAILY[1:]
        assert await hourly_trend(read_model, "other", date(2026, 7, 4)) == []

        await runtime.rebuild(temperature_trends)
        assert await hourly_trend(read_model, "gh-1", date(2026, 7, 4)) == HOURLY
        assert await daily_trend(read_model, "gh-1", date(2026, 7, 1), date(2026, 7, 31)) == DAILY

        # "What was the reading at 13:50?" The one taken at 13:35, before the calibration.
        assert await reading_at(store, "gh-1", at(4, 13, 50)) == Reading(22.5, at(4, 13, 35), 0.0, 3)
        assert await reading_at(store, "gh-1", at(4, 23)) == Reading(25.5, at(4, 14, 10), 0.5, 6)
        assert await reading_at(store, "gh-1", at(4, 13, 5)) == Reading(20.0, at(4, 13, 5), 0.0, 2)
        assert await reading_at(store, "gh-1", at(4, 13)) is None
        with pytest.raises(ValueError, match="timezone-aware"):
            await reading_at(store, "gh-1", datetime(2026, 7, 4, 13))

        # What the system knew when the third reading was stored: later events are left out.
        history = await stream_history(store, sensor, "gh-1")
        moment = history[3].recorded_at
        known = [e for e in history if e.recorded_at <= moment]
        then = await sensor_as_of(store, "gh-1", moment)
        assert then.readings == sum(isinstance(e.event, TemperatureRecorded) for e in known)
        assert then.last_at == at(4, 13, 59)
        calibrated = any(isinstance(e.event, SensorCalibrated) for e in known)  # stored in the same instant?
        assert (then.offset_celsius, then.status) == (0.5 if calibrated else 0.0, "active")
        assert (await sensor_as_of(store, "gh-1", history[0].recorded_at - timedelta(seconds=1))).status == "new"


async def test_the_demo_prints_the_trend_and_a_past_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await main(str(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "refused: 84.5 °C is outside the sensor's range -10.0..50.0 °C"
    assert lines[1] == "hourly trend on 2026-07-04:"
    assert lines[2] == "  2026-07-04T08:00Z  3 readings  min 15.0  max 17.0  avg 16.00 °C"
    assert len(lines) == 7
    assert lines[6] == "the reading at 10:30: 21.5 °C, taken at 10:20 (calibration -0.5 °C)"
