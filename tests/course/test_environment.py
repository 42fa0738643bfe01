import pytest

from helpers.core.config import forwarded_url
from helpers.course.environment import check_setup, library_versions, where_am_i
from helpers.course.maturity import LEVELS, QUESTIONS, assess


def test_codespaces_is_recognised_from_its_variable(monkeypatch):
    monkeypatch.setenv("CODESPACES", "true")
    assert where_am_i(ec2_markers=()) == "codespaces"


def test_ec2_is_recognised_from_the_board_vendor(tmp_path, monkeypatch):
    monkeypatch.delenv("CODESPACES", raising=False)
    vendor = tmp_path / "board_vendor"
    vendor.write_text("Amazon EC2\n")
    assert where_am_i(ec2_markers=(vendor,)) == "ec2"


def test_anything_else_is_local(tmp_path, monkeypatch):
    monkeypatch.delenv("CODESPACES", raising=False)
    assert where_am_i(ec2_markers=(tmp_path / "missing",)) == "local"


def test_codespaces_ports_are_forwarded_urls(monkeypatch):
    monkeypatch.setenv("CODESPACE_NAME", "fuzzy-train")
    monkeypatch.setenv("GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN", "app.github.dev")
    assert forwarded_url(5000) == "https://fuzzy-train-5000.app.github.dev"
    monkeypatch.delenv("CODESPACE_NAME")
    assert forwarded_url(5000) == "http://127.0.0.1:5000"


def test_library_versions_reports_missing_ones():
    versions = library_versions(("pandas", "surely-not-installed-lib"))
    assert versions.loc["surely-not-installed-lib", "version"] == "missing"
    assert versions.loc["pandas", "version"][0].isdigit()


def test_setup_checks_pass_in_the_project_venv():
    checks = check_setup()
    assert checks.loc["python >= 3.11", "ok"]
    assert checks.loc["course libraries installed", "ok"], checks.loc["course libraries installed", "detail"]


@pytest.mark.parametrize(
    "answers, level",
    [
        ([False, False, False, False], 0),
        ([True, False, False, False], 1),
        ([True, True, True, False], 3),
        ([True, True, True, True], 4),
        ([True, False, True, True], 1),
    ],
)
def test_a_level_needs_every_level_below_it(answers, level):
    assert assess(answers) == level


def test_assessment_needs_one_answer_per_question():
    with pytest.raises(ValueError, match=str(len(QUESTIONS))):
        assess([True])


def test_levels_cover_0_to_4():
    assert list(LEVELS.index) == [0, 1, 2, 3, 4]
