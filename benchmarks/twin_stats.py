"""How closely the offline twin behaves like the real TLC data: prints the facts make_twin targets.

Run: .venv/bin/python benchmarks/twin_stats.py [--no-models]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from helpers.core.tlc import DROPOFF_COLUMN, PICKUP_COLUMN
from helpers.core.twin import make_twin

MONTHS = [
    ("green", 2021, 1),
    ("green", 2021, 2),
    ("green", 2021, 3),
    ("green", 2022, 1),
    ("green", 2023, 1),
    ("yellow", 2023, 1),
]


def describe(color: str, year: int, month: int) -> tuple[pd.DataFrame, dict[str, object]]:
    started = time.perf_counter()
    table = make_twin(color, year, month)
    seconds = time.perf_counter() - started
    df = table.to_pandas()
    minutes = (df[DROPOFF_COLUMN[color]] - df[PICKUP_COLUMN[color]]).dt.total_seconds() / 60
    inside = minutes.between(1, 60)
    top = df["PULocationID"].value_counts(normalize=True).head(4)
    quantiles = df["trip_distance"].quantile([0.1, 0.5, 0.9, 0.99]).round(1).tolist()
    return df, {
        "month": f"{color} {year}-{month:02d}",
        "rows": len(df),
        "outside_1_60": f"{1 - inside.mean():.2%}",
        "negative": int((minutes < 0).sum()),
        "mean/std": f"{minutes[inside].mean():.2f}/{minutes[inside].std():.2f}",
        "dist q10/50/90/99": "/".join(map(str, quantiles)),
        "dist max": df["trip_distance"].max(),
        "PU": df["PULocationID"].nunique(),
        "PU_DO": (df["PULocationID"].astype(str) + "_" + df["DOLocationID"].astype(str)).nunique(),
        "top PU": ", ".join(f"{z}:{s:.1%}" for z, s in top.items()),
        "null": f"{df['passenger_count'].isna().mean():.1%}",
        "outside month": int((df[PICKUP_COLUMN[color]].dt.month != month).sum()),
        "gen s": round(seconds, 2),
    }


def features(df: pd.DataFrame) -> tuple[list[dict[str, object]], np.ndarray]:
    minutes = (df["lpep_dropoff_datetime"] - df["lpep_pickup_datetime"]).dt.total_seconds() / 60
    df = df[minutes.between(1, 60)]
    y = minutes[minutes.between(1, 60)].to_numpy()
    pairs = df["PULocationID"].astype(str) + "_" + df["DOLocationID"].astype(str)
    return [{"PU_DO": p, "trip_distance": d} for p, d in zip(pairs, df["trip_distance"], strict=True)], y


def model_rmse(train: pd.DataFrame, val: pd.DataFrame, depth: int, rounds: int) -> dict[str, float]:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import root_mean_squared_error
    from sklearn.pipeline import Pipeline
    from xgboost import XGBRegressor

    X_train, y_train = features(train)
    X_val, y_val = features(val)
    lr = Pipeline([("dv", DictVectorizer()), ("model", LinearRegression())]).fit(X_train, y_train)
    dv = DictVectorizer().fit(X_train)
    xgb = XGBRegressor(
        max_depth=depth,
        learning_rate=0.1,
        n_estimators=rounds,
        min_child_weight=1.2,
        reg_alpha=0.018,
        reg_lambda=0.012,
        objective="reg:squarederror",
        early_stopping_rounds=20,
        n_jobs=-1,
        random_state=42,
    )
    xgb.fit(dv.transform(X_train), y_train, eval_set=[(dv.transform(X_val), y_val)], verbose=False)
    return {
        "LinearRegression val RMSE": root_mean_squared_error(y_val, lr.predict(X_val)),
        f"XGBoost (depth {depth}) val RMSE": root_mean_squared_error(y_val, xgb.predict(dv.transform(X_val))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-models", action="store_true", help="skip the LR vs XGBoost comparison")
    parser.add_argument("--xgb-depth", type=int, default=30, help="XGBoost max_depth")
    parser.add_argument("--xgb-rounds", type=int, default=200, help="XGBoost boosting rounds (early stopping at 20)")
    args = parser.parse_args()
    frames = {}
    rows = []
    for key in MONTHS:
        frames[key], stats = describe(*key)
        rows.append(stats)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(pd.DataFrame(rows).set_index("month").T.to_string())
    if not args.no_models:
        print("\nreal (green Jan->Feb 2021): LinearRegression ~7.76")
        for name, rmse in model_rmse(
            frames["green", 2021, 1], frames["green", 2021, 2], args.xgb_depth, args.xgb_rounds
        ).items():
            print(f"{name}: {rmse:.3f}")


if __name__ == "__main__":
    main()
