import pytest

from helpers.ml import team_standards


def test_a_standard_experiment_name_is_team_project_purpose():
    assert team_standards.experiment_name("ride-time", "nyc-taxi", "duration") == "ride-time/nyc-taxi/duration"
    assert team_standards.model_name("ride-time", "duration") == "ride-time-duration"


@pytest.mark.parametrize("team", ["Ride Time", "ride_time", "", "ride--time", "-ride"])
def test_a_part_that_breaks_the_standard_is_named(team):
    with pytest.raises(ValueError, match=f"team {team!r} breaks the naming standard"):
        team_standards.experiment_name(team, "nyc-taxi", "duration")


def test_default_tags_name_team_project_and_owner():
    assert team_standards.default_tags("ride-time", "nyc-taxi", "ada") == {
        "team": "ride-time",
        "project": "nyc-taxi",
        "owner": "ada",
    }


def test_a_standard_experiment_has_no_violations():
    tags = team_standards.default_tags("ride-time", "nyc-taxi", "ada")
    assert team_standards.violations("ride-time/nyc-taxi/duration", tags) == []


def test_violations_list_the_name_and_each_missing_tag():
    assert team_standards.violations("Default", {}) == [
        "name 'Default' is not <team>/<project>/<purpose>",
        "no 'team' tag",
        "no 'project' tag",
        "no 'owner' tag",
    ]


def test_a_team_tag_that_contradicts_the_name_is_a_violation():
    tags = team_standards.default_tags("pricing", "nyc-taxi", "ada")
    assert team_standards.violations("ride-time/nyc-taxi/duration", tags) == [
        "tag team='pricing' but the name says 'ride-time'"
    ]
