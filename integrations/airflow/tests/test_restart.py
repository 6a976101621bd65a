"""Berth restarted while a task waits: the task succeeds, on its first try,
and the job ran once."""

from __future__ import annotations

import threading

from conftest import TOKEN, task_instances, wait_for


def test_a_berth_restart_does_not_fail_a_waiting_task(dagbag, berth, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BERTH_FLAKY", f"berth://:{TOKEN}@127.0.0.1:{berth.port}?retries=0")
    seen: dict = {}
    failed: list[BaseException] = []

    def restart():
        try:
            def running():
                js = berth.jobs(dag_id="berth_restart")
                return js if js and js[0]["state"] == "running" and js[0]["attempts"][0]["steps"][0]["state"] == "running" else None

            (job,) = wait_for("the job to run", running, timeout=60)
            seen["job"] = job["id"]
            berth.stop()
            # Down until the step has ended: its exit status is on disk, for
            # the restarted Berth to find; every poll meanwhile fails.
            exits = lambda: list((berth.dir / "local" / "clusters").glob(f"*/steps/*{job['id']}*/exit"))  # noqa: E731
            wait_for("the step to end while Berth is down", exits, timeout=60)
            berth.start()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            failed.append(e)
            if berth.proc is None:
                berth.start()

    t = threading.Thread(target=restart, daemon=True)
    t.start()
    dr = dagbag.get_dag("berth_restart").test()
    t.join(120)
    assert not failed and "job" in seen, failed
    (ti,) = task_instances(dr)
    assert dr.state == "success" and ti[2:] == ("success", 1), ti
    job = berth.get(f"/v1/jobs/{seen['job']}")
    assert job["state"] == "succeeded" and len(job["attempts"]) == 1
    assert berth.get(f"/v1/jobs/{seen['job']}/logs")["stdout"] == "done\n"
