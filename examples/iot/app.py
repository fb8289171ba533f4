"""The sensors wired together: readings recorded through a runtime, trends queried, the past read back.

Run the demo with ``python -m examples.iot.app [DIRECTORY]``: a greenhouse sensor reports every 20
minutes for a morning, is recalibrated halfway, and a reading off its scale is refused. The demo
prints the hourly trend and the reading in force at 10:30. The databases go to DIRECTORY, or to a
temporary one.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import anyio

from actorsrc import App, Runtime, SQLiteEventStore, SQLiteReadModel
from examples.iot.domain import CalibrateSensor, ReadingOutOfRange, RecordTemperature, RegisterSensor, sensor
from examples.iot.read_models import hourly_trend, reading_at, temperature_trends

iot = App(aggregates=[sensor], handlers=[temperature_trends], db="iot.db", read_db="iot-read.db")
"""For the command line: ``actorsrc projections --app examples.iot.app:iot list``."""

DAY = date(2026, 7, 4)
MORNING = datetime(2026, 7, 4, 8, tzinfo=UTC)


async def main(directory: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(directory or scratch)
        async with (
            SQLiteEventStore.open(where / "iot.db") as store,
            SQLiteReadModel.open(where / "iot-read.db") as read_model,
            Runtime(store, [sensor], handlers=[temperature_trends], read_model=read_model) as runtime,
        ):
            ref = runtime.ref(sensor, "greenhouse-1")
            await ref.ask(RegisterSensor("greenhouse", -10.0, 50.0))
            for step in range(12):  # 08:00 to 11:40, warming up
                moment = MORNING + timedelta(minutes=20 * step)
                if step == 6:
                    await ref.ask(CalibrateSensor(-0.5, moment))
                await ref.ask(RecordTemperature(15.0 + step, moment), consistency=[temperature_trends])
            try:
                await ref.ask(RecordTemperature(85.0, MORNING + timedelta(hours=4)))
            except ReadingOutOfRange as refused:
                print(f"refused: {refused}")
            print(f"hourly trend on {DAY}:")
            for trend in await hourly_trend(read_model, "greenhouse-1", DAY):
                print(
                    f"  {trend.starts}  {trend.readings} readings  min {trend.min_celsius:.1f}"
                    f"  max {trend.max_celsius:.1f}  avg {trend.avg_celsius:.2f} °C"
                )
            asked = MORNING + timedelta(hours=2, minutes=30)
            reading = await reading_at(store, "greenhouse-1", asked)
            if reading is not None:
                print(
                    f"the reading at {asked:%H:%M}: {reading.celsius:.1f} °C, taken at {reading.at:%H:%M}"
                    f" (calibration {reading.offset_celsius:+.1f} °C)"
                )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else None)
