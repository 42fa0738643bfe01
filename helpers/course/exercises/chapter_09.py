"""Chapter 09, team MLflow: a reviewer's permission, a refused delete."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from helpers.course.exercise import Exercise, number
from helpers.course.feedback import Feedback, right, wrong
from helpers.course.isolation import logged_in, raised


def verify_review_grant(grant: Callable, server: Any, hint: str) -> Feedback:
    """Run ``grant`` for a new user on a new experiment of the team server, then tag a run as that user."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    suffix = secrets.token_hex(4)
    username, password = f"check-reviewer-{suffix}", secrets.token_urlsafe(16)
    with logged_in("admin", server.credentials.admin_password):
        auth, admin = get_app_client("basic-auth", tracking_uri=server.url), MlflowClient(server.url)
        auth.create_user(username, password)
        experiment_id = admin.create_experiment(f"check-review-{suffix}")
        run_id = admin.create_run(experiment_id).info.run_id
        try:
            grant(auth, username, experiment_id)
        except Exception as error:  # noqa: BLE001
            return raised(error)
        permission = auth.get_user_permission(username, "experiment", experiment_id).permission
        is_admin = auth.get_user(username).is_admin
    with logged_in(username, password):
        try:
            MlflowClient(server.url).set_tag(run_id, "review", "approved")
            tagged = True
        except MlflowException:
            tagged = False
    with logged_in("admin", server.credentials.admin_password):
        auth.delete_user(username)
        admin.delete_experiment(experiment_id)
    if is_admin:
        return wrong("an admin may do anything anywhere; grant a permission on this one experiment instead.")
    if not tagged:
        return wrong(f"with {permission} the reviewer's tag still gets 403. Hint: {hint}")
    if permission == "MANAGE":
        return wrong(
            "it works, but MANAGE also lets him delete the experiment and change who may do what; EDIT is enough."
        )
    return right()


EXERCISES: dict[str, Exercise] = {
    "09.grant": Exercise(
        question=(
            "Write grant_review(auth, username, experiment_id) so that the reviewer `username` can tag "
            "the runs of that experiment, and nothing more."
        ),
        hint="Tagging a run needs EDIT on its experiment: auth.grant_user_permission(username, 'experiment', "
        "experiment_id, 'EDIT').",
        solution="def grant_review(auth, username, experiment_id):\n"
        '    auth.grant_user_permission(username, "experiment", experiment_id, "EDIT")',
        verify=lambda grant, server: verify_review_grant(grant, server, EXERCISES["09.grant"].hint),
    ),
    "09.delete_status": Exercise(
        question="Ada has EDIT on her experiment (the admin created it) and tries to delete it. "
        "Which HTTP status does the server answer?",
        expected=403,
        hint="Each permission allows more than the one before it: READ, EDIT, MANAGE. Which one deletes?",
        solution="answer = 403",
        hints=(
            (lambda a: number(a) == 401, "401 means the server does not know who you are; she logged in."),
            (lambda a: number(a) == 200, "EDIT lets her log runs and tags; deleting the experiment needs MANAGE."),
        ),
    ),
}
