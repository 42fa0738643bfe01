"""Train chapter 03's linear models, each a tracked MLflow run; pass on the best."""

import mlflow
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import root_mean_squared_error

from helpers.ml import tracking, training
from helpers.orchestrate.pipelines import RunSettings

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@custom
def train_sklearn(sets, *args, **kwargs):
    months = RunSettings.from_variables(kwargs).fetch()
    df_train, df_val = sets[sets["split"] == "train"], sets[sets["split"] == "validation"]
    # set_tracking_uri and set_experiment, the experiment made with its artifacts beside the store (chapter 03).
    tracking.use_experiment()
    results = {}
    for estimator in (LinearRegression(), Ridge(alpha=1.0)):
        name = type(estimator).__name__
        with mlflow.start_run(run_name=f"mage-{name}") as run:
            # The tags the registry looks runs up by: the data they saw and the month they were validated on.
            mlflow.set_tags(
                {**tracking.run_tags(months["train"].source), tracking.VALIDATION_TAG: months["validation"].path.name}
            )
            mlflow.log_params({"estimator": name, **estimator.get_params()})
            tracking.log_dataset(df_train, months["train"].path, "training")
            tracking.log_dataset(df_val, months["validation"].path, "validation")
            pipeline = training.train_pipeline(estimator, df_train)  # rides -> DictVectorizer -> estimator
            rmse = root_mean_squared_error(df_val["duration"], pipeline.predict(df_val))
            mlflow.log_metric("rmse", rmse)
            example = tracking.input_example(df_val)
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=infer_signature(example, pipeline.predict(example)),
                input_example=example,
                pip_requirements=tracking.pip_requirements(),
                skops_trusted_types=tracking.SKOPS_TRUSTED_TYPES,
            )
            mlflow.set_tag(tracking.MODEL_URI_TAG, info.model_uri)
        results[name] = {"run_id": run.info.run_id, "rmse": rmse, "model_uri": info.model_uri}
    best = min(results, key=lambda name: results[name]["rmse"])
    candidates = {name: round(result["rmse"], 4) for name, result in results.items()}
    print(f"best: {best} with validation RMSE {results[best]['rmse']:.3f}; all: {candidates}")
    return {**results[best], "model": best, "candidates": candidates}


@test
def test_rmse_is_plausible(trained, *args) -> None:
    assert 1 < trained["rmse"] < 20, f"validation RMSE {trained['rmse']} is not plausible for durations of 1-60 min"
