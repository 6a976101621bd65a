"""Then hints from the DAG's shape: each Berth task tells Berth what
follows it. Jobs wait in their workers, so that the run spends no trigger
hold per task.

    first (a) ─┐
    explicit (a, then=c:2) ─┼─▶ second (b)
    off (a, then=[]) ─┘
    plan ─▶ fan (a) ─▶ bin (bins, mapped over plan's 3) + fixed (bins, mapped over 2)
"""

from __future__ import annotations

from airflow.sdk import DAG, task

from berth_airflow.operators import BerthJobOperator

with DAG(dag_id="berth_then", schedule=None, catchup=False, params={"next": "b"}, default_args={"deferrable": False}) as dag:
    second = BerthJobOperator(task_id="second", berth_pool="{{ params.next }}", steps=["true"])
    first = BerthJobOperator(task_id="first", berth_pool="a", steps=["true"])
    explicit = BerthJobOperator(task_id="explicit", berth_pool="a", steps=["true"], then=[{"pool": "c", "jobs": 2}])
    off = BerthJobOperator(task_id="off", berth_pool="a", steps=["true"], then=[])
    [first, explicit, off] >> second

    @task
    def plan() -> list[list[str]]:
        return [["true"], ["true"], ["true"]]

    bins = plan()
    fan = BerthJobOperator(task_id="fan", berth_pool="a", steps=["true"])
    bin_ = BerthJobOperator.partial(task_id="bin", berth_pool="bins").expand(steps=bins)
    fixed = BerthJobOperator.partial(task_id="fixed", berth_pool="bins").expand(steps=[["true"], ["true"]])
    bins >> fan >> [bin_, fixed]

if __name__ == "__main__":
    dag.test()
