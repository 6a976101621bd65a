"""Killed Berth tasks: execution_timeout ends the task, and the Berth job
with it, whether the task waits in a worker or in the triggerer."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG

from berth_airflow.operators import BerthJobOperator

with DAG(dag_id="berth_cancel", schedule=None, catchup=False) as dag:
    for deferrable in (False, True):
        BerthJobOperator(
            task_id="killed_deferred" if deferrable else "killed_in_worker",
            berth_pool="bins",
            steps=["sh", "-c", "echo started; sleep 600"],
            deferrable=deferrable,
            execution_timeout=timedelta(seconds=4),
            poll_interval=2,
        )

if __name__ == "__main__":
    dag.test()
