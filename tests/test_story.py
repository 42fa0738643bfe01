"""The prose's claims, held against the committed outputs: a sentence an output contradicts fails here.

Each test reads a committed notebook (no kernel), takes the numbers or verdicts a cell printed and
checks the sentence that speaks of them, so a refresh that changes an outcome fails until the
prose is rewritten from the new outputs.
"""

from __future__ import annotations

import re

import nbformat

from helpers.course.runner import find_chapters, notebooks_dir

CHAPTERS = {path.stem[:2]: path for path in find_chapters(notebooks_dir())}


def _notebook(chapter: str) -> nbformat.NotebookNode:
    return nbformat.read(CHAPTERS[chapter], as_version=4)


def printed(chapter: str, snippet: str) -> str:
    """What the one code cell whose source holds ``snippet`` printed or returned, as text."""
    cells = [cell for cell in _notebook(chapter).cells if cell.cell_type == "code" and snippet in cell.source]
    assert len(cells) == 1, f"{len(cells)} cells of chapter {chapter} hold {snippet!r}"
    texts = []
    for output in cells[0].outputs:
        if output.output_type == "stream" and output.name == "stdout":
            texts.append(output.text)
        elif output.output_type in {"execute_result", "display_data"}:
            texts.append(output.data.get("text/plain", ""))
    return "".join(texts)


def prose(chapter: str, snippet: str) -> str:
    """The one markdown cell of a chapter that holds ``snippet``."""
    cells = [
        cell.source for cell in _notebook(chapter).cells if cell.cell_type == "markdown" and snippet in cell.source
    ]
    assert len(cells) == 1, f"{len(cells)} markdown cells of chapter {chapter} hold {snippet!r}"
    return cells[0]


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in {text!r}"
    return float(match.group(1))


def test_02_the_summary_gives_the_best_linear_models_rmse_and_the_median_ride():
    summary = prose("02", "## Summary")
    best = printed("02", "best linear model:")
    assert re.search(r"best linear model: (\w+)", best).group(1) in summary
    rmse = number(r"validation RMSE (\d+\.\d+) min", best)
    assert f"about {rmse:.1f} minutes" in summary, (rmse, summary)
    median = number(r"50%\s+(\d+\.\d+)", printed("02", "df_jan = features.add_duration"))
    assert f"median lasts {median:.1f} minutes" in summary, (median, summary)


def test_02_the_saved_model_is_where_the_closing_says():
    saved = re.search(r"saved to (\S+);", printed("02", "model_path = training.save_model")).group(1)
    assert f"(`{saved}`)" in prose("02", "## What you have now")


def test_03_the_searched_xgboost_beats_the_linear_models_as_the_closing_says():
    assert "better than chapter 02's linear models" in prose("03", "## What you have now")
    last = printed("03", 'print(f"linear RMSE')
    linear, boosted = number(r"linear RMSE (\d+\.\d+)", last), number(r"XGBoost RMSE (\d+\.\d+)", last)
    assert boosted < linear, last


def test_03_the_categories_fit_in_a_fraction_of_the_one_hot_time():
    assert "in a fraction of the time" in prose("03", "Same rides, same target")
    table = printed("03", 'pd.DataFrame(rows).set_index("encoding")')
    one_hot = re.search(r"one-hot PU_DO\s+(\d+)\s+(\d+\.\d+)", table)
    categories = re.search(r"zones as categories\s+(\d+)\s+(\d+\.\d+)", table)
    assert int(one_hot.group(1)) > 1000 and int(categories.group(1)) == 3, table
    assert float(categories.group(2)) < float(one_hot.group(2)) / 2, table


def test_04_the_hand_logged_ridge_is_no_candidate_though_it_beat_linear_regression():
    assert "`ridge-by-hand` run is not among them" in prose("04", "ridge-by-hand")
    candidates = printed("04", "registry.candidate_runs(top=3)")
    assert "ridge-by-hand" not in candidates and "linear-regression" in candidates, candidates
    compared = printed("03", "runs.loc[~is_trial")
    ridge = number(r"ridge-by-hand\s+Ridge\s+(\d+\.\d+)", compared)
    linear = number(r"linear-regression\s+LinearRegression\s+(\d+\.\d+)", compared)
    assert ridge < linear, compared


def test_09_the_chapters_server_ran_on_the_port_the_closing_names():
    assert "listened on port 5001" in prose("09", "Stop the three servers")
    assert "tracking server: http://127.0.0.1:5001" in printed("09", "team = team_server.start_team_server()")


WORDS = {"One": 1, "Two": 2, "Three": 3, "Four": 4, "Five": 5, "Six": 6, "seven": 7}


def _judged_table() -> dict[str, dict[str, str]]:
    """08's table of the old champion and the retrained version on the judge month, by row label;
    pandas wraps a wide frame into blocks of columns (a header ending in a backslash), joined here."""
    table = printed("08", "old, new = judged(champion.version), judged(retrained.version)")
    rows: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n\s*\n", table.strip()):
        header, *lines = block.splitlines()
        names = header.rstrip(" \\").split()
        for line in lines:
            index, rest = line.rstrip(" \\").split(maxsplit=1)
            label = re.match(r"(v\d+ \([^)]*\))\s+", rest)
            values = (rest[label.end() :] if label else rest).split()
            row = rows.setdefault(index, {})
            row.update(zip(names[1:] if label else names, values, strict=True))
            if label:
                row["model"] = label.group(1)
    return {row["model"]: row for row in rows.values()}


def test_08_the_drifted_months_column_count_is_the_one_the_prose_gives():
    drifted, total = (
        int(n)
        for n in re.search(r"(\d+) of (\d+) columns drifted", printed("08", "drifted = drift.batch_metrics")).groups()
    )
    sentence = re.search(r"(\w+) of the (\w+) monitored columns drifted", prose("08", "monitored columns drifted"))
    assert (WORDS[sentence.group(1)], WORDS[sentence.group(2)]) == (drifted, total)


def test_08_the_retrained_recipe_is_the_champions_and_the_decision_is_the_one_the_prose_tells():
    champion = re.search(r"champion v(\d+);", printed("08", "champion = registry.ensure_champion()")).group(1)
    retrain = printed("08", "retrained = retraining.retrain(retrain_month)")
    assert f"with v{champion}'s recipe" in retrain, retrain
    promoted = re.search(r"^(promoted|not promoted):", retrain, re.MULTILINE).group(1) == "promoted"
    told = "The retrained version won" in prose("08", "Does it fix the drift?")
    closing = prose("08", "## What you have now")
    assert promoted == told == ("promoted because" in closing), (promoted, retrain)
    assert (
        printed("08", 'retrained.via, retrained.validation_month, decision["promoted"]')
        .strip()
        .endswith(f"{promoted})")
    )


def test_08_the_judged_numbers_are_the_ones_the_prose_quotes_and_the_winner_serves():
    rows = _judged_table()
    old = next(row for label, row in rows.items() if "champion before" in label)
    new = next(row for label, row in rows.items() if "retrained" in label)
    text = prose("08", "Drift measures change, not error")
    assert f"RMSE {float(new['rmse']):.2f} minutes against the old\nchampion's {float(old['rmse']):.2f}" in text
    assert f"MAE {float(new['mae']):.2f} against {float(old['mae']):.2f}" in text
    assert f"{float(new['prediction_drift']):.3f} against {float(old['prediction_drift']):.3f}" in text
    assert float(new["prediction_drift"]) > float(old["prediction_drift"]), "the prose says the drift grows"
    assert (new["serving"], old["serving"]) == ("True", "False")


def test_04_and_08_speak_of_the_same_champion():
    champion_04 = re.search(r"champion: version (\d+)", printed("04", "champion_rmse = registry.version_rmse")).group(1)
    champion_08 = re.search(r"champion v(\d+);", printed("08", "champion = registry.ensure_champion()")).group(1)
    assert champion_04 == champion_08


def test_10_the_broken_model_fails_the_invariance_and_minimum_tests_and_passes_the_directional_ones():
    text = prose("10", "Four of its six tests fail")
    assert "both invariance tests" in text and "both\nminimum-functionality tests" in text
    assert "The directional tests pass" in text and "its answers are seconds" in text
    run = printed("10", "MODEL_URI=broken-model.bin")
    assert "4 failed, 2 passed" in run
    failed = re.findall(r"FAILED tests/model/test_behaviour.py::test_(\w+?)_", run)
    assert sorted(failed) == ["invariance", "invariance", "minimum", "minimum"], run
    assert "6 passed" in printed("10", "MODEL_URI=image-models/champion.bin")


def test_10_the_commit_is_refused_for_the_unused_import_then_accepted():
    assert "The\ncommit is refused, and ruff says where and why" in prose("10", "unused import at the top")
    refused = printed("10", "import json\\nimport os")
    assert "F401" in refused and "`os` imported but unused" in refused and "commits: 0" in refused
    assert printed("10", "ruff check --fix").strip().endswith("Add the service and its tests")


def test_10_the_broken_version_is_refused_and_the_champion_stays():
    assert "a version that fails changes nothing" in prose("10", "### The deployment step")
    refused = printed("10", "deploy.py {broken_version.version}")
    candidate = re.search(r"candidate: version (\d+)", printed("10", "broken_versions = [")).group(1)
    champion = re.search(r"= version (\d+)", printed("10", "champion = registry.ensure_champion()")).group(1)
    assert f"not deployed: the tests failed on models:/nyc-taxi-duration/{candidate}" in refused
    assert "4 failed, 2 passed" in refused, "the registry's copy fails the tests the file failed, no others"
    assert f"champion: version {champion}" in refused and candidate != champion


def test_10_both_workflows_pass_the_checker_as_the_prose_says():
    assert "The course's own workflow passes too" in prose("10", "check-jsonschema")
    assert printed("10", "ci-cd.yml ../.github/workflows/ci.yml").strip() == "ok -- validation done"
