"""The operator's pure parts: steps, durations, keys, names, summaries."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from berth_airflow.operators import BerthJobOperator, base_key, go_duration, normalize_steps, summary


def ctx(dag_id="d", task_id="t", run_id="r", map_index=-1, try_number=1):
    ti = SimpleNamespace(dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index, try_number=try_number)
    return {"ti": ti}


def test_steps_from_args_or_dicts():
    assert normalize_steps(["spark-submit", "x.py", 7]) == [{"args": ["spark-submit", "x.py", "7"]}]
    assert normalize_steps([{"name": "a", "args": ["x"]}, {"args": ["y"]}]) == [{"name": "a", "args": ["x"]}, {"args": ["y"]}]
    assert normalize_steps({"args": ["x"]}) == [{"args": ["x"]}]
    for bad in ([], "spark-submit x.py", [["x"], "y"], None):
        with pytest.raises(ValueError, match="steps must be"):
            normalize_steps(bad)


def test_timeouts_as_go_durations():
    assert go_duration(timedelta(hours=2)) == "7200s"
    assert go_duration(90) == "90s"
    assert go_duration(1.5) == "1.5s"
    assert go_duration("2h") == "2h"
    assert go_duration(None) is None
    with pytest.raises(ValueError):
        go_duration(0)


def test_keys_fit_berths_limit():
    assert base_key(ctx(map_index=3)) == "airflow/d/t/r/3"
    long = base_key(ctx(dag_id="d" * 250, task_id="t" * 250, run_id="r" * 250))
    assert long.startswith("airflow/sha256:") and len(long) < 512 - 16
    assert long == base_key(ctx(dag_id="d" * 250, task_id="t" * 250, run_id="r" * 250)), "the same on every try"


def test_spec_carries_labels_and_fits_names():
    op = BerthJobOperator(task_id="t", berth_pool="a", steps=["x"], labels={"team": "data", "run_id": "mine"}, job_retries=2, timeout=60)
    spec = op.job_spec(ctx(dag_id="é" * 200, map_index=0))
    assert spec["labels"] == {"dag_id": "é" * 200, "task_id": "t", "run_id": "mine", "map_index": "0", "team": "data"}
    assert len(spec["name"].encode()) <= 256
    assert spec["retries"] == 2 and spec["timeout"] == "60s" and spec["pool"] == "a"
    assert "idempotency_key" not in spec and "priority" not in spec


def test_summary_lists_clusters_once_in_order():
    job = {
        "id": "j",
        "state": "succeeded",
        "pool": "a",
        "cost": 0.25,
        "attempts": [
            {"cluster_id": "cl-1", "reason": "cluster_lost"},
            {"cluster_id": "cl-2", "reason": "succeeded"},
        ],
    }
    assert summary(job) == {
        "job_id": "j",
        "state": "succeeded",
        "pool": "a",
        "clusters": ["cl-1", "cl-2"],
        "attempts": 2,
        "attempt_reasons": ["cluster_lost", "succeeded"],
        "cost": 0.25,
    }
