"""BerthJobSensor waiting, deferred and in a worker, on a job submitted
elsewhere (its id in the run's conf)."""

from __future__ import annotations

from airflow.sdk import DAG

from berth_airflow.sensors import BerthJobSensor

with DAG(dag_id="berth_sensor", schedule=None, catchup=False, params={"job_id": ""}) as dag:
    BerthJobSensor(task_id="deferred", job_id="{{ params.job_id }}", poll_interval=2)
    BerthJobSensor(task_id="in_worker", job_id="{{ params.job_id }}", deferrable=False, poll_interval=1)

if __name__ == "__main__":
    dag.test()
