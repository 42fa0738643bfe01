"""What a learner sees after an exercise's check: a status and a message, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass

NOT_ATTEMPTED = "not attempted"
CORRECT = "correct"
INCORRECT = "incorrect"


@dataclass(frozen=True)
class Feedback:
    """A check's verdict; its text is the notebook cell's output."""

    status: str
    message: str

    @property
    def correct(self) -> bool:
        return self.status == CORRECT

    def __repr__(self) -> str:
        icon = {CORRECT: "✅", INCORRECT: "❌"}.get(self.status, "💡")
        return f"{icon} {self.message}"


def right() -> Feedback:
    return Feedback(CORRECT, "Correct!")


def wrong(hint: str) -> Feedback:
    return Feedback(INCORRECT, f"Not quite: {hint}")
