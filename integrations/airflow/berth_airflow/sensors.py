"""BerthJobSensor: waits for a Berth job that something else submitted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

try:  # Airflow 3
    from airflow.sdk import BaseSensorOperator, PokeReturnValue
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
except ImportError:  # pragma: no cover - Airflow 2
    from airflow.exceptions import AirflowException, AirflowSensorTimeout
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue

from berth_airflow.hooks import DEFAULT_CONN_ID, END_STATES, BerthHook
from berth_airflow.operators import failure_message, summary
from berth_airflow.triggers import DEFAULT_POLL, BerthJobTrigger


class BerthJobSensor(BaseSensorOperator):
    """Waits until the Berth job ``job_id`` ends: succeeds when it
    succeeded, fails when it failed or was cancelled.

    Deferrable by default: the triggerer long-polls Berth and no worker slot
    is held. ``timeout`` (the sensor's) bounds the wait in both modes.
    Returns (XCom) the same summary as BerthJobOperator.
    """

    template_fields: Sequence[str] = ("job_id",)

    def __init__(
        self,
        *,
        job_id: str,
        berth_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = True,
        poll_interval: float = DEFAULT_POLL,
        **kwargs: Any,
    ):
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.job_id = job_id
        self.berth_conn_id = berth_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval

    def _result(self, job: dict[str, Any]) -> dict[str, Any]:
        if job["state"] == "succeeded":
            return summary(job)
        raise AirflowException(failure_message(job, None))

    def poke(self, context: Any) -> Any:
        job = BerthHook(self.berth_conn_id).get_job(self.job_id)
        if job["state"] not in END_STATES:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._result(job))

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        job = BerthHook(self.berth_conn_id).get_job(self.job_id)
        if job["state"] in END_STATES:
            return self._result(job)
        self.defer(
            trigger=BerthJobTrigger(
                job_id=self.job_id,
                berth_conn_id=self.berth_conn_id,
                poll=self.poll_interval,
                deadline=time.time() + float(self.timeout) if self.timeout else None,
                cancel=False,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(f"Berth job {event['job_id']} had not ended within the sensor's timeout")
        if event.get("status") != "ended":
            raise AirflowException(event.get("message") or f"waiting for Berth job {event.get('job_id')} failed")
        return self._result(event["job"])
