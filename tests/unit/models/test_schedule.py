"""The retraining schedule: parsing, next run times, the background runner."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from graph.errors import InvalidInput
from models.schedule import RetrainSchedule, RetrainScheduler

MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


def test_default_schedule_runs_twice_a_week() -> None:
    schedule = RetrainSchedule.parse("mon,thu 03:00")
    runs = [schedule.next_run(MONDAY)]
    for _ in range(3):
        runs.append(schedule.next_run(runs[-1]))
    assert [run.strftime("%a %H:%M") for run in runs] == [
        "Thu 03:00",
        "Mon 03:00",
        "Thu 03:00",
        "Mon 03:00",
    ]
    assert runs[0] == datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def test_daily_and_same_day_later() -> None:
    schedule = RetrainSchedule.parse("daily 12:30")
    assert schedule.next_run(MONDAY) == MONDAY.replace(hour=12, minute=30)
    assert schedule.next_run(MONDAY.replace(hour=12, minute=30)) == datetime(
        2026, 11, 24, 12, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["", "mon", "mon 25:00", "someday 03:00", "mon,thu 3", "x y z"])
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="retrain schedule"):
        RetrainSchedule.parse(text)


class FastClock:
    """A clock that moves ten minutes every time it is read."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=10)
        return self.now


def test_scheduler_runs_the_job_at_each_scheduled_time_and_stops() -> None:
    clock = FastClock(MONDAY)
    runs: list[datetime] = []
    third = threading.Event()

    def job() -> None:
        runs.append(clock.now)
        if len(runs) == 3:
            third.set()

    schedule = RetrainSchedule.parse("mon,thu 03:00")
    scheduler = RetrainScheduler(schedule, job, clock=clock, poll_seconds=0.001)
    scheduler.start()
    assert third.wait(10)
    scheduler.stop()
    assert [run.strftime("%a") for run in runs[:3]] == ["Thu", "Mon", "Thu"]
    assert all(
        timedelta(0) <= run - run.replace(hour=3, minute=0) < timedelta(minutes=30) for run in runs
    )


def test_a_failing_job_does_not_end_the_schedule() -> None:
    clock = FastClock(MONDAY)
    second = threading.Event()
    calls: list[int] = []

    def job() -> None:
        calls.append(1)
        if len(calls) == 2:
            second.set()
        raise RuntimeError("the graph is unavailable")

    scheduler = RetrainScheduler(
        RetrainSchedule.parse("daily 03:00"), job, clock=clock, poll_seconds=0.001
    )
    scheduler.start()
    assert second.wait(10)
    scheduler.stop()
