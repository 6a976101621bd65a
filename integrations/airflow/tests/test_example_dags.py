"""The package's example DAGs, end to end with dag.test() against a real
`berth serve`."""

from __future__ import annotations

import json

from conftest import task_instances


def test_bins_follow_the_data(dagbag, berth):
    # The number of bins is the run's, not the DAG's: 5 here, 6 by default.
    dr = dagbag.get_dag("berth_bins").test(run_conf={"bins": 5})
    assert dr.state == "success", task_instances(dr)
    bins = sorted(t for t in task_instances(dr) if t[0] == "bin")
    assert [t[1] for t in bins] == [0, 1, 2, 3, 4]
    assert all(state == "success" and tries == 1 for _, _, state, tries in bins), bins
    jobs = berth.jobs(dag_id="berth_bins", run_id=dr.run_id, task_id="bin")
    assert sorted(j["labels"]["map_index"] for j in jobs) == ["0", "1", "2", "3", "4"]
    assert all(j["state"] == "succeeded" and j["pool"] == "bins" for j in jobs)
    # The CLI finds a DAG run's work by its labels: five bins and the merge.
    listed = json.loads(berth.cli("jobs", "ls", "--label", "dag_id=berth_bins", "--label", f"run_id={dr.run_id}", "-o", "json"))["jobs"]
    assert sorted(j["labels"]["task_id"] for j in listed) == ["bin"] * 5 + ["merge"]
    (merge,) = berth.jobs(dag_id="berth_bins", run_id=dr.run_id, task_id="merge")
    assert "merging 5 bins" in berth.get(f"/v1/jobs/{merge['id']}/logs")["stdout"]
    # Each bin says the merge follows it; the merge, that nothing does.
    assert all(berth.get(f"/v1/jobs/{j['id']}")["then"] == [{"pool": "bins", "jobs": 1}] for j in jobs)
    assert "then" not in berth.get(f"/v1/jobs/{merge['id']}")


def test_phases_survive_a_lost_cluster(dagbag, berth):
    """The phases example end to end, with the shape-A cluster killed while
    phase 3 runs: Berth replaces it and runs phase 3 again, and every
    Airflow task succeeds on its first try."""
    import threading

    killed: dict = {}
    stop = threading.Event()

    def killer():
        while not stop.is_set():
            for j in berth.jobs(task_id="phase_3", dag_id="berth_phases"):
                a = (j.get("attempts") or [None])[-1]
                if j["state"] == "running" and a and a["state"] == "running" and a["steps"] and a["steps"][0]["state"] == "running":
                    berth.post(f"/v1/clusters/{a['cluster_id']}/kill")
                    killed.update(job=j["id"], cluster=a["cluster_id"])
                    return
            stop.wait(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        dr = dagbag.get_dag("berth_phases").test(run_conf={"seconds": 3})
    finally:
        stop.set()
        t.join(10)
    assert killed, "phase 3 was never seen running, so no cluster was killed"
    assert dr.state == "success", task_instances(dr)
    tis = task_instances(dr)
    assert sorted(t[0] for t in tis) == [f"phase_{n}" for n in range(1, 9)]
    assert all(state == "success" and tries == 1 for _, _, state, tries in tis), tis
    jobs = berth.jobs(dag_id="berth_phases", run_id=dr.run_id)
    assert {j["labels"]["task_id"]: j["pool"] for j in jobs} == {f"phase_{n}": p for n, p in zip(range(1, 9), "aaaabbcc")}
    assert all(j["state"] == "succeeded" and j["affinity"] == dr.run_id for j in jobs)
    # Each phase tells Berth the next one's pool, so that its cluster can be
    # ready when the phase ends.
    then = {j["labels"]["task_id"]: j.get("then") for j in jobs}
    assert then == {f"phase_{n}": [{"pool": p, "jobs": 1}] for n, p in zip(range(1, 8), "aaabbcc")} | {"phase_8": None}
    job = berth.get(f"/v1/jobs/{killed['job']}")
    assert job["labels"]["run_id"] == dr.run_id
    assert [a["reason"] for a in job["attempts"]] == ["cluster_lost", "succeeded"], job["attempts"]
    assert job["attempts"][0]["cluster_id"] == killed["cluster"] != job["attempts"][1]["cluster_id"]
    assert job["infra_failures"] == 1 and job["user_failures"] == 0
    cluster = berth.get(f"/v1/clusters/{killed['cluster']}")
    assert cluster["state"] == "lost"
