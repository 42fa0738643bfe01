"""Chapter 05's Mage part, timed: each pipeline with `mage run`, the server's start, a triggered run.

Everything runs offline and quick (as `make test` does) on fresh temporary stores, in pipeline
order, so deploying finds challengers and batch inference a champion. The Mage environment's
install time is measured from the shell: `rm -rf .venv-mage && time make mage-setup`.

Run: .venv/bin/python benchmarks/mage_benchmark.py
"""

from __future__ import annotations

import os
import time

from helpers.core import config, twin
from helpers.core.tlc import trip_filename
from helpers.course.notebook_form import isolated_stores
from helpers.orchestrate import mage

PIPELINES = [
    ("data_preparation", {}),
    ("sklearn_training", {}),
    ("xgboost_training", {}),
    ("deploying", {}),
    ("batch_inference", {}),
    ("retraining", {"train_month": "2021-01"}),
]


def main() -> None:
    with isolated_stores(quick=True):
        os.environ["WORKBOOK_QUICK"] = "1"
        landed = config.data_dir() / trip_filename("green", 2021, 2)
        landed.parent.mkdir(parents=True, exist_ok=True)
        twin.make_twin("green", 2021, 2).to_pandas().to_parquet(landed)  # the month the sensor waits for
        for name, variables in PIPELINES:
            run = mage.run_pipeline(name, variables).raise_for_status()
            print(f"mage run {name:<18} {run.seconds:6.1f} s")
        started = time.perf_counter()
        with mage.start_server(0) as server:
            print(f"mage start (API ready)       {time.perf_counter() - started:6.1f} s")
            started = time.perf_counter()
            run_id = server.trigger("inference_api", {"month": "2021-02"})
            status = server.wait(run_id)["status"]
            print(f"inference_api trigger        {time.perf_counter() - started:6.1f} s ({status})")
            started = time.perf_counter()
        print(f"server stop                  {time.perf_counter() - started:6.1f} s")


if __name__ == "__main__":
    main()
