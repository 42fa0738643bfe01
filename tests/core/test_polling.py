"""helpers.core.polling.wait_for on a fake clock: which checks run when, and what a timeout carries."""

from __future__ import annotations

import threading

import pytest

from helpers.core import polling
from helpers.core.polling import WaitTimeout, wait_for


class FakeClock:
    """A monotonic clock that moves only when the wait pauses, so no test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(polling, "monotonic", fake.monotonic)
    return fake


def checks(*values):
    """A check that returns ``values`` in turn."""
    answers = iter(values)

    def check():
        return next(answers)

    return check


def test_it_returns_the_first_truthy_value_of_the_check(clock):
    assert wait_for(checks(None, 0, "ready"), timeout=10, poll=1, pause=clock.pause) == "ready"
    assert clock.pauses == [1, 1]


def test_a_check_that_succeeds_at_once_does_not_pause(clock):
    assert wait_for(checks(True), timeout=10, poll=1, pause=clock.pause) is True
    assert clock.pauses == []


def test_the_last_check_runs_at_the_deadline(clock):
    asked_at = []

    def check():
        asked_at.append(clock.now)
        return clock.now >= 102.5

    assert wait_for(check, timeout=2.5, poll=1, pause=clock.pause)
    assert asked_at == [100, 101, 102, 102.5]  # the last pause is shortened to end at the deadline


def test_a_timeout_carries_the_last_value_and_the_timeout(clock):
    with pytest.raises(WaitTimeout) as raised:
        wait_for(
            checks("starting", "migrating", "loading"),
            done=lambda state: state == "up",
            timeout=2,
            poll=1,
            pause=clock.pause,
        )

    assert raised.value.last == "loading"
    assert raised.value.timeout == 2
    assert isinstance(raised.value, TimeoutError)
    assert "within 2 s" in str(raised.value)


def test_a_zero_timeout_checks_once(clock):
    with pytest.raises(WaitTimeout):
        wait_for(checks(False), timeout=0, poll=1, pause=clock.pause)
    assert clock.pauses == []


def test_done_judges_the_value_the_check_returns(clock):
    runs = checks({"status": "running"}, {"status": "completed"})

    run = wait_for(runs, done=lambda run: run["status"] == "completed", timeout=10, poll=0.5, pause=clock.pause)

    assert run == {"status": "completed"}


def test_an_exception_from_the_check_ends_the_wait_at_once(clock):
    def check():
        raise ProcessLookupError("the server exited")

    with pytest.raises(ProcessLookupError):
        wait_for(check, timeout=10, poll=1, pause=clock.pause)
    assert clock.pauses == []


def test_a_condition_wait_as_pause_wakes_up_when_another_thread_has_news():
    arrived = threading.Condition()
    news: list[str] = []

    def deliver():
        with arrived:
            news.append("alert")
            arrived.notify_all()

    with arrived:
        # The thread can deliver only once wait_for waits on the condition and so releases its lock.
        threading.Thread(target=deliver).start()
        found = wait_for(lambda: news[:1], timeout=30, poll=30, pause=arrived.wait)

    assert found == ["alert"]
