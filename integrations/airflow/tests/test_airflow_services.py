"""Smoke test of airflow_services: a real Airflow runs deferrable mapped tasks.

No Berth here: a standard deferrable sensor proves that the deployment runs
tasks, that deferred tasks go to the triggerer and free their worker slots,
and that the helpers read it all back.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from airflow_services import AirflowDeployment, airflow_available

pytestmark = pytest.mark.skipif(
    not airflow_available(), reason="Apache Airflow is not importable in this Python"
)

DAG_ID = "smoke_deferred_mapped"
MAPPED = 6
SLOTS = 2

# Six mapped FileSensors, deferrable: each defers to the triggerer until its
# file exists. The test creates the files only once it has seen the tasks
# deferred, so nothing depends on how fast this machine is.
DAG_FILE = '''
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.sensors.filesystem import FileSensor

with DAG(
    dag_id={dag_id!r},
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=16,
):
    FileSensor.partial(
        task_id="wait_for_release",
        deferrable=True,
        poke_interval=0.5,
        timeout=600,
    ).expand(filepath={paths!r})
'''


def test_deferred_mapped_tasks_free_worker_slots(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    release = tmp_path / "release"
    dags.mkdir()
    release.mkdir()
    paths = [str(release / f"go-{i}") for i in range(MAPPED)]
    (dags / "smoke.py").write_text(textwrap.dedent(DAG_FILE.format(dag_id=DAG_ID, paths=paths)))

    extra_env = {
        "AIRFLOW__CORE__PARALLELISM": str(SLOTS),
        # FileSensor's connection: the local filesystem, paths as given.
        "AIRFLOW_CONN_FS_DEFAULT": "fs://",
    }
    with AirflowDeployment(tmp_path / "home", dags, extra_env, dag_ids=[DAG_ID]) as af:
        af.unpause(DAG_ID)
        run_id = af.trigger(DAG_ID, conf={"smoke": True})
        with af.sample_states(DAG_ID, run_id) as sampler:
            # Every mapped task deferred at once, with only SLOTS worker slots.
            af.wait_states(DAG_ID, run_id, "deferred", at_least=MAPPED, timeout=90)
            # Release them only once the scheduler has handled each deferring
            # worker's exit: a trigger firing before that trips a race of
            # Airflow 3.3.2 that fails the resumed task.
            af.wait_deferrals_processed(DAG_ID, run_id, timeout=60)
            for p in paths:
                Path(p).touch()
            state = af.wait_run(DAG_ID, run_id, timeout=90)
        report = af.report(DAG_ID, run_id)
        assert state == "success", report
        tasks = af.task_states(DAG_ID, run_id)

    assert [(t.task_id, t.map_index, t.state) for t in tasks] == [
        ("wait_for_release", i, "success") for i in range(MAPPED)
    ], report
    assert all(t.try_number == 1 for t in tasks), report
    assert sampler.max("deferred") >= 4, (sampler.maxima(), report)
    # The parallelism given did take: never more tasks running than slots.
    assert sampler.max("running") <= SLOTS, (sampler.maxima(), report)
