"""Does retraining pay on the twin? Chapter 08's story, measured end to end through the course's code.

For each mode (default, and quick as ``WORKBOOK_QUICK=1`` runs it), on a fresh store:
1. the champion as chapters 03-04 make it: the hyperopt search over the categorical XGBoost on
   green 2021-01 (validated on 2021-02; quick: 2 trials of 10 rounds on 5,000 rides), refitted and
   registered with the alias ``champion``;
2. ``retraining.retrain("2022-12")``: the champion's recipe on December 2022, validated on January 2023;
3. ``pipelines.promote_challenger("2023-02")``: both judged on February 2023.

It prints the champion's RMSE on 2021-03 (its test month) and 2023-02, the retrained model's on
2023-02, and the decision. The real TLC files give 6.29 and 5.59 for the champion and 5.21
retrained (7% lower). Each line also goes as JSON to ``build/benchmarks/retrain.jsonl``.

Run: .venv/bin/python benchmarks/retrain_benchmark.py [--mode default quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from helpers.core import config, data, features
from helpers.ml import registry, tracking
from helpers.monitor import retraining
from helpers.orchestrate import pipelines


def champion(quick: bool) -> str:
    """Chapter 03's search and refit, with its parameters cell's values; returns the registered version."""
    tracking.use_experiment()
    train, val = data.fetch_month("green", 2021, 1), data.fetch_month("green", 2021, 2)
    df_train, df_val = features.read_prepared(train.path), features.read_prepared(val.path)
    df_xgb = df_train.sample(5_000, random_state=1) if quick else df_train
    search = tracking.search_xgboost(
        df_xgb,
        df_val,
        max_evals=2 if quick else 15,
        num_boost_round=10 if quick else 1000,
        data_source=train.source,
    )
    best = tracking.train_best_xgboost(
        search, df_xgb, df_val, train_source=train.path, val_source=val.path, data_source=train.source
    )
    version = registry.register_run(MlflowClient().get_run(best.run_id))
    MlflowClient().set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION, version.version)
    return str(version.version)


def measure(mode: str, base: Path) -> dict[str, object]:
    os.environ.update(config.isolated_env(base / mode))
    os.environ["WORKBOOK_DATA_DIR"] = str(base / "data")  # one twin cache for both modes
    if mode == "default":
        del os.environ["WORKBOOK_QUICK"]
    started = time.perf_counter()
    old = champion(config.quick())
    searched = time.perf_counter() - started
    retrained = retraining.retrain("2022-12")
    decision = pipelines.promote_challenger("2023-02")
    test_2021 = registry.load_test_month()
    return {
        "mode": mode,
        "champion": f"v{old}",
        "champion 2021-03": round(registry.version_rmse(old, test_2021), 3),
        "champion 2023-02": round(decision["champion_rmse"], 3),
        "retrained 2023-02": round(decision["challenger_rmse"], 3),
        "retrained lower by": f"{1 - decision['challenger_rmse'] / decision['champion_rmse']:.1%}",
        "promoted": decision["promoted"],
        "retrained": retrained.detail,
        "champion s": round(searched, 1),
        "retrain+judge s": round(time.perf_counter() - started - searched, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", nargs="+", choices=["default", "quick"], default=["default", "quick"])
    args = parser.parse_args()
    out = config.build_dir() / "benchmarks" / "retrain.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="retrain-benchmark-") as folder:
        for mode in args.mode:
            row = measure(mode, Path(folder))
            print(json.dumps(row), flush=True)
            with out.open("a") as log:
                log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
