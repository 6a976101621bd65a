"""Then hints: what a Berth task's job says follows it, as Berth shows it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk import DAG

from berth_airflow.hooks import BerthError
from berth_airflow.operators import BerthJobOperator
from conftest import task_instances


def test_then_follows_the_dag(dagbag, berth):
    dr = dagbag.get_dag("berth_then").test()
    assert dr.state == "success", task_instances(dr)

    def then(task_id):
        jobs = berth.jobs(dag_id="berth_then", run_id=dr.run_id, task_id=task_id)
        assert jobs, f"no job of {task_id}"
        return [berth.get(f"/v1/jobs/{j['id']}").get("then") for j in jobs]

    # a → b: the templated pool of the downstream task, rendered.
    assert then("first") == [[{"pool": "b", "jobs": 1}]]
    # An explicit then= over the DAG's; then=[] says nothing follows.
    assert then("explicit") == [[{"pool": "c", "jobs": 2}]]
    assert then("off") == [None]
    # Two mapped downstream tasks on one pool: 3 bins (plan's result, known
    # since plan ran before fan) and 2 fixed, summed into one hint.
    assert then("fan") == [[{"pool": "bins", "jobs": 5}]]
    # Nothing Berth runs follows the last ones.
    assert then("second") == [None]
    assert then("bin") == [None] * 3


def test_hints_berth_refuses(berth):
    """A hint the DAG gave on a pool Berth does not have is dropped, and
    the job goes without it; one given with then= fails the task."""
    with DAG("berth_then_refused", schedule=None):
        up = BerthJobOperator(task_id="up", berth_pool="a", steps=["true"])
        up >> BerthJobOperator(task_id="down", berth_pool="nowhere", steps=["true"])

    def context(run_id):
        ti = SimpleNamespace(
            dag_id="berth_then_refused", task_id="up", run_id=run_id, map_index=-1, try_number=1, xcom_push=lambda **_: None
        )
        return {"ti": ti, "params": {}}

    assert up.then_hints(context("r1")) == [{"pool": "nowhere", "jobs": 1}]
    job = up.find_or_submit(context("r1"))
    assert job["pool"] == "a" and "then" not in berth.get(f"/v1/jobs/{job['id']}")

    up.then = [{"pool": "nowhere", "jobs": 1}]
    with pytest.raises(BerthError, match=r'then\[0\]\.pool: unknown pool "nowhere"'):
        up.find_or_submit(context("r2"))
    assert berth.jobs(dag_id="berth_then_refused", run_id="r2") == []
