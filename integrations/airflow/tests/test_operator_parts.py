"""The operator's pure parts: steps, durations, keys, names, summaries."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG, task

from berth_airflow.operators import (
    MAX_HINT_JOBS,
    MAX_HINTS,
    BerthJobOperator,
    base_key,
    go_duration,
    merge_hints,
    normalize_steps,
    normalize_then,
    summary,
)
from berth_airflow.sensors import BerthJobSensor


def ctx(dag_id="d", task_id="t", run_id="r", map_index=-1, try_number=1, params=None, xcom=None):
    """A task's context: its task instance, whose xcom_pull answers from
    xcom (task id to value), and params."""

    def xcom_pull(task_ids=None, **_):
        return (xcom or {}).get(task_ids)

    ti = SimpleNamespace(
        dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index, try_number=try_number, xcom_pull=xcom_pull
    )
    return {"ti": ti, "params": params or {}}


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
    assert "idempotency_key" not in spec and "priority" not in spec and "then" not in spec


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


def test_hints_merge_by_pool_in_pool_order_within_berths_limits():
    assert merge_hints([("b", 1), ("a", 2), ("b", 3)]) == [{"pool": "a", "jobs": 2}, {"pool": "b", "jobs": 4}]
    assert merge_hints([]) == []
    assert merge_hints([("a", MAX_HINT_JOBS), ("a", 1)]) == [{"pool": "a", "jobs": MAX_HINT_JOBS}]
    many = merge_hints((f"p{i:02}", 1) for i in range(MAX_HINTS + 3))
    assert [h["pool"] for h in many] == [f"p{i:02}" for i in range(MAX_HINTS)]


def test_explicit_then_as_given():
    assert normalize_then([{"pool": "b", "jobs": 2}, {"pool": "c"}, "d"]) == [
        {"pool": "b", "jobs": 2},
        {"pool": "c", "jobs": 1},
        {"pool": "d", "jobs": 1},
    ]
    assert normalize_then([]) == []
    for bad in ("b", {"pool": "b"}, [3]):
        with pytest.raises(ValueError, match="then must be|a hint is"):
            normalize_then(bad)


def test_then_from_the_downstream_tasks():
    with DAG("hints", schedule=None, params={"next": "b"}):

        @task
        def plan():
            return [["x"], ["y"]]

        @task
        def other():
            return [["x"]]

        planned, unknown = plan(), other()
        up = BerthJobOperator(task_id="up", berth_pool="a", steps=["x"])
        planned >> up
        downstream = [
            BerthJobOperator(task_id="plain", berth_pool="b", steps=["x"]),
            BerthJobOperator(task_id="templated", berth_pool="{{ params.next }}", steps=["x"]),
            BerthJobOperator(task_id="unrenderable", berth_pool="{{ ti.xcom_pull('later').pool }}", steps=["x"]),
            BerthJobOperator.partial(task_id="literal", berth_pool="bins").expand(steps=[["x"], ["y"], ["z"]]),
            BerthJobOperator.partial(task_id="product", berth_pool="bins").expand(steps=[["x"], ["y"]], name=["n", "m", "o"]),
            BerthJobOperator.partial(task_id="planned", berth_pool="c").expand(steps=planned),
            # What it maps over is not known before up runs: one job.
            BerthJobOperator.partial(task_id="on_up", berth_pool="d").expand(steps=up.output),
            BerthJobOperator.partial(task_id="on_other", berth_pool="d").expand(steps=unknown),
            BerthJobOperator.partial(task_id="empty", berth_pool="e").expand(steps=[]),
            BerthJobOperator.partial(task_id="over_pools", steps=["x"]).expand(berth_pool=["f", "g"]),
            BerthJobSensor(task_id="sensor", job_id="j"),
            other.override(task_id="python")(),
        ]
        up >> downstream

    # XComs of other and up are there too, as if they had run: still only
    # plan's counts, which is there on every try of up.
    xcom = {"plan": [["x"], ["y"]], "other": [["x"]] * 4, "up": [["x"]] * 5}
    then = up.then_hints(ctx(params={"next": "b"}, xcom=xcom))
    assert then == [
        {"pool": "b", "jobs": 2},  # plain and templated
        {"pool": "bins", "jobs": 9},  # literal 3, product 2 × 3
        {"pool": "c", "jobs": 2},  # planned: plan ran before up
        {"pool": "d", "jobs": 2},  # on_up and on_other: 1 each
    ]
    # then= overrides what the DAG says; [] says nothing follows.
    up.then = [{"pool": "z", "jobs": 3}]
    assert up.job_spec(ctx())["then"] == [{"pool": "z", "jobs": 3}]
    up.then = []
    assert "then" not in up.job_spec(ctx())
