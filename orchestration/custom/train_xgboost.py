"""Search XGBoost hyperparameters with hyperopt (nested MLflow runs), refit the best as the pipeline."""

from helpers.core import config
from helpers.ml import tracking
from helpers.orchestrate.pipelines import RunSettings

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@custom
def train_xgboost(sets, *args, **kwargs):
    months = RunSettings.from_variables(kwargs).fetch()
    df_train, df_val = sets[sets["split"] == "train"], sets[sets["split"] == "validation"]
    # Quick mode (WORKBOOK_QUICK, as in the tests) searches 2 trials of 10 rounds on 5,000 rides, as chapter 03 does.
    quick = config.quick()
    max_evals = int(kwargs.get("max_evals") or (2 if quick else 5))
    df_search = df_train.sample(min(5_000, len(df_train)), random_state=1) if quick else df_train

    tracking.use_experiment()
    # Chapter 03's search: a parent run, one nested run per trial, its loss the validation RMSE.
    search = tracking.search_xgboost(
        df_search,
        df_val,
        max_evals=max_evals,
        num_boost_round=10 if quick else 1000,
        data_source=months["train"].source,
    )
    best = tracking.train_best_xgboost(
        search,
        df_train,
        df_val,
        train_source=months["train"].path,
        val_source=months["validation"].path,
        data_source=months["train"].source,
    )
    print(f"XGBoost validation RMSE {best.rmse:.3f}")
    return {
        "run_id": best.run_id,
        "rmse": best.rmse,
        "model_uri": best.model_uri,
        "model": "XGBRegressor",
        "candidates": {"XGBRegressor": round(best.rmse, 4)},
    }


@test
def test_rmse_is_plausible(trained, *args) -> None:
    assert 1 < trained["rmse"] < 20, f"validation RMSE {trained['rmse']} is not plausible for durations of 1-60 min"
