"""No duplicate work on Airflow retries, and cancellation of killed tasks."""

from __future__ import annotations

from berth_airflow.hooks import BerthHook
from berth_airflow.operators import failure_message
from conftest import task_instances, wait_for


def task_state(dr, task_id) -> str:
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    with create_session() as s:
        (row,) = s.query(TaskStateStoreModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key="berth_job_id")
        return row.value


def by_task(dr):
    return {t[0]: t for t in task_instances(dr)}


def test_retries_reattach_unless_the_job_failed(dagbag, berth):
    dr = dagbag.get_dag("berth_retries").test()
    tis = by_task(dr)
    assert dr.state == "success", tis
    base = f"airflow/berth_retries/{{}}/{dr.run_id}/-1"

    # Worker lost with the job running: the retry waits for that job.
    (job,) = berth.jobs(dag_id="berth_retries", run_id=dr.run_id, task_id="reattach_running")
    assert tis["reattach_running"][2:] == ("success", 2)
    assert job["state"] == "succeeded" and job["idempotency_key"] == base.format("reattach_running")
    assert len(job["attempts"]) == 1
    # Airflow 3.3's task state store holds the job's id for the retry.
    assert job["id"] in task_state(dr, "reattach_running")

    # Worker lost after the job succeeded: the retry takes its result.
    (job,) = berth.jobs(dag_id="berth_retries", run_id=dr.run_id, task_id="reattach_succeeded")
    assert tis["reattach_succeeded"][2:] == ("success", 2)
    assert job["state"] == "succeeded" and len(job["attempts"]) == 1

    # The job failed: the retry submits a new one, its key carrying the try.
    jobs = berth.jobs(dag_id="berth_retries", run_id=dr.run_id, task_id="fail_then_new")
    assert tis["fail_then_new"][2:] == ("success", 2)
    assert [(j["state"], j["idempotency_key"]) for j in jobs] == [
        ("succeeded", base.format("fail_then_new") + "/try-2"),
        ("failed", base.format("fail_then_new")),
    ]
    # What the first try raised: the reason, the step's words, the logs.
    failed = jobs[1]
    logs = BerthHook().logs(failed["id"])
    assert logs["stdout"] == "try 1\n"
    assert failure_message(failed, logs) == (
        f"Berth job {failed['id']} failed after 1 attempt(s), the last step_failed: step 0: exited with code 1. "
        f"Logs: {logs['location']}"
    )


def test_killed_tasks_cancel_their_jobs(dagbag, berth):
    dr = dagbag.get_dag("berth_cancel").test()
    tis = by_task(dr)
    assert dr.state == "failed"
    for task_id in ("killed_in_worker", "killed_deferred"):
        assert tis[task_id][2] == "failed", tis
        (job,) = berth.jobs(dag_id="berth_cancel", run_id=dr.run_id, task_id=task_id)

        def cancelled():
            j = berth.get(f"/v1/jobs/{job['id']}")
            return j if j["state"] == "cancelled" else None

        j = wait_for(f"job {job['id']} of {task_id} to be cancelled", cancelled, timeout=60)
        assert [a["reason"] for a in j["attempts"]] == ["cancelled"], j["attempts"]
        assert j["attempts"][0]["steps"][0]["state"] != "running"
