"""Naming standards and default tags for a shared tracking server (isolation, seed 2.5.2).

On one server every team's experiments and models sit side by side. A standard name says whose
and what each one is (``<team>/<project>/<purpose>``), and default tags let anyone filter by team,
project or owner; :func:`violations` lists what an existing experiment lacks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PART = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
REQUIRED_TAGS = ("team", "project", "owner")


def _checked(what: str, value: str) -> str:
    if not isinstance(value, str) or not _PART.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} breaks the naming standard: lowercase letters and digits, "
            "words joined by single hyphens (e.g. 'ride-time')"
        )
    return value


def experiment_name(team: str, project: str, purpose: str) -> str:
    """``<team>/<project>/<purpose>``, e.g. ``ride-time/nyc-taxi/duration``.

    Raises:
        ValueError: A part is not lowercase words joined by hyphens; the message names it.
    """
    return "/".join(
        _checked(what, value) for what, value in (("team", team), ("project", project), ("purpose", purpose))
    )


def model_name(team: str, purpose: str) -> str:
    """A registered model's name: ``<team>-<purpose>``, e.g. ``ride-time-duration``.

    Raises:
        ValueError: A part breaks the standard.
    """
    return f"{_checked('team', team)}-{_checked('purpose', purpose)}"


def default_tags(team: str, project: str, owner: str) -> dict[str, str]:
    """The tags every experiment and run of a team carries."""
    return {"team": _checked("team", team), "project": _checked("project", project), "owner": _checked("owner", owner)}


def violations(name: str, tags: Mapping[str, str]) -> list[str]:
    """What keeps an experiment (its name and tags) from the standard; empty when it follows it."""
    found = []
    parts = name.split("/")
    if len(parts) != 3 or not all(_PART.fullmatch(part) for part in parts):
        found.append(f"name {name!r} is not <team>/<project>/<purpose>")
    found += [f"no {tag!r} tag" for tag in REQUIRED_TAGS if not tags.get(tag)]
    if len(parts) == 3 and tags.get("team") and tags["team"] != parts[0]:
        found.append(f"tag team={tags['team']!r} but the name says {parts[0]!r}")
    return found
