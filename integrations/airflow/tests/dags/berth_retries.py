"""Airflow retries of Berth tasks: a retried task instance reattaches to
its job unless that job failed."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG

from berth_airflow.operators import BerthJobOperator


class LostAfterSubmitting(BerthJobOperator):
    """Its first try ends as a worker that dies once Berth has the job."""

    def execute(self, context):
        if context["ti"].try_number == 1:
            self.find_or_submit(context)
            raise RuntimeError("the worker was lost after submitting")
        return super().execute(context)


class LostAfterTheJobEnded(BerthJobOperator):
    """Its first try fails after its job succeeded, as a worker lost then."""

    def execute_complete(self, context, event):
        result = super().execute_complete(context, event)
        if context["ti"].try_number == 1:
            raise RuntimeError("the worker was lost after the job succeeded")
        return result


with DAG(dag_id="berth_retries", schedule=None, catchup=False) as dag:
    retry = {"retries": 1, "retry_delay": timedelta(0)}
    LostAfterSubmitting(task_id="reattach_running", berth_pool="bins", steps=["sh", "-c", "sleep 2"], **retry)
    LostAfterTheJobEnded(task_id="reattach_succeeded", berth_pool="bins", steps=["true"], **retry)
    BerthJobOperator(
        task_id="fail_then_new",
        berth_pool="bins",
        steps=["sh", "-c", "echo try {{ ti.try_number }}; test {{ ti.try_number }} -ge 2"],
        **retry,
    )

if __name__ == "__main__":
    dag.test()
