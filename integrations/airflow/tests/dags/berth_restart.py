"""A Berth task whose wait outlives a restart of Berth."""

from __future__ import annotations

from airflow.sdk import DAG

from berth_airflow.operators import BerthJobOperator

with DAG(dag_id="berth_restart", schedule=None, catchup=False) as dag:
    # berth_flaky: the test's server with no retries in the hook, so that
    # every poll while Berth is down fails and the trigger must wait it out.
    BerthJobOperator(task_id="long", berth_pool="bins", steps=["sh", "-c", "sleep 3; echo done"], berth_conn_id="berth_flaky", poll_interval=2)

if __name__ == "__main__":
    dag.test()
