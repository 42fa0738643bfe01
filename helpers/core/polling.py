"""Waiting for something to happen: one poll with a deadline, for every layer to use.

A server that becomes ready, a process group that ends, a stream that turns ACTIVE, a Mage run
that finishes: each is a check asked again every ``poll`` seconds until it succeeds or the time
is up. :func:`wait_for` is that loop; the caller turns its :class:`WaitTimeout` into its own message.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic, sleep
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The check did not succeed before the deadline; ``last`` is what it returned last."""

    def __init__(self, timeout: float, last: Any) -> None:
        super().__init__(f"not done within {timeout:g} s; the check last returned {last!r}")
        self.timeout = timeout
        self.last = last


def wait_for(
    check: Callable[[], T],
    *,
    timeout: float,
    poll: float,
    done: Callable[[T], object] = bool,
    pause: Callable[[float], object] = sleep,
) -> T:
    """Call ``check()`` every ``poll`` seconds until ``done`` holds for its value; return that value.

    The check runs at least once, and once more at the deadline, so a wait of 0 s is one check
    and a success just before the time is up still counts. An exception from the check ends the
    wait at once: that is how a caller stops early (a server that exited while it was awaited).

    Args:
        check: Asks once; returns a value for ``done`` to judge.
        timeout: Seconds from now until the last check.
        poll: Seconds between checks (the last pause is shortened to end at the deadline).
        done: Whether a value ends the wait; by default, whether it is truthy.
        pause: Waits between checks; a ``threading.Condition``'s ``wait`` ends the pause early
            when another thread has news.

    Returns:
        The first value of ``check()`` that is done.

    Raises:
        WaitTimeout: the deadline passed; its ``last`` holds the check's last value.
    """
    deadline = monotonic() + timeout
    while True:
        value = check()
        if done(value):
            return value
        left = deadline - monotonic()
        if left <= 0:
            raise WaitTimeout(timeout, value)
        pause(min(poll, left))
