"""The MLOps maturity model (Microsoft's levels 0-4) and a short self-assessment."""

from __future__ import annotations

import pandas as pd

LEVELS = pd.DataFrame(
    [
        (0, "No MLOps", "Notebooks, manual hand-over, nothing tracked or automated."),
        (1, "DevOps, no MLOps", "Releases are automated (CI, tests), but models are trained and tracked by hand."),
        (2, "Automated training", "Training pipelines and experiment tracking; models in a registry."),
        (3, "Automated deployment", "Models ship through a pipeline, with A/B tests and full lineage."),
        (4, "Full MLOps", "Monitoring triggers retraining and redeployment without a person in the loop."),
    ],
    columns=["level", "name", "what it looks like"],
).set_index("level")

# Each question is the step that opens the next level: the level is how many hold in order.
QUESTIONS = (
    "Is releasing your service automated (CI builds and tests it)?",
    "Is training a pipeline you can re-run, with experiments tracked?",
    "Does a model reach production through an automated, tested deployment?",
    "Does monitoring start retraining and redeployment on its own?",
)


def assess(answers: list[bool]) -> int:
    """The maturity level from yes/no answers to :data:`QUESTIONS`, in order.

    A level counts only when every level below it holds too: automated deployment without
    tracked training is still level 1.

    Raises:
        ValueError: when the number of answers is not the number of questions.
    """
    if len(answers) != len(QUESTIONS):
        raise ValueError(f"expected {len(QUESTIONS)} answers, one per question in QUESTIONS; got {len(answers)}")
    level = 0
    for answer in answers:
        if not answer:
            break
        level += 1
    return level
