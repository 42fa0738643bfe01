import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Lasso, LinearRegression, Ridge

from helpers.ml.training import (
    compare_linear_models,
    evaluate,
    load_model,
    predict,
    rmse,
    save_model,
    train_pipeline,
)


def test_rmse_of_a_perfect_prediction_is_zero():
    assert rmse(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0


def test_rmse_matches_its_definition():
    assert rmse(np.array([0.0, 0.0]), np.array([3.0, 4.0])) == pytest.approx(np.sqrt(12.5))


@pytest.mark.parametrize("estimator", [LinearRegression(), Lasso(alpha=0.001), Ridge(alpha=0.1)])
def test_each_linear_model_fits_the_sparse_features(months, estimator):
    df_train, df_val, _ = months
    pipeline = train_pipeline(estimator, df_train)
    assert evaluate(pipeline, df_val) < 1.0


def test_comparison_table_is_sorted_by_validation_rmse(months):
    table, fitted = compare_linear_models(*months[:2])
    assert list(table.columns) == ["train_rmse", "val_rmse"]
    assert table["val_rmse"].is_monotonic_increasing
    assert set(fitted) == {"LinearRegression", "Lasso", "Ridge"}


def test_saved_model_predicts_the_same_after_loading(months, tmp_path):
    df_train, df_val, _ = months
    pipeline = train_pipeline(LinearRegression(), df_train)
    path = save_model(pipeline, tmp_path / "models" / "lin_reg.bin")
    assert np.allclose(predict(load_model(path), df_val), predict(pipeline, df_val))
    assert [p.name for p in path.parent.iterdir()] == ["lin_reg.bin"]


def test_a_raw_ride_is_predicted_like_its_prepared_row(months):
    df_train, _, _ = months
    pipeline = train_pipeline(LinearRegression(), df_train)
    row = df_train.iloc[0]
    ride = {
        "PULocationID": int(row["PULocationID"]),
        "DOLocationID": int(row["DOLocationID"]),
        "trip_distance": row["trip_distance"],
    }
    assert predict(pipeline, [ride])[0] == pytest.approx(predict(pipeline, df_train.iloc[:1])[0])


def test_loading_a_missing_model_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="02_training"):
        load_model(tmp_path / "nope.bin")


def test_the_pipeline_predicts_from_a_frame_of_raw_rides(months):
    df_train, _, _ = months
    pipeline = train_pipeline(LinearRegression(), df_train)
    raw = pd.DataFrame({"PULocationID": [3], "DOLocationID": [2], "trip_distance": [4.0]})
    assert predict(pipeline, raw)[0] == pytest.approx(predict(pipeline, raw.to_dict("records"))[0])
