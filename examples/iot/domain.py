"""Temperature sensors as pure functions: registered with a valid range, read, calibrated, retired.

A reading is a fact about the world at the moment the device took it (`at`, timezone-aware, kept in
UTC), so readings of one sensor must arrive in the order they were taken. The sensor applies its
calibration offset when a reading is recorded: `TemperatureRecorded.celsius` is the corrected value,
and a value outside the sensor's range is refused (`ReadingOutOfRange`), as a broken probe would
report it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from actorsrc import Aggregate, DomainError

MAX_OFFSET_CELSIUS = 5.0
"""The largest calibration correction a sensor accepts; a probe further off needs replacing."""

# -- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterSensor:
    location: str
    min_celsius: float
    max_celsius: float


@dataclass(frozen=True, slots=True)
class RecordTemperature:
    celsius: float  # as the probe read it, before calibration
    at: datetime


@dataclass(frozen=True, slots=True)
class CalibrateSensor:
    offset_celsius: float
    at: datetime


@dataclass(frozen=True, slots=True)
class RetireSensor:
    at: datetime


SensorCommand = RegisterSensor | RecordTemperature | CalibrateSensor | RetireSensor

# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SensorRegistered:
    location: str
    min_celsius: float
    max_celsius: float


@dataclass(frozen=True, slots=True)
class TemperatureRecorded:
    celsius: float  # calibrated
    at: datetime


@dataclass(frozen=True, slots=True)
class SensorCalibrated:
    offset_celsius: float
    at: datetime


@dataclass(frozen=True, slots=True)
class SensorRetired:
    at: datetime


SensorEvent = SensorRegistered | TemperatureRecorded | SensorCalibrated | SensorRetired

# -- rejections ---------------------------------------------------------------------------------


class SensorNotRegistered(DomainError):
    """A reading, calibration or retirement for a sensor that was never registered."""


class SensorAlreadyRegistered(DomainError):
    """RegisterSensor on a sensor id that is taken."""


class InvalidSensorRange(DomainError):
    """A range whose minimum is not below its maximum, or that is not a number."""


class SensorOutOfService(DomainError):
    """Anything but a look at its history after the sensor was retired."""


class ReadingOutOfRange(DomainError):
    """A (calibrated) reading outside the sensor's range: a broken probe, not the weather."""


class ReadingOutOfOrder(DomainError):
    """A reading, calibration or retirement taken before the sensor's last recorded moment."""


class InvalidTimestamp(DomainError):
    """A naive datetime: a moment without a timezone is no moment at all."""


class InvalidCalibration(DomainError):
    """An offset that is not a number or larger than `MAX_OFFSET_CELSIUS`."""


# -- state --------------------------------------------------------------------------------------

SensorStatus = Literal["new", "active", "retired"]


@dataclass(frozen=True, slots=True)
class SensorState:
    status: SensorStatus = "new"
    location: str = ""
    min_celsius: float = 0.0
    max_celsius: float = 0.0
    offset_celsius: float = 0.0
    readings: int = 0
    last_celsius: float | None = None
    last_at: datetime | None = None  # the latest moment recorded: reading, calibration or retirement


def _moment(state: SensorState, at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidTimestamp(f"{at.isoformat()} has no timezone; pass an aware datetime")
    at = at.astimezone(UTC)
    if state.last_at is not None and at < state.last_at:
        raise ReadingOutOfOrder(f"{at.isoformat()} is before the sensor's last record at {state.last_at.isoformat()}")
    return at


def decide(state: SensorState, command: SensorCommand) -> Sequence[SensorEvent]:
    if isinstance(command, RegisterSensor):
        if state.status != "new":
            raise SensorAlreadyRegistered(f"the sensor is already registered at {state.location!r}")
        if not command.min_celsius < command.max_celsius:
            raise InvalidSensorRange(f"the range {command.min_celsius}..{command.max_celsius} °C is empty")
        return [SensorRegistered(command.location, command.min_celsius, command.max_celsius)]
    if state.status == "new":
        raise SensorNotRegistered(f"{type(command).__name__} needs a registered sensor")
    if state.status == "retired":
        raise SensorOutOfService(f"the sensor was retired at {state.last_at}; {type(command).__name__} refused")
    match command:
        case RecordTemperature(celsius, at):
            moment = _moment(state, at)
            corrected = celsius + state.offset_celsius
            if not state.min_celsius <= corrected <= state.max_celsius:
                raise ReadingOutOfRange(
                    f"{corrected} °C is outside the sensor's range {state.min_celsius}..{state.max_celsius} °C"
                )
            return [TemperatureRecorded(corrected, moment)]
        case CalibrateSensor(offset_celsius, at):
            moment = _moment(state, at)
            if not math.isfinite(offset_celsius) or abs(offset_celsius) > MAX_OFFSET_CELSIUS:
                raise InvalidCalibration(f"an offset of {offset_celsius} °C is beyond ±{MAX_OFFSET_CELSIUS} °C")
            return [SensorCalibrated(offset_celsius, moment)]
        case RetireSensor(at):
            return [SensorRetired(_moment(state, at))]
    raise TypeError(f"unexpected command {command!r}")


def evolve(state: SensorState, event: SensorEvent) -> SensorState:
    match event:
        case SensorRegistered(location, min_celsius, max_celsius):
            return replace(state, status="active", location=location, min_celsius=min_celsius, max_celsius=max_celsius)
        case TemperatureRecorded(celsius, at):
            return replace(state, readings=state.readings + 1, last_celsius=celsius, last_at=at)
        case SensorCalibrated(offset_celsius, at):
            return replace(state, offset_celsius=offset_celsius, last_at=at)
        case SensorRetired(at):
            return replace(state, status="retired", last_at=at)
    return state


sensor: Aggregate[SensorState, SensorCommand, SensorEvent] = Aggregate(
    name="sensor",
    initial=SensorState(),
    decide=decide,
    evolve=evolve,
    events={
        "SensorRegistered": SensorRegistered,
        "TemperatureRecorded": TemperatureRecorded,
        "SensorCalibrated": SensorCalibrated,
        "SensorRetired": SensorRetired,
    },
    commands=(RegisterSensor, RecordTemperature, CalibrateSensor, RetireSensor),
    snapshot_every=500,  # a sensor reporting every minute replays at most 500 readings
)
