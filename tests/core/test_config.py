import ast
import os
import re
from pathlib import Path

import pytest

from helpers.core import config
from helpers.core.config import isolated_env


def test_defaults_are_relative_to_the_repo_not_the_working_directory(monkeypatch, tmp_path):
    for name in ("WORKBOOK_DATA_DIR", "MLFLOW_TRACKING_URI", "WORKBOOK_MODELS_DIR", "WORKBOOK_MONITORING_DB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert config.data_dir() == config.REPO_ROOT / "data"
    assert config.models_dir() == config.REPO_ROOT / "models"
    assert config.tracking_uri() == f"sqlite:///{config.REPO_ROOT / 'mlflow.db'}"
    assert config.monitoring_db_uri() == f"sqlite:///{config.REPO_ROOT / 'monitoring.db'}"


def test_environment_variables_override_the_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("WORKBOOK_MONITORING_DB", "postgresql+psycopg://127.0.0.1:5432/monitoring")
    assert config.monitoring_db_uri() == "postgresql+psycopg://127.0.0.1:5432/monitoring"
    assert config.data_dir() == tmp_path / "cache"
    assert config.tracking_uri() == "http://127.0.0.1:5000"


def test_offline_flag_accepts_the_usual_spellings(monkeypatch):
    for value, expected in [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)]:
        monkeypatch.setenv("WORKBOOK_OFFLINE", value)
        assert config.offline() is expected


def test_repo_root_holds_the_package():
    assert (config.REPO_ROOT / "helpers" / "core" / "config.py").is_file()


def test_artifacts_of_a_sqlite_store_sit_beside_it(tmp_path):
    assert config.artifacts_dir(f"sqlite:///{tmp_path}/mlflow.db") == tmp_path / "mlartifacts"
    assert config.artifacts_dir("http://127.0.0.1:5000") == config.REPO_ROOT / "mlartifacts"


def test_isolated_env_keeps_the_monitoring_store_in_the_temporary_base(tmp_path):
    assert isolated_env(tmp_path)["WORKBOOK_MONITORING_DB"] == f"sqlite:///{tmp_path / 'monitoring.db'}"


def test_mage_url_defaults_to_make_mage_and_can_be_switched_off(monkeypatch):
    monkeypatch.delenv("WORKBOOK_MAGE_URL", raising=False)
    assert config.mage_url() == "http://127.0.0.1:6789"
    monkeypatch.setenv("WORKBOOK_MAGE_URL", "")
    assert config.mage_url() is None
    assert isolated_env(Path("/tmp/x"))["WORKBOOK_MAGE_URL"] == ""


def test_team_server_defaults_to_the_repo_and_port_5001(monkeypatch, tmp_path):
    monkeypatch.delenv("WORKBOOK_TEAM_DIR", raising=False)
    monkeypatch.delenv("WORKBOOK_TEAM_PORT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert config.team_dir() == config.REPO_ROOT / "team-server"
    assert config.team_port() == 5001


def test_isolated_env_keeps_the_team_server_in_the_base_on_a_free_port(tmp_path):
    env = isolated_env(tmp_path)
    assert env["WORKBOOK_TEAM_DIR"] == str(tmp_path / "team-server")
    assert env["WORKBOOK_TEAM_PORT"] == "0"


def test_a_team_port_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv("WORKBOOK_TEAM_PORT", "fivethousand")
    with pytest.raises(ValueError, match="WORKBOOK_TEAM_PORT must be a port number"):
        config.team_port()


# --- Every setting read in one place ---------------------------------------------------------------

CONFIG = config.REPO_ROOT / "helpers" / "core" / "config.py"
# Where config itself may touch os.environ: its one reader, the set-and-restore helper, the child
# process's environment, and the defaults every process sets for itself and its children.
ENVIRON_USERS = {"_read", "temporary_environ", "child_environ", "apply_process_defaults"}


def test_no_module_but_config_reads_or_changes_the_environment():
    found = [
        f"{path.relative_to(config.REPO_ROOT)}:{number}: {line.strip()}"
        for path in sorted((config.REPO_ROOT / "helpers").rglob("*.py"))
        if path != CONFIG
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bos\.environ\b|\bgetenv\b|\bos\.putenv\b|\bos\.unsetenv\b", line)
    ]
    assert found == []


def test_config_touches_the_environment_only_in_its_helpers():
    tree = ast.parse(CONFIG.read_text())
    outside = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.name not in ENVIRON_USERS:
            outside += [
                f"{function.name}:{node.lineno}"
                for node in ast.walk(function)
                if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}
            ]
    assert outside == []


def _read_names() -> set[str]:
    tree = ast.parse(CONFIG.read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) in {"_read", "_flag", "_folder"}
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_every_variable_config_reads_is_a_documented_setting_and_every_setting_is_read():
    assert _read_names() == set(config.SETTINGS)


def test_reading_an_undocumented_variable_is_refused():
    with pytest.raises(KeyError, match="not a setting of the course"):
        config._read("WORKBOOK_SOMETHING_NEW")


def _documented_rows() -> list[tuple[str, str, str]]:
    text = (config.REPO_ROOT / "docs" / "settings.md").read_text()
    return [
        tuple(cell.strip() for cell in row.strip().strip("|").split("|"))
        for row in text.splitlines()
        if row.startswith("| `")
    ]


def test_the_settings_page_lists_exactly_the_settings_config_reads():
    expected = [(f"`{s.name}`", s.default, s.meaning) for s in config.SETTINGS.values()]
    assert sorted(_documented_rows()) == sorted(expected)


def test_a_temporary_environment_is_restored_whatever_the_block_did(monkeypatch):
    monkeypatch.setenv("WORKBOOK_QUICK", "1")
    monkeypatch.delenv("WORKBOOK_OFFLINE", raising=False)
    with config.temporary_environ(WORKBOOK_QUICK=None, WORKBOOK_OFFLINE="1"):
        assert not config.quick() and config.offline()
        os.environ["WORKBOOK_TLC_URL"] = "http://changed"
    assert config.quick() and not config.offline()
    assert "WORKBOOK_TLC_URL" not in os.environ


def test_a_childs_environment_drops_and_adds_without_touching_this_one(monkeypatch):
    monkeypatch.setenv("VIRTUAL_ENV", "/somewhere/.venv")
    child = config.child_environ({"PORT": "9696"}, drop=("VIRTUAL_ENV",))
    assert child["PORT"] == "9696" and "VIRTUAL_ENV" not in child
    assert os.environ["VIRTUAL_ENV"] == "/somewhere/.venv"
