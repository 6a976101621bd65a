"""BerthJobSensor on jobs that succeed and fail."""

from __future__ import annotations

from berth_airflow.hooks import BerthHook
from conftest import task_instances


def submit(key: str, script: str) -> str:
    job, created = BerthHook().submit({"pool": "bins", "steps": [{"args": ["sh", "-c", script]}], "idempotency_key": key})
    assert created
    return job["id"]


def test_sensor_follows_the_job(dagbag, berth):
    dag = dagbag.get_dag("berth_sensor")
    ok = submit("sensor-test/ok", "sleep 2")
    dr = dag.test(run_conf={"job_id": ok})
    states = {t[0]: t[2] for t in task_instances(dr)}
    assert dr.state == "success" and states == {"deferred": "success", "in_worker": "success"}, states
    assert berth.get(f"/v1/jobs/{ok}")["state"] == "succeeded"

    bad = submit("sensor-test/bad", "sleep 1; exit 4")
    dr = dag.test(run_conf={"job_id": bad})
    states = {t[0]: t[2] for t in task_instances(dr)}
    assert dr.state == "failed" and states == {"deferred": "failed", "in_worker": "failed"}, states
