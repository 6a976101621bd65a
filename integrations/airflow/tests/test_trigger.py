"""BerthJobTrigger on its own: the event it fires, the hold before it, the
deadline, and Berth out of reach."""

from __future__ import annotations

import asyncio
import json
import time

from berth_airflow.triggers import BerthJobTrigger


def first_event(trigger: BerthJobTrigger):
    async def run():
        async for event in trigger.run():
            return event.payload, time.time()

    return asyncio.run(run())


def trigger_for(server, monkeypatch, **kw) -> BerthJobTrigger:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BERTH_TRIGGER_TEST",
        json.dumps({"conn_type": "berth", "host": "127.0.0.1", "port": server.port, "extra": {"retries": 0}}),
    )
    return BerthJobTrigger(job_id="job-1", berth_conn_id="berth_trigger_test", **kw)


def test_fires_when_the_job_ends_and_not_before_the_hold(scripted, monkeypatch):
    running = {"id": "job-1", "state": "running"}
    done = {"id": "job-1", "state": "succeeded", "attempts": []}
    s = scripted((200, running), (200, done))
    not_before = time.time() + 0.5
    payload, at = first_event(trigger_for(s, monkeypatch, poll=3, not_before=not_before))
    assert payload == {"job_id": "job-1", "status": "ended", "job": done}
    assert at >= not_before
    assert [r[1] for r in s.requests] == ["/v1/jobs/job-1?wait=3s"] * 2


def test_the_deadline_cancels_the_job(scripted, monkeypatch):
    cancelled = {"id": "job-1", "state": "running", "cancel_requested": True}
    s = scripted((200, cancelled))
    payload, _ = first_event(trigger_for(s, monkeypatch, deadline=time.time() - 1, not_before=0))
    assert payload["status"] == "timeout" and payload["job"] == cancelled
    assert [(r[0], r[1]) for r in s.requests] == [("POST", "/v1/jobs/job-1/cancel")]
    # A sensor's trigger watches a job that is not its own: it only looks.
    s2 = scripted((200, {"id": "job-1", "state": "running"}))
    payload, _ = first_event(trigger_for(s2, monkeypatch, deadline=time.time() - 1, not_before=0, cancel=False))
    assert payload["status"] == "timeout" and [r[0] for r in s2.requests] == ["GET"]


def test_a_refusal_ends_the_wait_with_an_error(scripted, monkeypatch):
    s = scripted((404, {"error": {"code": "not_found", "message": "job job-1 not found"}}))
    payload, _ = first_event(trigger_for(s, monkeypatch, not_before=0))
    assert payload == {"job_id": "job-1", "status": "error", "message": "Berth: job job-1 not found (not_found, HTTP 404)", "code": "not_found"}


def test_an_outage_of_berth_is_waited_out(scripted, monkeypatch):
    # The hook gives up at once (retries 0); the trigger asks again.
    down = (503, {"error": {"code": "unavailable", "message": "Berth is not ready"}})
    done = {"id": "job-1", "state": "succeeded", "attempts": []}
    s = scripted(down, down, (200, done))
    monkeypatch.setattr("berth_airflow.hooks.OUTAGE_BACKOFF", 0.01)
    payload, _ = first_event(trigger_for(s, monkeypatch, not_before=0))
    assert payload == {"job_id": "job-1", "status": "ended", "job": done}
    assert len(s.requests) == 3


def test_serializes_everything_it_needs():
    t = BerthJobTrigger(job_id="job-1", berth_conn_id="c", poll=7, deadline=12.5, cancel=False, not_before=3.0)
    classpath, kwargs = t.serialize()
    again = BerthJobTrigger(**kwargs)
    assert classpath == "berth_airflow.triggers.BerthJobTrigger"
    assert (again.job_id, again.berth_conn_id, again.poll, again.deadline, again.cancel, again.not_before) == ("job-1", "c", 7, 12.5, False, 3.0)
