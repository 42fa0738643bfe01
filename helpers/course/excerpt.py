"""Show a piece of ``helpers`` in a notebook: the hardened version a chapter reuses, read from its
module so the excerpt can never drift from the code that runs."""

from __future__ import annotations

import inspect
import io
import textwrap
import tokenize
from collections.abc import Callable

from IPython.display import Code


def source(obj: Callable | type, start: str | None = None, end: str | None = None) -> Code:
    """The source of ``obj`` as a highlighted code block, optionally from the first line containing
    ``start`` to the first later line containing ``end`` (both included), and on to the end of the
    statement that line is in: a call or a literal folded over several lines is shown whole.

    Raises:
        ValueError: ``start`` or ``end`` is not in the source, so the excerpt would be the wrong one.
    """
    lines = inspect.getsource(obj).splitlines()
    first = _index(lines, start, 0, obj) if start else 0
    last = _index(lines, end, first, obj) if end else len(lines) - 1
    while last + 1 < len(lines) and _open(lines[first : last + 1]):
        last += 1
    return Code("\n".join(lines[first : last + 1]), language="python")


def _open(lines: list[str]) -> bool:
    """True while ``lines`` end inside brackets or a string that a later line closes."""
    try:
        for _ in tokenize.generate_tokens(io.StringIO(textwrap.dedent("\n".join(lines)) + "\n").readline):
            pass
    except tokenize.TokenError:
        return True
    except IndentationError:
        return False
    return False


def _index(lines: list[str], text: str, after: int, obj: object) -> int:
    for number in range(after, len(lines)):
        if text in lines[number]:
            return number
    raise ValueError(f"{text!r} is not in the source of {getattr(obj, '__qualname__', obj)!r}")
