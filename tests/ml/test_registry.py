import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import Lasso, LinearRegression

from helpers.ml import registry, tracking


@pytest.fixture(scope="module")
def runs(store, months):
    """A good run (LinearRegression) and a clearly worse one (a heavily penalised Lasso)."""
    df_train, df_val, _ = months
    tracking.use_experiment("registry-tests")
    kwargs = dict(train_source="jan.parquet", val_source="feb.parquet", data_source="twin")
    good = tracking.train_and_log(LinearRegression(), df_train, df_val, **kwargs)
    bad = tracking.train_and_log(Lasso(alpha=5.0), df_train, df_val, **kwargs)
    client = MlflowClient()
    return client.get_run(good.run_id), client.get_run(bad.run_id)


def _register(name, *runs_):
    return [str(registry.register_run(run, name).version) for run in runs_]


def _alias(name, alias, version):
    MlflowClient().set_registered_model_alias(name, alias, version)


def test_candidates_come_best_first_and_only_with_a_model(runs):
    good, bad = runs
    ids = [run.info.run_id for run in registry.candidate_runs("registry-tests", validated_on="feb.parquet")]
    assert ids == [good.info.run_id, bad.info.run_id]


def test_runs_validated_on_another_month_are_no_candidates(runs, months):
    df_train, df_val, _ = months
    tracking.use_experiment("registry-tests")
    later = tracking.train_and_log(
        LinearRegression(),
        df_train,
        df_val.head(50),
        train_source="dec.parquet",
        val_source="jan-next-year.parquet",
        data_source="twin",
    )
    assert later.run_id not in {
        run.info.run_id for run in registry.candidate_runs("registry-tests", validated_on="feb.parquet")
    }
    assert [
        run.info.run_id for run in registry.candidate_runs("registry-tests", validated_on="jan-next-year.parquet")
    ] == [later.run_id]


def test_registering_the_same_run_twice_adds_no_version(runs):
    good, _ = runs
    assert _register("twice", good) == _register("twice", good) == ["1"]


def test_a_version_is_described_and_tagged(runs):
    good, _ = runs
    (version,) = _register("described", good)
    details = MlflowClient().get_model_version("described", version)
    assert "LinearRegression" in details.description
    assert details.tags["estimator"] == "LinearRegression"


def test_first_challenger_becomes_champion(runs, months):
    good, _ = runs
    (version,) = _register("first", good)
    _alias("first", registry.CHALLENGER, version)
    decision = registry.promote_if_better(months[2], "first")
    assert decision.promoted
    assert str(registry.version_by_alias(registry.CHAMPION, "first").version) == version
    assert registry.version_by_alias(registry.CHALLENGER, "first") is None


def test_a_better_challenger_is_promoted_and_the_old_champion_archived(runs, months):
    good, bad = runs
    good_v, bad_v = _register("better", good, bad)
    _alias("better", registry.CHAMPION, bad_v)
    _alias("better", registry.CHALLENGER, good_v)
    decision = registry.promote_if_better(months[2], "better")
    assert decision.promoted
    assert decision.challenger_rmse < decision.champion_rmse
    assert str(registry.version_by_alias(registry.CHAMPION, "better").version) == good_v
    assert MlflowClient().get_model_version("better", bad_v).tags["status"] == "archived"
    assert str(registry.version_by_alias(registry.PREVIOUS_CHAMPION, "better").version) == bad_v


def test_a_worse_challenger_is_never_promoted(runs, months):
    good, bad = runs
    good_v, bad_v = _register("worse", good, bad)
    _alias("worse", registry.CHAMPION, good_v)
    _alias("worse", registry.CHALLENGER, bad_v)
    decision = registry.promote_if_better(months[2], "worse")
    assert not decision.promoted
    assert str(registry.version_by_alias(registry.CHAMPION, "worse").version) == good_v
    assert MlflowClient().get_model_version("worse", bad_v).tags["status"] == "rejected"


def test_promoting_without_a_challenger_says_what_is_missing(runs, months):
    _register("no-challenger", runs[0])
    with pytest.raises(LookupError, match="challenger"):
        registry.promote_if_better(months[2], "no-challenger")


def test_rollback_restores_the_previous_champion(runs, months):
    good, bad = runs
    good_v, bad_v = _register("rollback", good, bad)
    _alias("rollback", registry.CHAMPION, bad_v)
    _alias("rollback", registry.CHALLENGER, good_v)
    registry.promote_if_better(months[2], "rollback")
    assert str(registry.rollback("rollback").version) == bad_v
    assert str(registry.version_by_alias(registry.CHAMPION, "rollback").version) == bad_v
    assert MlflowClient().get_model_version("rollback", good_v).tags["status"] == "rolled_back"
    with pytest.raises(LookupError, match="nothing to roll back"):
        registry.rollback("rollback")


def test_lineage_leads_back_to_run_model_data_and_code(runs):
    good, _ = runs
    (version,) = _register("lineage", good)
    trace = registry.lineage(MlflowClient().get_model_version("lineage", version))
    assert trace["version"] == f"lineage v{version}"
    assert good.info.run_id in trace["run"]
    assert trace["model"] == good.data.tags[tracking.MODEL_URI_TAG]
    assert trace["data"] == {"training": "jan", "validation": "feb"}
    assert trace["git_commit"] and trace["data_source"] == "twin"


def test_lineage_shows_only_the_parameters_that_tell_models_apart(runs):
    good, _ = runs
    (version,) = _register("lineage-params", good)
    trace = registry.lineage(MlflowClient().get_model_version("lineage-params", version))
    assert trace["params"] == {"estimator": "LinearRegression", "fit_intercept": "True"}
    assert len(good.data.params) > len(trace["params"])


def test_a_champion_loads_by_alias_uri(runs, months):
    import mlflow

    (version,) = _register("by-alias", runs[0])
    _alias("by-alias", registry.CHAMPION, version)
    model = mlflow.pyfunc.load_model(registry.champion_uri("by-alias"))
    assert len(model.predict(tracking.model_input(months[2]))) == len(months[2])


# --- Recipes: what retraining copies -------------------------------------------------------------


def _champion_of(name, model, months):
    df_train, df_val, _ = months
    tracking.use_experiment("registry-tests")
    result = tracking.train_and_log(model, df_train, df_val, train_source="a", val_source="b", data_source="twin")
    (version,) = _register(name, MlflowClient().get_run(result.run_id))
    _alias(name, registry.CHAMPION, version)
    return version, result.run_id


def test_a_linear_champions_recipe_rebuilds_its_family_with_its_parameters(store, months):
    version, run_id = _champion_of("recipe-lasso", Lasso(alpha=0.05, max_iter=500), months)
    recipe = registry.champion_recipe("recipe-lasso")
    assert (recipe.version, recipe.run_id, recipe.estimator) == (version, run_id, "Lasso")
    model = recipe.model()
    assert type(model) is Lasso and model.get_params() == Lasso(alpha=0.05, max_iter=500).get_params()
    assert recipe.tags() == {registry.RECIPE_VERSION_TAG: version, registry.RECIPE_RUN_TAG: run_id}


def test_an_xgboost_champions_recipe_is_the_categorical_pipeline_with_its_search_and_rounds(store, months):
    from helpers.ml import boosting

    searched = {"max_depth": 3, "learning_rate": 0.2, "min_child_weight": 4.5, "reg_alpha": 0.01, "reg_lambda": 2.0}
    _champion_of("recipe-xgb", boosting.make_pipeline(searched, 7), months)
    recipe = registry.champion_recipe("recipe-xgb")
    assert recipe.estimator == "XGBRegressor" and recipe.params == {"n_estimators": 7, **searched}
    rebuilt, original = recipe.model()["model"].get_params(), boosting.make_pipeline(searched, 7)["model"].get_params()
    assert rebuilt == original


def test_a_recipe_needs_a_champion_of_a_family_retraining_knows(store, months):
    from sklearn.dummy import DummyRegressor

    with pytest.raises(LookupError, match="no recipe to retrain"):
        registry.champion_recipe("recipe-none")
    _champion_of("recipe-dummy", DummyRegressor(), months)
    with pytest.raises(ValueError, match="'DummyRegressor'; retraining can rebuild only XGBRegressor"):
        registry.champion_recipe("recipe-dummy")
