"""Where chapter 03's XGBoost time goes: the zoomcamp's one-hot recipe against zones as categories.

On the twin's green January 2021 (training) and February 2021 (validation), as chapter 03 uses:

- ``onehot-fit``: (1a) one fit of the zoomcamp's best parameters on the one-hot ``PU_DO``
  (DictVectorizer), 1000 rounds with early stopping after 50;
- ``onehot-search``: (1b) the zoomcamp's search as the course ran it before: 50 hyperopt trials,
  ``max_depth`` 4-100, up to 1000 rounds, the same one-hot matrix (about 20 minutes);
- ``native-search``: the course's search now (``helpers.ml.boosting``): zones as categoricals;
- ``frontier``: single fits of the categorical model across depths and learning rates, for the
  time/RMSE frontier.

Every line printed is also appended as JSON to ``build/benchmarks/xgboost.jsonl``, with the wall
time (``seconds``) and the CPU time this process used (``cpu_seconds``), which stays meaningful
when other work shares the cores. Run alone on an idle machine for wall times.

Run: WORKBOOK_OFFLINE=1 .venv/bin/python benchmarks/xgboost_benchmark.py onehot-fit onehot-search native-search
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import xgboost as xgb
from hyperopt import STATUS_OK, Trials, fmin, hp, tpe
from hyperopt.pyll import scope
from sklearn.feature_extraction import DictVectorizer

from helpers.core import config, data, features
from helpers.ml import boosting, tracking
from helpers.ml.training import rmse

ZOOMCAMP_BEST = {
    "max_depth": 30,
    "learning_rate": 0.0959,
    "min_child_weight": 1.06,
    "reg_alpha": 0.018,
    "reg_lambda": 0.0117,
    "objective": "reg:squarederror",
    "seed": 42,
}
ZOOMCAMP_SPACE = {
    "max_depth": scope.int(hp.quniform("max_depth", 4, 100, 1)),
    "learning_rate": hp.loguniform("learning_rate", -3, 0),
    "reg_alpha": hp.loguniform("reg_alpha", -5, -1),
    "reg_lambda": hp.loguniform("reg_lambda", -6, -1),
    "min_child_weight": hp.loguniform("min_child_weight", -1, 3),
    "objective": "reg:squarederror",
    "seed": 42,
}


def record(**fields) -> None:
    fields["cpu_seconds_so_far"] = round(time.process_time(), 1)
    print(json.dumps(fields), flush=True)
    out = config.build_dir() / "benchmarks" / "xgboost.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps({"at": time.strftime("%Y-%m-%d %H:%M:%S"), **fields}) + "\n")


def months():
    df_train = features.read_prepared(data.fetch_month("green", 2021, 1).path)
    df_val = features.read_prepared(data.fetch_month("green", 2021, 2).path)
    return df_train, df_val


def onehot_matrices(df_train, df_val):
    vectorizer = DictVectorizer()
    train = xgb.DMatrix(vectorizer.fit_transform(features.to_dicts(df_train)), label=features.target(df_train))
    val = xgb.DMatrix(vectorizer.transform(features.to_dicts(df_val)), label=features.target(df_val))
    return train, val, len(vectorizer.feature_names_)


def onehot_fit(params, train, val, early_stopping_rounds=50):
    booster = xgb.train(
        params,
        train,
        num_boost_round=1000,
        evals=[(val, "validation")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )
    rounds = booster.best_iteration + 1
    return rmse(val.get_label(), booster.predict(val, iteration_range=(0, rounds))), rounds


def run_onehot_fit(df_train, df_val, nthread):
    started = time.perf_counter()
    train, val, columns = onehot_matrices(df_train, df_val)
    prepared = time.perf_counter() - started
    score, rounds = onehot_fit({**ZOOMCAMP_BEST, "nthread": nthread}, train, val)
    record(
        case="1a onehot-fit zoomcamp best",
        columns=columns,
        nthread=nthread,
        rmse=round(score, 4),
        rounds=rounds,
        matrix_seconds=round(prepared, 1),
        seconds=round(time.perf_counter() - started, 1),
    )


def run_onehot_search(df_train, df_val, nthread, max_evals):
    started = time.perf_counter()
    train, val, _ = onehot_matrices(df_train, df_val)

    def objective(params):
        trial_started = time.perf_counter()
        score, rounds = onehot_fit({**params, "nthread": nthread}, train, val)
        record(
            case="1b onehot-search trial",
            max_depth=int(params["max_depth"]),
            rmse=round(score, 4),
            rounds=rounds,
            seconds=round(time.perf_counter() - trial_started, 1),
        )
        return {"loss": score, "status": STATUS_OK}

    trials = Trials()
    fmin(
        objective,
        ZOOMCAMP_SPACE,
        algo=tpe.suggest,
        max_evals=max_evals,
        trials=trials,
        rstate=np.random.default_rng(42),
        show_progressbar=False,
    )
    record(
        case="1b onehot-search",
        trials=max_evals,
        nthread=nthread,
        best_rmse=round(min(trials.losses()), 4),
        seconds=round(time.perf_counter() - started, 1),
    )


def run_native_search(df_train, df_val, max_evals):
    """The course's search as chapter 03 runs it, nested MLflow runs included, on a temporary store."""
    with tempfile.TemporaryDirectory() as folder:
        tracking.use_experiment("benchmark", tracking_uri=f"sqlite:///{folder}/mlflow.db")
        started = time.perf_counter()
        search = tracking.search_xgboost(df_train, df_val, max_evals=max_evals)
        seconds = time.perf_counter() - started
        trials = tracking.runs_frame("benchmark", f"tags.mlflow.parentRunId = '{search.parent_run_id}'")
    for _, trial in trials.sort_values("start_time").iterrows():
        record(
            case="native-search trial",
            rmse=round(trial["metrics.rmse"], 4),
            rounds=int(trial["metrics.best_iteration"]) + 1,
            seconds=round((trial["end_time"] - trial["start_time"]).total_seconds(), 1),
            params={k[7:]: trial[k] for k in trials.columns if k.startswith("params.")},
        )
    record(
        case="native-search",
        trials=max_evals,
        nthread=boosting.threads(),
        best_rmse=round(search.best_rmse, 4),
        best_rounds=search.best_rounds,
        best_params={k: round(float(v), 4) for k, v in search.best_params.items()},
        seconds=round(seconds, 1),
    )


def run_frontier(df_train, df_val):
    train, val = boosting.matrix(df_train), boosting.matrix(df_val)
    for depth in (3, 4, 6, 8, 10):
        for learning_rate in (0.1, 0.2, 0.3):
            started = time.perf_counter()
            result = boosting.fit(
                {"max_depth": depth, "learning_rate": learning_rate, "min_child_weight": 20}, train, val
            )
            record(
                case="frontier",
                max_depth=depth,
                learning_rate=learning_rate,
                rmse=round(result.rmse, 4),
                rounds=result.rounds,
                seconds=round(time.perf_counter() - started, 1),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+", choices=["onehot-fit", "onehot-search", "native-search", "frontier"])
    parser.add_argument("--nthread", type=int, default=boosting.threads(), help="threads for the one-hot cases")
    parser.add_argument("--evals", type=int, default=50, help="trials of the one-hot search")
    parser.add_argument("--native-evals", type=int, default=20, help="trials of the categorical search")
    args = parser.parse_args()
    df_train, df_val = months()
    for case in args.cases:
        if case == "onehot-fit":
            run_onehot_fit(df_train, df_val, args.nthread)
        elif case == "onehot-search":
            run_onehot_search(df_train, df_val, args.nthread, args.evals)
        elif case == "native-search":
            run_native_search(df_train, df_val, args.native_evals)
        else:
            run_frontier(df_train, df_val)


if __name__ == "__main__":
    main()
