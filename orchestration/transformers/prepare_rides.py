"""Prepare: duration in minutes, rides of 1-60 minutes, zones as categories (chapter 02)."""

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@transformer
def prepare_rides(raw, *args, **kwargs):
    # Green files name their timestamps lpep_*, yellow ones tpep_*.
    prefix = "lpep" if "lpep_pickup_datetime" in raw.columns else "tpep"
    df = raw.copy()
    df["duration"] = (df[f"{prefix}_dropoff_datetime"] - df[f"{prefix}_pickup_datetime"]).dt.total_seconds() / 60
    df = df[(df["duration"] >= 1) & (df["duration"] <= 60)].copy()

    # Zone IDs are categories, not quantities: as strings the DictVectorizer one-hot encodes them.
    categorical = ["PULocationID", "DOLocationID"]
    df[categorical] = df[categorical].astype(str)
    df["PU_DO"] = df["PULocationID"] + "_" + df["DOLocationID"]
    print(f"kept {len(df):,} of {len(raw):,} rides ({len(df) / len(raw):.1%})")
    return df


@test
def test_durations_in_range(prepared, *args) -> None:
    assert prepared["duration"].between(1, 60).all(), "a duration is outside 1-60 minutes"
