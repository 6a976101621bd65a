"""Serial phases on cluster shapes, with Berth.

Phases 1-4 run on Berth pool ``a``, 5-6 on ``b``, 7-8 on ``c``. Each phase
is one task and one Berth job; the phases of a DAG run share an affinity,
so each lands on the cluster that ran the one before when it is still
there. When a cluster is lost mid-phase, Berth starts another and runs the
phase again: the Airflow task keeps waiting and succeeds, with no retry on
Airflow's side and no person to recreate the cluster.

The steps here are shell commands, for Berth's local provider; on EMR a
phase would be ``["spark-submit", "s3://bucket/phase_3.py", ...]``.
"""

from __future__ import annotations

from airflow.sdk import DAG

from berth_airflow.operators import BerthJobOperator

SHAPES = {1: "a", 2: "a", 3: "a", 4: "a", 5: "b", 6: "b", 7: "c", 8: "c"}

with DAG(
    dag_id="berth_phases",
    schedule=None,
    catchup=False,
    params={"seconds": 1},
    tags=["berth", "example"],
    doc_md=__doc__,
) as dag:
    previous = None
    for n, shape in SHAPES.items():
        phase = BerthJobOperator(
            task_id=f"phase_{n}",
            berth_pool=shape,
            steps=[{"name": f"phase-{n}", "args": ["sh", "-c", f"echo phase {n} of {{{{ run_id }}}}; sleep {{{{ params.seconds }}}}"]}],
            affinity="{{ run_id }}",
        )
        if previous is not None:
            previous >> phase
        previous = phase

if __name__ == "__main__":
    dag.test()
