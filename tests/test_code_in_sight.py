"""The code a chapter teaches is in its cells and ran there (DESIGN.md, "What lives where").

Each chapter's committed notebook must call every API its seed sections teach, in a code cell that
ran without an error: a helper that does it out of sight does not count.
"""

import ast

import nbformat
import pytest

from helpers.course.runner import find_chapters, notebooks_dir

# "mlflow.x.y": that exact dotted call; ".name": a method of any object (a client, a vectorizer);
# "name": a plain function or class called by its name.
TAUGHT = {
    "02": [
        "DictVectorizer",
        ".fit_transform",
        "LinearRegression",
        ".fit",
        "root_mean_squared_error",
        "pickle.dump",
        "pickle.load",
    ],
    "03": [
        "mlflow.set_tracking_uri",
        "mlflow.set_experiment",
        "mlflow.start_run",
        "mlflow.log_param",
        "mlflow.log_params",
        "mlflow.log_metric",
        "mlflow.set_tag",
        "mlflow.log_artifact",
        "mlflow.sklearn.log_model",
        "infer_signature",
        "mlflow.sklearn.autolog",
        "fmin",
        "mlflow.search_runs",
    ],
    "04": [
        ".create_experiment",
        ".create_run",
        ".log_param",
        ".log_metric",
        ".set_tag",
        ".log_artifact",
        ".set_terminated",
        ".get_run",
        ".get_experiment",
        ".delete_experiment",
        ".create_registered_model",
        ".create_model_version",
        ".transition_model_version_stage",
        ".set_registered_model_alias",
        ".get_model_version_by_alias",
        "mlflow.pyfunc.load_model",
    ],
}


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else f"?.{node.attr}"
    return None


def calls_that_ran(number: str) -> set[str]:
    """Dotted names of every call in the chapter's code cells that executed without an error."""
    path = next(path for path in find_chapters(notebooks_dir()) if path.stem.startswith(number))
    found: set[str] = set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or cell.get("execution_count") is None:
            continue
        if any(output.output_type == "error" for output in cell.outputs):
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith("%"))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and (name := _dotted(node.func)):
                found.add(name)
    return found


def _taught(api: str, calls: set[str]) -> bool:
    if api.startswith("."):
        return any(call.endswith(api) for call in calls)
    return api in calls or any(call.endswith("." + api) for call in calls if "." not in api)


@pytest.mark.parametrize("number", sorted(TAUGHT))
def test_every_taught_api_is_called_in_a_cell_that_ran(number):
    calls = calls_that_ran(number)
    assert [api for api in TAUGHT[number] if not _taught(api, calls)] == []


def test_a_call_hidden_in_a_string_or_a_comment_does_not_count():
    tree_calls = {
        _dotted(node.func)
        for node in ast.walk(ast.parse("'mlflow.autolog()'  # mlflow.log_param()"))
        if isinstance(node, ast.Call)
    }
    assert not _taught("mlflow.autolog", tree_calls)
