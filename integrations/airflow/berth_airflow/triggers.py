"""BerthJobTrigger: waits in the triggerer for a Berth job to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from berth_airflow.hooks import DEFAULT_CONN_ID, END_STATES, BerthError, BerthHook, outage_delay

# The longest long poll Berth accepts is 10 minutes; a minute keeps a
# trigger responsive to its own deadline and cheap for Berth (one held
# request per waiting task, no calls to any cloud API).
DEFAULT_POLL = 60.0


def resume_hold() -> float:
    """How long after its deferral a task's trigger holds an event back.

    Airflow 3.3.2 fails a resumed task when its trigger fires before the
    scheduler has handled the deferring worker's exit (apache/airflow#72716,
    #66374), so a job that ends within seconds of the deferral would fail its
    task. That exit reaches the scheduler when the worker's supervisor next
    looks (``[workers] min_heartbeat_interval``), and is handled in one of the
    scheduler's next loops (``[scheduler] scheduler_idle_sleep_time``): the
    hold is both, twice the loop, and two seconds to spare. It costs a short
    job a few seconds and an EMR job nothing.
    """
    try:
        from airflow.sdk.configuration import conf

        return (
            conf.getfloat("workers", "min_heartbeat_interval", fallback=5.0)
            + 2 * conf.getfloat("scheduler", "scheduler_idle_sleep_time", fallback=1.0)
            + 2.0
        )
    except Exception:  # an Airflow without these options
        return 9.0


class BerthJobTrigger(BaseTrigger):
    """Long-polls ``GET /v1/jobs/{id}?wait=`` until the job ends.

    It fires one event: ``{"status": "ended", "job": JOB}`` when the job
    ended in any state, ``{"status": "timeout", "job": JOB}`` when
    ``deadline`` (a Unix time) passed first, in which case it has asked
    Berth to cancel the job (when ``cancel``), or ``{"status": "error", "message": ...}`` when
    Berth refused to answer (an unknown job, a wrong token). While Berth is
    out of reach or answers 5xx, it keeps asking: a Berth restart does not
    fail a task whose job goes on. The event carries everything the resuming
    operator needs (``dag.test()`` does not pass ``defer()``'s kwargs on).

    No event fires before ``not_before`` (default: resume_hold() after the
    deferral). When a user marks the deferred task failed or succeeded, or
    clears it, Airflow calls :meth:`on_kill`, which cancels the Berth job.
    A triggerer restart does not: the trigger moves and keeps waiting.
    """

    def __init__(
        self,
        job_id: str,
        berth_conn_id: str = DEFAULT_CONN_ID,
        poll: float = DEFAULT_POLL,
        deadline: float | None = None,
        cancel: bool = True,
        not_before: float | None = None,
    ):
        super().__init__()
        self.job_id = job_id
        self.berth_conn_id = berth_conn_id
        self.poll = poll
        self.deadline = deadline
        # Whether the job is this trigger's to cancel, at the deadline or
        # when its task is killed: the operator's own job is, a job a
        # sensor watches is not.
        self.cancel = cancel
        # A Unix time before which no event is fired (see resume_hold);
        # None: the hold from now.
        self.not_before = time.time() + resume_hold() if not_before is None else not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "berth_conn_id": self.berth_conn_id,
                "poll": self.poll,
                "deadline": self.deadline,
                "cancel": self.cancel,
                "not_before": self.not_before,
            },
        )

    async def _event(self, **payload: Any) -> TriggerEvent:
        hold = self.not_before - time.time()
        if hold > 0:
            await asyncio.sleep(hold)
        return TriggerEvent({"job_id": self.job_id, **payload})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = BerthHook(self.berth_conn_id)
        self.log.info("Waiting for Berth job %s", self.job_id)
        outage = 0  # polls in a row that Berth did not answer
        while True:
            try:
                wait = self.poll
                if self.deadline is not None:
                    left = self.deadline - time.time()
                    if left <= 0:
                        job = await (hook.acancel(self.job_id) if self.cancel else hook.aget_job(self.job_id))
                        yield await self._event(status="timeout", job=job)
                        return
                    wait = min(wait, left)
                job = await hook.aget_job(self.job_id, wait=max(1.0, wait))
            except BerthError as e:
                if not e.outage:
                    yield await self._event(status="error", message=str(e), code=e.code)
                    return
                delay = outage_delay(outage)
                outage += 1
                self.log.warning("Berth did not answer for job %s (%s); asking again in %.0fs", self.job_id, e.message, delay)
                await asyncio.sleep(delay)
                continue
            outage = 0
            if job["state"] in END_STATES:
                yield await self._event(status="ended", job=job)
                return

    async def on_kill(self) -> None:
        if not self.cancel:
            return
        hook = BerthHook(self.berth_conn_id, retries=2)
        try:
            await asyncio.wait_for(hook.acancel(self.job_id), timeout=20)
        except BerthError as e:
            if e.code != "conflict":  # already ended
                self.log.warning("Could not cancel Berth job %s: %s", self.job_id, e)
