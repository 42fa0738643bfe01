"""Every chapter executed for real with papermill (offline, quick), asserting on what it produced.

Each chapter runs alone, on fresh stores of its own, as on a fresh clone. The committed outputs
are the in-order run with the course's parameters, which the tests at the end read; the learner's
path (tests/test_learner_path.py) replays it in a fresh clone and compares the cells tagged
nbval-check-output, as nbval does.
"""

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import mlflow
import nbformat
import numpy as np
import psutil
import pytest
from hyperopt.pyll.stochastic import sample
from mlflow.tracking import MlflowClient
from sklearn.metrics import root_mean_squared_error

from helpers.core import config
from helpers.core.config import isolated_env
from helpers.course.notebook_form import problems
from helpers.course.runner import find_chapters, notebooks_dir, run_chapter
from helpers.ml import boosting, registry, tracking
from tests.support import checked_cells, output_differences, skip_or_fail_in_ci

CHAPTERS = find_chapters(notebooks_dir())


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """One fresh set of stores (data, models, MLflow) per chapter."""
    return {path.stem[:2]: tmp_path_factory.mktemp(f"chapter-{path.stem[:2]}") for path in CHAPTERS}


class Executions(dict):
    """Each chapter run once, when a test first asks for it, alone on its own stores."""

    def __init__(self, stores):
        super().__init__()
        self.stores = stores

    def __missing__(self, chapter: str):
        path = next(path for path in CHAPTERS if path.stem.startswith(chapter))
        with pytest.MonkeyPatch.context() as mp:
            for name, value in isolated_env(self.stores[chapter]).items():
                mp.setenv(name, value)
            self[chapter] = run_chapter(path, self.stores[chapter] / "executed")
        return self[chapter]


@pytest.fixture(scope="module")
def executed(stores):
    return Executions(stores)


def chapter(number: str):
    """Keep a chapter's tests on one xdist worker, so its notebook runs once (see conftest.py); they run
    its kernel, so `make unit` leaves them out."""

    def mark(test):
        return pytest.mark.notebooks(pytest.mark.xdist_group(f"chapter-{number}")(test))

    return mark


def per_chapter():
    return [
        pytest.param(path.stem[:2], marks=[pytest.mark.notebooks, pytest.mark.xdist_group(f"chapter-{path.stem[:2]}")])
        for path in CHAPTERS
    ]


@pytest.fixture
def chapter_store(stores, monkeypatch):
    """Point this process at a chapter's stores, to look at what the chapter left there."""

    def use(chapter: str) -> None:
        for name, value in isolated_env(stores[chapter]).items():
            monkeypatch.setenv(name, value)
        tracking.use_experiment()

    return use


@pytest.mark.parametrize("number", per_chapter())
def test_chapter_runs_alone_top_to_bottom(executed, number):
    result = executed[number]
    assert result.ok, result.error


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_committed_notebook_is_in_canonical_form(path):
    assert problems(nbformat.read(path, as_version=4)) == []


def _stream_text(path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


def test_committed_notebooks_are_one_in_order_run_on_one_store():
    # Chapters committed from stores of their own would each number their versions from 1. Chapter 09
    # registers on a server of its own, so only the course's model counts.
    registered = [
        int(n)
        for n in re.findall(
            rf"Created version '(\d+)' of model '{registry.MODEL_NAME}'", "".join(map(_stream_text, CHAPTERS))
        )
    ]
    # Numbering goes on from chapter to chapter (Mage's registrations print in its own log, not here).
    assert registered[0] == 1 and registered == sorted(set(registered)), f"versions in chapter order: {registered}"


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text or "")
    assert match, f"{pattern!r} not in {text!r}"
    return float(match.group(1))


@chapter("01")
def test_chapter_01_uses_the_twin_offline_with_the_real_row_count(executed):
    assert executed["01"].key_result == "green 2021-01: 76,518 trips (twin data)"


@chapter("01")
def test_chapter_01_says_the_offline_zone_names_are_generated(executed):
    assert 'the names ("Zone <id>") and boroughs are generated' in _stream_text(executed["01"].output_path)


@chapter("02")
def test_chapter_02_validation_rmse_is_in_the_real_data_region(executed):
    assert 6.0 <= _number(r"validation RMSE (\d+\.\d+) min", executed["02"].key_result) <= 10.0


@chapter("02")
def test_chapter_02_hand_written_fit_and_train_pipeline_agree(executed):
    text = _stream_text(executed["02"].output_path)
    by_hand = _number(r"validation RMSE: (\d+\.\d+) min\n", text)
    helper, shown_by_hand = (
        float(x) for x in re.search(r"validation RMSE: (\d+\.\d+) min \(by hand: (\d+\.\d+) min\)", text).groups()
    )
    assert helper == by_hand == shown_by_hand


@chapter("02")
def test_chapter_02_lasso_keeps_almost_no_coefficients(executed):
    kept, total = (
        int(x.replace(",", ""))
        for x in re.search(
            r"Lasso\(alpha=0.01\) keeps ([\d,]+) of ([\d,]+) coefficients", _stream_text(executed["02"].output_path)
        ).groups()
    )
    assert total > 1_000 and kept < total / 100


@chapter("02")
def test_chapter_02_saves_the_hand_written_pair_and_the_pipeline(executed, stores, monkeypatch):
    import pickle

    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression

    from helpers.core.features import to_dicts
    from helpers.ml.training import load_model, predict

    assert executed["02"].ok
    monkeypatch.setenv("WORKBOOK_MODELS_DIR", str(stores["02"] / "models"))
    with (config.models_dir() / "lin_reg.bin").open("rb") as f_in:
        dv, lr = pickle.load(f_in)
    assert isinstance(dv, DictVectorizer) and isinstance(lr, LinearRegression)
    ride = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 2.5}
    pipeline = load_model(config.models_dir() / "pipeline.bin")
    assert 1 <= predict(pipeline, [ride])[0] <= 60
    assert predict(pipeline, [ride])[0] == pytest.approx(lr.predict(dv.transform(to_dicts([ride])))[0])


@chapter("03")
def test_chapter_03_reports_linear_and_xgboost_rmse(executed):
    assert 6.0 <= _number(r"linear RMSE (\d+\.\d+)", executed["03"].key_result) <= 10.0
    assert 0 < _number(r"XGBoost RMSE (\d+\.\d+)", executed["03"].key_result) < 15.0
    assert _number(r"\((\d+) trials\)", executed["03"].key_result) >= 1


def _tagged_cell(path, tag: str) -> str:
    notebook = nbformat.read(path, as_version=4)
    return next(cell.source for cell in notebook.cells if tag in cell.metadata.get("tags", []))


CHAPTER_03 = next(path for path in CHAPTERS if path.stem.startswith("03"))


def test_chapter_03_search_space_is_the_one_the_helpers_search():
    cell = {}
    exec(_tagged_cell(CHAPTER_03, "search-space"), cell)  # noqa: S102 - the chapter's own committed cell
    # A hyperopt expression prints as its graph: same names, distributions and bounds.
    assert {name: str(node) for name, node in cell["search_space"].items()} == {
        name: str(node) for name, node in boosting.SEARCH_SPACE.items()
    }


def test_chapter_03_objective_gives_the_helpers_loss_and_rounds(store, months):
    df_train, df_val, _ = months
    train_matrix, val_matrix = boosting.matrix(df_train), boosting.matrix(df_val)
    tracking.use_experiment("chapter-03-objective")
    # What the chapter's earlier cells define; 300 rounds, so both draws below stop early.
    cell = {
        "mlflow": mlflow,
        "boosting": boosting,
        "tracking": tracking,
        "root_mean_squared_error": root_mean_squared_error,
        "num_boost_round": 300,
        "train_matrix": train_matrix,
        "val_matrix": val_matrix,
        "val": SimpleNamespace(path=Path("green_tripdata_2021-02.parquet")),
    }
    exec(_tagged_cell(CHAPTER_03, "objective"), cell)  # noqa: S102 - the chapter's own committed cell
    hardened = tracking.xgboost_objective(train_matrix, val_matrix, num_boost_round=300)
    for seed in (0, 1):
        params = sample(boosting.SEARCH_SPACE, rng=np.random.default_rng(seed))
        taught, reused = cell["objective"](params), hardened(params)
        assert (taught["loss"], taught["rounds"]) == pytest.approx((reused["loss"], reused["rounds"]))


@chapter("04")
def test_chapter_04_ends_with_a_champion_no_worse_than_any_candidate(executed, chapter_store):
    assert executed["04"].ok
    chapter_store("04")
    champion = registry.version_by_alias(registry.CHAMPION)
    df_test = registry.load_test_month()
    champion_rmse = registry.version_rmse(champion.version, df_test)
    for version in MlflowClient().search_model_versions(f"name = '{registry.MODEL_NAME}'"):
        assert champion_rmse <= registry.version_rmse(version.version, df_test) + 1e-9


@chapter("04")
def test_rerunning_chapter_04_adds_no_versions_and_keeps_its_champion(executed, stores, chapter_store):
    assert executed["04"].ok
    chapter_store("04")
    before = MlflowClient().search_model_versions(f"name = '{registry.MODEL_NAME}'")
    champion = registry.version_by_alias(registry.CHAMPION).version
    # A learner who stopped between the tour's delete and restore left its name taken by a deleted experiment.
    MlflowClient().delete_experiment(MlflowClient().get_experiment_by_name("client-tour").experiment_id)
    again = run_chapter(CHAPTERS[[p.stem[:2] for p in CHAPTERS].index("04")], stores["04"] / "again")
    assert again.ok, again.error
    after = MlflowClient().search_model_versions(f"name = '{registry.MODEL_NAME}'")
    assert sorted(v.version for v in after) == sorted(v.version for v in before)
    assert registry.version_by_alias(registry.CHAMPION).version == champion
    assert [e.name for e in MlflowClient().search_experiments()].count("nyc-taxi-experiment") == 1
    assert MlflowClient().get_experiment_by_name("client-tour").lifecycle_stage == "active"
    assert len(MlflowClient().search_model_versions(f"name = '{registry.MODEL_NAME}-tour'")) == 2


@chapter("04")
def test_chapter_04_shows_the_stage_calls_deprecation_and_keeps_the_tour_out_of_the_candidates(executed, chapter_store):
    assert "transition_model_version_stage`` is deprecated" in executed["04"].output_path.read_text()
    chapter_store("04")
    tour = MlflowClient().get_experiment_by_name("client-tour")
    assert MlflowClient().search_runs([tour.experiment_id])
    assert all(run.info.experiment_id != tour.experiment_id for run in registry.candidate_runs(top=100))


@chapter("05")
def test_chapter_05_runs_the_pipelines_and_the_server_end_to_end(executed, chapter_store):
    text = executed["05"].key_result
    assert "73,711 train / 61,936 validation rides" in text
    assert 6.0 <= _number(r"RMSE (\d+\.\d+)", text) <= 10.0
    assert 0 < _number(r"xgboost_training: RMSE (\d+\.\d+)", text) < 15.0
    assert "inference run completed" in text
    assert "failed run alerted: Failed to run Mage pipeline batch_inference" in text
    chapter_store("05")
    assert registry.version_by_alias(registry.CHAMPION) is not None
    assert {"mage-LinearRegression", "mage-Ridge", "xgboost-best"} <= set(tracking.runs_frame()["tags.mlflow.runName"])


@chapter("06")
def test_chapter_06_scores_the_month_in_batch(executed):
    text = executed["06"].key_result
    assert _number(r"batch: (\d+) rides", text.replace(",", "")) > 60_000
    assert 4 < _number(r"RMSE (\d+\.\d+)", text) < 12
    assert text.endswith("pandas and Spark agree: True")


@chapter("07")
def test_chapter_07_serves_and_streams(executed):
    text = executed["07"].key_result
    assert 1 <= _number(r"service: (\d+\.\d+) min", text) <= 120
    assert "as helpers.serve.serving: True" in text
    assert _number(r"stream: (\d+) events", text) == 3
    assert "lambda as helpers.serve.streaming: True" in text


def _output_finder(path) -> Callable[..., str]:
    """A lookup: the text of the outputs of the first code cell whose source holds every needle."""
    notebook = nbformat.read(path, as_version=4)
    cells = [
        (
            cell.source,
            "".join(
                output.get("text", "") + str(output.get("data", {}).get("text/plain", "")) for output in cell.outputs
            ),
        )
        for cell in notebook.cells
        if cell.cell_type == "code"
    ]

    def output_of(*needles: str) -> str:
        return next(text for source, text in cells if all(needle in source for needle in needles))

    return output_of


@chapter("07")
def test_chapter_07_writes_its_flask_apps_dockerfile_and_lambda_and_runs_them(executed):
    output_of = _output_finder(executed["07"].output_path)

    written = {
        "ping.py": ("Flask(", "@app.route"),
        "predict.py": ("mlflow.pyfunc.load_model", "def prepare_features"),
        "lambda_function.py": ("base64.b64decode", "def lambda_handler"),
        "Dockerfile": ("FROM ${BASE_IMAGE}", "pipenv install --system --deploy"),
    }
    for name, needles in written.items():
        assert re.match(r"(Writing|Overwriting) .*" + name, output_of(f"%%writefile {{work}}/{name}", *needles))
    assert output_of('start_command(["python", "ping.py"]') == "'PONG'"
    assert output_of('"gunicorn"', "predict:app").startswith("(200, {'duration': ")
    assert "'ride_id': 256" in output_of("base64.b64decode(data)")
    assert "'ride_duration'" in output_of("%run {work}/lambda_function.py")


@chapter("07")
def test_chapter_07_in_quick_mode_leaves_packaging_to_the_committed_run(executed):
    output_of = _output_finder(executed["07"].output_path)

    assert output_of("pipenv_ready =").startswith("Quick mode (WORKBOOK_QUICK=1): pipenv installs nothing")
    assert output_of("docker_problem =").strip() == "Quick mode (WORKBOOK_QUICK=1): no image."
    assert output_of("python=service_python") == output_of("container_same =") == ""


def test_the_committed_chapter_07_serves_from_its_pipenv_environment_and_its_docker_image():
    # The learner's first run replays it in the default mode and compares the two answers' lines.
    output_of = _output_finder(config.REPO_ROOT / "notebooks" / "07_online_deployment.ipynb")

    # A working install prints nothing; the environment it made serves below.
    assert output_of("install.wait()") == ""
    assert "jupyterlab in the service's: False" in output_of("pipenv_ready =")
    assert (
        output_of("python=service_python").strip()
        == "served by service-env/.venv/bin/python: the same answer as predict.py: True"
    )
    assert re.match(r"built ride-duration in \d+ s: \d\.\d\d GB", output_of("container.build_image("))
    ran = output_of("container.run_container(")
    assert "'model_version': 'champion.bin'" in ran and "health: healthy | runs as uid {'10001'}" in ran
    assert output_of("container_same =").strip() == "the container's answer is predict.py's: True"


def _jvms_under(folder: Path) -> list[psutil.Process]:
    """The Java processes whose Spark scratch folder (SPARK_LOCAL_DIRS, set by helpers.servers.spark_session)
    is under ``folder``."""
    found = []
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != "java":
            continue
        try:
            scratch = process.environ().get("SPARK_LOCAL_DIRS", "")
        except psutil.Error:  # ended meanwhile, or someone else's
            continue
        if scratch.startswith(str(folder)):
            found.append(process)
    return found


@chapter("06")
def test_chapter_06_scores_the_month_on_spark_as_pandas_does_and_leaves_no_jvm(executed, stores):
    output_of = _output_finder(executed["06"].output_path)

    assert "master local[*]" in output_of("spark_session.start(")
    assert _number(r"largest gap to pandas' once both are sorted: (\S+) min", output_of("np.sort(")) < 1e-6
    compared = output_of('merge(spark_rows, on="ride_id"')
    rides = _number(r"of ([\d,]+) rides joined", compared.replace(",", ""))
    assert rides > 60_000 and f"{rides:,.0f} of {rides:,.0f} rides joined on ride_id" in compared
    assert _number(r"largest gap (\S+) min", compared) < 1e-6
    assert "same columns and dtypes: True" in compared
    assert output_of("engines_agree =").strip() == "pandas and Spark agree: True"
    assert _jvms_under(stores["06"]) == [], "a Spark JVM outlived chapter 06's kernel"


@chapter("08")
def test_chapter_08_detects_alerts_retrains_and_compares(executed, chapter_store):
    text = executed["08"].key_result
    assert re.search(r"2021-03: 0/7 days with prediction drift", text), text
    assert _number(r"2023-01: prediction drift (\d+\.\d+)", text) >= 0.1
    assert _number(r"alert: (\d+) rules", text) >= 1
    before, after = (float(x) for x in re.search(r"RMSE (\d+\.\d+) -> (\d+\.\d+) \(promoted\)", text).groups())
    assert after < before
    chapter_store("08")
    from helpers.monitor import metrics_store

    stored = metrics_store.MetricsStore().load()
    assert {"green/2021-03", "green/2023-01"} <= set(stored["batch"])
    assert (config.build_dir() / "monitoring" / "green" / "2023-01.html").stat().st_size > 1_000_000


@chapter("09")
def test_chapter_09_refuses_strangers_and_reviewers_and_serves_the_model_from_s3(executed):
    text = executed["09"].key_result
    assert text.startswith("team server: anonymous 401, reviewer write 403; ride-time-duration v1 loaded by alias")
    assert _number(r"(\d+) files in s3://mlflow-artifacts", text) >= 5


@chapter("09")
def test_chapter_09_prints_none_of_the_team_servers_secrets(executed, stores):
    assert executed["09"].ok
    secrets = json.loads((stores["09"] / "team-server" / "credentials.json").read_text())
    outputs = executed["09"].output_path.read_text()
    assert [name for name, value in secrets.items() if value in outputs] == []


@chapter("10")
def test_chapter_10_catches_each_broken_piece_and_passes_the_real_ones(executed):
    output_of = _output_finder(executed["10"].output_path)
    text = executed["10"].key_result
    assert re.match(
        r"schema: 3 of 3 broken months named; integration: .+; v\d+ not deployed, champion v\d+; 8 Terraform", text
    )

    # \b, not ^: a PYTEST_ADDOPTS=-v the kernel inherits frames the summary line with "=".
    assert re.search(r"\b4 passed", output_of("-m pytest -q tests/unit"))
    assert "1 failed, 3 passed" in output_of("--tb=short tests/unit")
    assert "rides pass the schema" in output_of("ride_schema.validate(month_rides)")
    named = output_of("for fault, broken_month in broken_months.items():")
    assert "passed" not in named
    assert re.search(r"trip_distance greater_than_or_equal_to\(0\)\s+\d+\s+-1.5", named)
    assert re.search(r"column_in_dataframe\s+None\s+DOLocationID", named)
    assert re.search(r"PULocationID isin\(range\(0, 266\)\)\s+\d+\s+300", named)
    assert re.search(r"\b6 passed", output_of("MODEL_URI=image-models/champion.bin"))
    assert "4 failed, 2 passed" in output_of("MODEL_URI=broken-model.bin")
    assert "2 passed" in output_of("-m pytest -q integration")
    assert "commits: 0" in output_of("import json\\nimport os") and "F401" in output_of("import json\\nimport os")
    assert output_of("ruff check --fix").strip().endswith("Add the service and its tests")
    assert output_of("ci-cd.yml ../.github/workflows/ci.yml").strip() == "ok -- validation done"
    assert "missing kinds: none" in output_of("missing_kinds =")


@chapter("10")
def test_chapter_10_serves_the_integration_test_from_the_container(executed):
    if "the web service: the service's container" not in _output_finder(executed["10"].output_path)("served_by ="):
        skip_or_fail_in_ci("no Docker daemon answered, so chapter 10 served its integration test with gunicorn.")


@chapter("10")
def test_chapter_10_deploys_only_a_version_that_passes_its_tests(executed, stores, chapter_store):
    output_of = _output_finder(executed["10"].output_path)
    refused = output_of("deploy.py {broken_version.version}")
    assert "not deployed: the tests failed" in refused
    assert "4 failed, 2 passed" in refused
    champion = re.search(r"champion: version (\d+)", refused).group(1)
    chapter_store("10")
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(registry.MODEL_NAME, "champion").version) == champion
    # A version that passes: the champion's model registered again, as a retraining would register one.
    source = client.get_model_version(registry.MODEL_NAME, champion).source
    passing = str(client.create_model_version(registry.MODEL_NAME, source).version)
    project = stores["10"] / "build" / "10_engineering_practice"
    deployed = subprocess.run(
        [sys.executable, "deploy.py", passing],
        cwd=project,
        env=config.child_environ({"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, drop_prefixes=("PYTEST_",)),
        capture_output=True,
        text=True,
    )
    assert deployed.returncode == 0, deployed.stdout[-2000:]
    assert f"deployed: {registry.MODEL_NAME}@champion is version {passing}" in deployed.stdout
    assert str(client.get_model_version_by_alias(registry.MODEL_NAME, "champion").version) == passing


def test_no_committed_notebook_shows_a_password_or_key():
    pattern = re.compile(r"(password|secret|aws_secret_access_key|admin_password)['\"]?\s*[:=]\s*['\"]?[\w-]{8,}", re.I)
    found = {path.stem: pattern.findall(_output_text(path)) for path in CHAPTERS}
    assert {name: hits for name, hits in found.items() if hits} == {}


def _output_text(path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "".join(
        output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


@pytest.mark.parametrize("number", per_chapter())
def test_exercises_start_not_attempted(executed, number):
    notebook = nbformat.read(executed[number].output_path, as_version=4)
    feedback = [
        output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code" and "check(" in cell.source
        for output in cell.outputs
    ]
    assert len(feedback) >= 2
    assert all("Not attempted yet" in text for text in feedback)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_every_chapter_has_an_exercise_where_the_learner_writes_code(path):
    from helpers.course.checks import EXERCISES

    sources = [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    checked = set(re.findall(r'check\("(\d\d\.\w+)"', "\n".join(sources)))
    assert [exercise for exercise in checked if EXERCISES[exercise].verify], checked


def test_the_output_comparison_sees_a_changed_result_but_not_paths_or_how_streams_were_cut(tmp_path):
    committed = CHAPTERS[1]
    notebook = nbformat.read(committed, as_version=4)
    index = next(
        i for i in checked_cells(notebook) if any(o.output_type == "stream" for o in notebook.cells[i].outputs)
    )
    stream = next(o for o in notebook.cells[index].outputs if o.output_type == "stream")
    half = len(stream.text) // 2
    head, tail = dict(stream, text=stream.text[:half]), dict(stream, text=stream.text[half:])
    notebook.cells[index].outputs = [nbformat.from_dict(head), nbformat.from_dict(tail)] + [
        o for o in notebook.cells[index].outputs if o is not stream
    ]
    recut = tmp_path / committed.name
    nbformat.write(notebook, recut)
    assert output_differences(committed, recut) == []

    notebook.cells[index].outputs[1]["text"] += "one more line\n"
    nbformat.write(notebook, recut)
    assert [line.split(":")[0] for line in output_differences(committed, recut)] == [f"{committed.name} cell {index}"]
