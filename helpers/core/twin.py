"""The offline twin of the TLC data: trip months and the zone table, generated deterministically.

``make_twin`` builds one month from (color, year, month) with exactly the real schema and, approximately,
the real data's behaviour; ``make_zones`` builds the 265-row zone lookup. Neither touches the network.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from helpers.core.tlc import (
    COLORS,
    DROPOFF_COLUMN,
    PICKUP_COLUMN,
    SCHEMAS,
    ZONE_COLUMNS,
    trip_filename,
)

# Cached twins live under a folder named after this version: bump it whenever the generator's
# output changes, so a cache made by an older generator is never read as the current twin.
TWIN_VERSION = 3

_F, _I, _TS = pa.float64(), pa.int64(), pa.timestamp("us")

# --- Zones ---------------------------------------------------------------------------------------

# Real rows of the TLC lookup that the course mentions; the offline table fills the other IDs.
_KNOWN_ZONES = {
    1: ("EWR", "Newark Airport", "EWR"),
    7: ("Queens", "Astoria", "Boro Zone"),
    41: ("Manhattan", "Central Harlem", "Boro Zone"),
    42: ("Manhattan", "Central Harlem North", "Boro Zone"),
    43: ("Manhattan", "Central Park", "Yellow Zone"),
    74: ("Manhattan", "East Harlem North", "Boro Zone"),
    75: ("Manhattan", "East Harlem South", "Boro Zone"),
    82: ("Queens", "Elmhurst", "Boro Zone"),
    132: ("Queens", "JFK Airport", "Airports"),
    138: ("Queens", "LaGuardia Airport", "Airports"),
    161: ("Manhattan", "Midtown Center", "Yellow Zone"),
    166: ("Manhattan", "Morningside Heights", "Boro Zone"),
    236: ("Manhattan", "Upper East Side North", "Yellow Zone"),
    237: ("Manhattan", "Upper East Side South", "Yellow Zone"),
    264: ("Unknown", "NV", "N/A"),
    265: ("Unknown", "N/A", "N/A"),
}
# How many of the 265 zones each borough has in the real table.
_BOROUGHS = {"Manhattan": 69, "Queens": 69, "Brooklyn": 61, "Bronx": 43, "Staten Island": 20}


def make_zones() -> pd.DataFrame:
    """The offline zone table: 265 rows with ``ZONE_COLUMNS``.

    Well-known zones (airports, East/Central Harlem, Upper East Side, ...) are the real rows; the
    others get a borough drawn deterministically in the real proportions and the name ``Zone {id}``.
    """
    rng = np.random.default_rng(265)
    weights = np.array(list(_BOROUGHS.values()), dtype=float)
    drawn = rng.choice(list(_BOROUGHS), size=266, p=weights / weights.sum())
    rows = [
        _KNOWN_ZONES.get(i, (drawn[i], f"Zone {i}", "Yellow Zone" if drawn[i] == "Manhattan" else "Boro Zone"))
        for i in range(1, 266)
    ]
    return pd.DataFrame([(i, *row) for i, row in enumerate(rows, start=1)], columns=ZONE_COLUMNS)


# --- Trip months ---------------------------------------------------------------------------------

_REAL_ROWS = {
    ("green", 2021, 1): 76_518,
    ("green", 2021, 2): 64_572,
    ("green", 2021, 3): 83_827,
    ("green", 2022, 1): 62_495,
    ("green", 2023, 1): 68_211,
    ("green", 2023, 2): 64_809,
    ("yellow", 2021, 1): 1_369_765,
    ("yellow", 2022, 1): 2_463_931,
    ("yellow", 2023, 1): 3_066_766,
    ("yellow", 2023, 2): 2_913_955,
}
# Mean duration (min) of the 1-60 minute green trips in real months; others are interpolated.
_MEAN_DURATION = {(2021, 1): 16.85, (2021, 2): 17.85, (2022, 1): 14.09, (2023, 1): 13.75}
_TOP_PICKUPS = {
    "green": {74: 0.09, 75: 0.08, 41: 0.055, 42: 0.037},
    "yellow": {237: 0.05, 236: 0.048, 161: 0.046, 132: 0.04, 162: 0.038, 186: 0.035},
}


def _interpolate(anchors: dict[tuple[int, int], float], year: int, month: int) -> float:
    keys = sorted(anchors)
    return float(np.interp(year * 12 + month, [y * 12 + m for y, m in keys], [anchors[k] for k in keys]))


def _zone_structure(color: str) -> dict[str, np.ndarray]:
    """What stays fixed across months for a color: zone popularity, map, and per-pair speeds."""
    rng = np.random.default_rng([COLORS.index(color), 7])
    top = _TOP_PICKUPS[color]
    rest = np.array([z for z in rng.permutation(np.arange(1, 266)) if z not in top])[: 250 - len(top)]
    pickup = np.zeros(266)
    decay = np.exp(-np.arange(len(rest)) / 45)
    pickup[rest] = decay / decay.sum() * (1 - sum(top.values()))
    pickup[list(top)] = list(top.values())
    dropoff = np.zeros(266)
    dropoff[1:] = rng.pareto(1.2, 265) + 0.05
    position = rng.random((266, 2)) * 20  # miles on a square map
    geo = np.linalg.norm(position[:, None] - position[None], axis=-1)
    return {
        "pickup": pickup / pickup.sum(),
        "dropoff": dropoff / dropoff.sum(),
        "geo": geo,
        "nearest": np.argsort(geo, axis=1)[:, :6],
        "speed": rng.lognormal(0, 0.25, (266, 266)),
    }


def _trip_length(year: int, month: int) -> float:
    # From 2022 trips are shorter in step with the shorter real mean durations, so a model trained
    # on 2021 sees its inputs and predictions drift; 2021 keeps its distances (factor exactly 1),
    # which keeps the months chapters 01-07 use as they were.
    if year < 2022:
        return 1.0
    return _interpolate(_MEAN_DURATION, year, month) / _MEAN_DURATION[2021, 1]


def _distances(rng: np.random.Generator, geo: np.ndarray, length: float = 1.0) -> np.ndarray:
    # The real quantiles (10/50/90/99% = 0.7/2.6/11.6/24.3 mi), given to trips by rank of their
    # zones' map distance plus noise, so far-apart zones get long trips; ``length`` scales them.
    score = (geo - geo.mean()) / geo.std() + rng.normal(0, 0.6, geo.size)
    u = np.empty(geo.size)
    u[np.argsort(score)] = (np.arange(geo.size) + 0.5) / geo.size
    knots_q = [0, 0.03, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1]
    knots_d = [0.01, 0.15, 0.7, 1.3, 2.6, 5.4, 11.6, 24.3, 60]
    return np.round(np.exp(np.interp(u, knots_q, np.log(knots_d))) * length, 2)


def _durations(
    rng: np.random.Generator, distance: np.ndarray, pair_speed: np.ndarray, target_mean: float
) -> np.ndarray:
    # Speed rises with distance (highways) and depends on the zone pair; noise is heavy-tailed.
    # This makes duration nonlinear in distance, so trees beat a linear model, and never exact.
    speed = (6 + 30 * (1 - np.exp(-distance / 6))) * pair_speed
    base = (1 + 60 * distance / speed) * np.exp(0.3 * rng.standard_t(10, distance.size)) + rng.exponential(
        1.5, distance.size
    )
    # Scale so the mean over 1-60 minutes hits the month's target (bisection on sorted values).
    ordered = np.sort(base)
    cumulative = np.concatenate([[0], np.cumsum(ordered)])
    low, high = 0.05, 20.0
    for _ in range(60):
        scale = (low + high) / 2
        lo, hi = np.searchsorted(ordered, 1 / scale), np.searchsorted(ordered, 60 / scale, side="right")
        mean = scale * (cumulative[hi] - cumulative[lo]) / max(hi - lo, 1)
        low, high = (scale, high) if mean < target_mean else (low, scale)
    return base * scale


def _row_count(rng: np.random.Generator, color: str, year: int, month: int) -> int:
    low, high = (65_000, 90_000) if color == "green" else (1_300_000, 3_300_000)
    return _REAL_ROWS.get((color, year, month), int(rng.integers(low, high)))


def make_twin(color: str, year: int, month: int, n_rows: int | None = None) -> pa.Table:
    """Generate the offline twin of one TLC month: same schema, similar behaviour, deterministic.

    Reproduces the real green files approximately: row counts, ~3.4% of trips outside 1-60 minutes,
    the month's mean duration (shorter in later years), distance quantiles with absurd outliers,
    popular zones (74, 75, 41, 42 for green), shorter and more local trips from 2022 (so a model
    trained on 2021 sees its inputs and predictions drift, while 2021 months stay close), quicker
    miles from 2022 (so a model retrained on a recent month beats a 2021 one there), ~47% rows
    with the fare fields null in 2021 (6% in 2023), a few pickups outside the month, and durations
    learnable from zones and distance.

    Args:
        color: ``"green"`` or ``"yellow"``.
        year: e.g. 2021.
        month: 1-12.
        n_rows: row count instead of the real one (for tests and benchmarks).

    Returns:
        A table with exactly ``SCHEMAS[color]``.
    """
    trip_filename(color, year, month)  # validates the arguments
    rng = np.random.default_rng([year, month, COLORS.index(color)])
    n = _row_count(rng, color, year, month) if n_rows is None else n_rows
    zones = _zone_structure(color)

    pu = rng.choice(266, size=n, p=zones["pickup"])
    do = rng.choice(266, size=n, p=zones["dropoff"])
    length = _trip_length(year, month)
    # Many trips stay in the neighbourhood; more of them from 2022 (53% in 2023, 35% before), which
    # changes the zone pairs, and so a 2021 model's predictions, as well as the distances.
    local = rng.random(n) < 0.35 + (1 - length)
    do[local] = zones["nearest"][pu[local], rng.integers(0, 6, local.sum())]
    distance = _distances(rng, zones["geo"][pu, do], length)
    # Scaling to the month's real mean also changes how long a mile takes. From 2022 distances shrink
    # with the means, but each trip's fixed minutes and the slower short trips shrink durations less,
    # so the scale falls: 1-3 mile trips take 6.1 min a mile in 2023, 6.9-7.4 early in 2021. A 2021
    # model then overestimates 2023 trips by ~2 min and one retrained on a recent month does not: 7%
    # lower RMSE on 2023-02, as on the real files (5.21 against 5.59; benchmarks/retrain_benchmark.py).
    target = _interpolate(_MEAN_DURATION, year, month) * (0.9 if color == "yellow" else 1.0)
    minutes = _durations(rng, distance, zones["speed"][pu, do], target)

    # Broken meters: very short trips (often 0 miles) and trips left running for hours.
    kind = rng.choice(3, size=n, p=[0.986, 0.012, 0.002])
    short, long_ = kind == 1, kind == 2
    minutes[short] = rng.uniform(0, 0.98, short.sum())
    distance[short & (rng.random(n) < 0.6)] = 0.0
    minutes[long_] = np.minimum(60 + rng.lognormal(3.5, 1.5, long_.sum()), 1439)
    absurd = rng.choice(
        np.flatnonzero(short | long_), size=min(rng.poisson(4) + 1, int((short | long_).sum())), replace=False
    )
    distance[absurd] = np.round(rng.uniform(1_000, 245_000, absurd.size), 2)
    # Faulty records inside normal trips, as in the real files: no distance recorded, or a GPS
    # glitch that multiplies it. They bend a linear model's distance slope; trees route around them,
    # which is much of why XGBoost beats linear regression on the real data.
    normal = ~(short | long_)
    fault = rng.random(n)
    distance[normal & (fault < 0.03)] = 0.0
    glitch = normal & (fault >= 0.03) & (fault < 0.035)
    distance[glitch] = np.round(distance[glitch] * rng.uniform(5, 40, glitch.sum()), 2)

    start = np.datetime64(f"{year:04d}-{month:02d}-01", "us").astype(np.int64)
    end = (np.datetime64(f"{year:04d}-{month:02d}", "M") + 1).astype("datetime64[us]").astype(np.int64)
    pickup = rng.integers(start, end, n) // 1_000_000 * 1_000_000  # whole seconds, like the real files
    stray = rng.choice(n, size=min(n, 8), replace=False)  # real files hold a few pickups of other months
    pickup[stray[:5]] = start - rng.integers(1, 86_400, 5) * 1_000_000
    pickup[stray[5:]] = (
        np.datetime64("2009-01-01", "us").astype(np.int64) + rng.integers(0, 86_400, stray[5:].size) * 1_000_000
    )
    dropoff = pickup + np.round(minutes * 60).astype(np.int64) * 1_000_000

    return _assemble(rng, color, year, month, n, pu, do, distance, pickup, dropoff, minutes)


def _assemble(
    rng: np.random.Generator,
    color: str,
    year: int,
    month: int,
    n: int,
    pu: np.ndarray,
    do: np.ndarray,
    distance: np.ndarray,
    pickup: np.ndarray,
    dropoff: np.ndarray,
    minutes: np.ndarray,
) -> pa.Table:
    """Fill the fare and flag columns around the trips and build the Arrow table."""
    # Rows from the street-hail-app vendor have these fields null together (47% in 2021, 6% in 2023).
    null_share = _interpolate({(2021, 12): 0.47, (2023, 1): 0.06}, year, month) if color == "green" else 0.05
    missing = rng.random(n) < null_share
    payment = rng.choice([1, 2, 3, 4], size=n, p=[0.55, 0.43, 0.015, 0.005])
    fare = np.round(
        np.maximum(2.5 + 2.5 * np.minimum(distance, 100) + 0.3 * np.minimum(minutes, 120) + rng.normal(0, 1.5, n), 2.5),
        2,
    )
    extra = rng.choice([0.0, 0.5, 1.0, 2.75], size=n, p=[0.45, 0.3, 0.15, 0.1])
    mta_tax = np.where(missing, 0.0, 0.5)
    tip = np.where(payment == 1, np.round(fare * rng.uniform(0.1, 0.25, n), 2), 0.0)
    tolls = np.where(rng.random(n) < 0.03, 6.12, 0.0)
    improvement = np.full(n, 0.3)
    congestion = np.where(rng.random(n) < (0.1 if color == "green" else 0.9), 2.75 if year >= 2021 else 2.5, 0.0)
    total = np.round(fare + extra + mta_tax + tip + tolls + improvement + np.where(missing, 0, congestion), 2)

    def masked(values: np.ndarray, kind: pa.DataType = _F) -> pa.Array:
        return pa.array(values, type=kind, mask=missing)

    flag = pa.DictionaryArray.from_arrays(
        pa.array(rng.random(n) < 0.005, mask=missing).cast(pa.int8()), pa.array(["N", "Y"])
    ).cast(pa.string())
    common = {
        "VendorID": pa.array(rng.choice([1, 2], size=n, p=[0.15, 0.85]), _I),
        PICKUP_COLUMN[color]: pa.array(pickup.astype("datetime64[us]"), _TS),
        DROPOFF_COLUMN[color]: pa.array(dropoff.astype("datetime64[us]"), _TS),
        "store_and_fwd_flag": flag,
        "RatecodeID": masked(rng.choice([1.0, 2.0, 5.0], size=n, p=[0.97, 0.01, 0.02])),
        "PULocationID": pa.array(pu, _I),
        "DOLocationID": pa.array(do, _I),
        "passenger_count": masked(
            rng.choice([1.0, 2.0, 3.0, 5.0, 6.0, 0.0], size=n, p=[0.84, 0.08, 0.02, 0.03, 0.02, 0.01])
        ),
        "trip_distance": pa.array(distance, _F),
        "fare_amount": pa.array(fare, _F),
        "extra": pa.array(extra, _F),
        "mta_tax": pa.array(mta_tax, _F),
        "tip_amount": pa.array(tip, _F),
        "tolls_amount": pa.array(tolls, _F),
        "ehail_fee": pa.nulls(n),
        "improvement_surcharge": pa.array(improvement, _F),
        "total_amount": pa.array(total, _F),
        "trip_type": masked(np.where(rng.random(n) < 0.97, 1.0, 2.0)),
        "congestion_surcharge": masked(congestion),
        "airport_fee": masked(np.where(np.isin(pu, [132, 138]), 1.25, 0.0)),
        "payment_type": masked(payment.astype(float))
        if color == "green"
        else pa.array(np.where(missing, 0, payment), _I),
    }
    schema = SCHEMAS[color]
    return pa.table([common[name] for name in schema.names], schema=schema)
