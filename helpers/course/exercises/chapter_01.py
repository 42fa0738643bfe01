"""Chapter 01, environment: the download URL, the maturity level."""

from __future__ import annotations

from collections.abc import Callable

from helpers.course.exercise import Exercise, number
from helpers.course.feedback import Feedback, right, wrong
from helpers.course.isolation import raised

_URL_CASES = (("green", 2021, 1), ("yellow", 2023, 11), ("green", 2022, 3))


def verify_month_url(month_url: Callable[[str, int, int], str]) -> Feedback:
    """``month_url(color, year, month)`` must give the TLC's own URL for a few months."""
    from helpers.core import config, tlc

    for color, year, month in _URL_CASES:
        expected = f"{config.TLC_BASE_URL}/{tlc.trip_filename(color, year, month)}"
        try:
            got = month_url(color, year, month)
        except Exception as error:  # noqa: BLE001 - the learner's code may raise anything
            return raised(error)
        if got == expected:
            continue
        call = f"month_url({color!r}, {year}, {month})"
        if not isinstance(got, str):
            return wrong(f"{call} returned {got!r}; return the URL as a string.")
        if got.endswith(f"{year}-{month}.parquet"):
            return wrong(f'{call} gave {got!r}: the month has two digits, 03 not 3 (f"{{month:02d}}").')
        if not got.startswith(config.TLC_BASE_URL + "/"):
            return wrong(f"{call} gave {got!r}: files live under {config.TLC_BASE_URL}/.")
        return wrong(f"{call} gave {got!r}, expected {expected!r}.")
    return right()


EXERCISES: dict[str, Exercise] = {
    "01.month_url": Exercise(
        question="Write month_url(color, year, month) returning the TLC's download URL of that month's file, "
        "e.g. month_url('green', 2021, 1).",
        hint="The pattern is in the markdown above: base URL, then {color}_tripdata_{YYYY-MM}.parquet.",
        solution="def month_url(color, year, month):\n"
        '    return f"https://d37ci6vzurychx.cloudfront.net/trip-data/{color}_tripdata_{year}-{month:02d}.parquet"',
        verify=verify_month_url,
    ),
    "01.maturity": Exercise(
        question=(
            "A team trains models in notebooks, hands a pickle to engineers who deploy it by hand, "
            "and tracks nothing. Which MLOps maturity level (0-4) is it at?"
        ),
        expected=0,
        hint="Without any automation or experiment tracking a team is at the very first level.",
        solution="answer = 0",
        hints=(
            (
                lambda a: number(a) == 1,
                "Level 1 already automates releases with DevOps (CI, tests); this team does not.",
            ),
            (
                lambda a: number(a) is not None and number(a) >= 2,
                "Levels 2 and above need at least automated training and tracked experiments.",
            ),
        ),
    ),
}
