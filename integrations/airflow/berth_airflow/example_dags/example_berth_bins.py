"""Parallel bins, with Berth: the parallelism comes from the data.

``plan`` looks at the work and returns one step per bin: one per file of
the ``input`` directory (on EMR it would list an S3 prefix), or, with no
input, ``bins`` bins of ``seconds`` each. Dynamic task mapping makes one
Berth job of each. Berth scales the ``bins`` pool to the queue, from no
cluster up to its ``max_clusters`` and back, so the DAG no longer
hard-codes N branches over K clusters. The mapped tasks wait in the
triggerer, holding no worker slot, and need no Airflow pool.
"""

from __future__ import annotations

from airflow.sdk import DAG, task

from berth_airflow.operators import BerthJobOperator

with DAG(
    dag_id="berth_bins",
    schedule=None,
    catchup=False,
    params={"input": "", "bins": 6, "seconds": 1},
    tags=["berth", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def plan(params=None) -> list[list[str]]:
        if params["input"]:
            from pathlib import Path

            files = sorted(str(p) for p in Path(params["input"]).iterdir())
            return [["sh", "-c", 'echo "$(wc -l < "$1") lines in $1"', "bin", f] for f in files]
        n, secs = int(params["bins"]), int(params["seconds"])
        return [["sh", "-c", f"echo bin {i} of {n}; sleep {secs}"] for i in range(n)]

    bins = BerthJobOperator.partial(task_id="bin", berth_pool="bins").expand(steps=plan())

    merge = BerthJobOperator(
        task_id="merge",
        berth_pool="bins",
        steps=["sh", "-c", "echo merging {{ ti.xcom_pull(task_ids='bin') | length }} bins"],
    )
    bins >> merge

if __name__ == "__main__":
    dag.test()
