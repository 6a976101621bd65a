"""The package's example DAGs, end to end with dag.test() against a real
`berth serve`."""

from __future__ import annotations


def task_instances(dr):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as s:
        tis = s.query(TaskInstance).filter(TaskInstance.dag_id == dr.dag_id, TaskInstance.run_id == dr.run_id).all()
        return [(ti.task_id, ti.map_index, ti.state, ti.try_number) for ti in tis]


def test_phases(dagbag, berth):
    dr = dagbag.get_dag("berth_phases").test()
    assert dr.state == "success", task_instances(dr)
    tis = task_instances(dr)
    assert sorted(t[0] for t in tis) == [f"phase_{n}" for n in range(1, 9)]
    assert all(state == "success" and tries == 1 for _, _, state, tries in tis), tis
    jobs = berth.jobs(dag_id="berth_phases", run_id=dr.run_id)
    assert len(jobs) == 8
    pools = {j["labels"]["task_id"]: j["pool"] for j in jobs}
    assert pools == {f"phase_{n}": p for n, p in zip(range(1, 9), "aaaabbcc")}
    assert all(j["state"] == "succeeded" and j["affinity"] == dr.run_id for j in jobs)
