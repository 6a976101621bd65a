"""BerthHook's connection handling and error handling, against a server
that answers errors, times out and refuses connections, and against the
real berth serve."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import pytest

from berth_airflow.hooks import BerthError, BerthHook


def conn(host: str, port: int | None = None, password: str | None = None, extra: dict | None = None):
    from airflow.sdk import Connection

    return Connection(conn_id="test", conn_type="berth", host=host, port=port, password=password, extra=json.dumps(extra or {}))


def hook_for(server, **kw) -> BerthHook:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("retries", 3)
    return BerthHook(connection=conn("127.0.0.1", server.port, password="secret"), **kw)


JOB = {"id": "job-1", "state": "running", "pool": "a", "attempts": []}


def err(status, code, message):
    return (status, {"error": {"code": code, "message": message}})


def test_errors_carry_berths_code_and_message(scripted):
    s = scripted(err(422, "unprocessable", 'pool: unknown pool "huge" (configured: a, b)'))
    with pytest.raises(BerthError) as e:
        hook_for(s).submit({"pool": "huge", "steps": [{"args": ["x"]}], "idempotency_key": "k"})
    assert (e.value.status, e.value.code) == (422, "unprocessable")
    assert e.value.message == 'pool: unknown pool "huge" (configured: a, b)'
    assert 'unknown pool "huge"' in str(e.value)
    assert len(s.requests) == 1, "a 4xx answer is not retried"
    method, path, headers, body = s.requests[0]
    assert (method, path) == ("POST", "/v1/jobs")
    assert headers["Authorization"] == "Bearer secret"
    assert json.loads(body)["pool"] == "huge"


def test_5xx_is_retried_then_succeeds(scripted):
    s = scripted(err(503, "unavailable", "the store cannot write"), (502, b"<html>bad gateway</html>"), (200, JOB))
    assert hook_for(s).get_job("job-1") == JOB
    assert len(s.requests) == 3


def test_5xx_that_lasts_raises_after_the_retries(scripted):
    s = scripted(err(503, "throttled", "the provider asked Berth to slow down"))
    with pytest.raises(BerthError) as e:
        hook_for(s, retries=2).get_job("job-1")
    assert (e.value.status, e.value.code) == (503, "throttled")
    assert len(s.requests) == 3


def test_a_proxys_error_page_is_still_a_clear_error(scripted):
    s = scripted((502, b"<html>bad gateway</html>"))
    with pytest.raises(BerthError) as e:
        hook_for(s, retries=0).get_job("job-1")
    assert e.value.status == 502 and "bad gateway" in e.value.message


def test_a_submission_without_a_key_is_not_sent_twice(scripted):
    # Berth may have taken it: without an idempotency key a second send
    # could make a second job.
    s = scripted(err(503, "unavailable", "not ready"), (201, JOB))
    with pytest.raises(BerthError):
        hook_for(s).submit({"pool": "a", "steps": [{"args": ["x"]}]})
    assert len(s.requests) == 1
    s2 = scripted(err(503, "unavailable", "not ready"), (201, JOB))
    job, created = hook_for(s2).submit({"pool": "a", "steps": [{"args": ["x"]}], "idempotency_key": "k"})
    assert created and job == JOB and len(s2.requests) == 2


def test_timeouts_are_retried_then_raise(scripted):
    s = scripted((200, JOB, 2.0))
    with pytest.raises(BerthError) as e:
        hook_for(s, timeout=0.2, retries=1).get_job("job-1")
    assert e.value.code == "unreachable" and "Timeout" in e.value.message
    assert len(s.requests) == 2
    s2 = scripted((200, JOB, 2.0), (200, JOB))
    assert hook_for(s2, timeout=0.2).get_job("job-1") == JOB


def test_refused_connections_are_retried_then_raise():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        hook = BerthHook(connection=conn("127.0.0.1", port), backoff=0.01, retries=2)
        with pytest.raises(BerthError) as e:
            hook.get_job("job-1")
        assert e.value.status == 0 and e.value.code == "unreachable" and "ConnectError" in e.value.message
        # Refused means never sent, so even a submission without a key is retried.
        with pytest.raises(BerthError):
            hook.submit({"pool": "a", "steps": [{"args": ["x"]}]})


def test_wait_rides_out_an_outage(scripted, monkeypatch):
    monkeypatch.setattr("berth_airflow.hooks.OUTAGE_BACKOFF", 0.01)
    down = err(503, "unavailable", "not ready")
    done = {**JOB, "state": "succeeded"}
    s = scripted(down, down, (200, JOB), down, (200, done))
    assert hook_for(s, retries=0).wait("job-1", poll=5) == done
    assert len(s.requests) == 5
    s2 = scripted(err(404, "not_found", "job job-1 not found"))
    with pytest.raises(BerthError) as e:
        hook_for(s2, retries=0).wait("job-1")
    assert e.value.code == "not_found" and not e.value.outage


def test_async_calls_behave_the_same(scripted):
    s = scripted(err(503, "unavailable", "not ready"), (200, JOB))
    assert asyncio.run(hook_for(s).aget_job("job-1", wait=5)) == JOB
    assert len(s.requests) == 2 and s.requests[1][1] == "/v1/jobs/job-1?wait=5s"
    s2 = scripted(err(409, "conflict", "job job-1 has already ended (succeeded)"))
    with pytest.raises(BerthError) as e:
        asyncio.run(hook_for(s2).acancel("job-1"))
    assert e.value.code == "conflict" and len(s2.requests) == 1


@pytest.mark.parametrize(
    "host, port, extra, want",
    [
        ("berth.internal", None, {}, "http://berth.internal:8080"),
        ("berth.internal", 9000, {"scheme": "https"}, "https://berth.internal:9000"),
        ("https://berth.example.com", None, {}, "https://berth.example.com"),
        ("http://10.0.0.5/", 8081, {}, "http://10.0.0.5:8081"),
    ],
)
def test_connection_host_port_or_url(host, port, extra, want):
    assert BerthHook(connection=conn(host, port, extra=extra)).base_url == want


def test_connection_as_the_ui_form_stores_it():
    # Fields left empty are null.
    h = BerthHook(connection=conn("berth.internal", extra={"scheme": None, "timeout": None, "retries": None, "verify": None}))
    assert h.base_url == "http://berth.internal:8080" and (h._timeout, h._retries, h._verify) == (30.0, 5, True)
    h = BerthHook(connection=conn("berth.internal", 443, extra={"scheme": "https", "timeout": 5, "retries": 0, "verify": False}))
    assert h.base_url == "https://berth.internal" and (h._timeout, h._retries, h._verify) == (5.0, 0, False)


def test_connection_from_the_environment(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BERTH_URI", "berth://:tok%2Fen@berth.internal:8090")
    monkeypatch.setenv(
        "AIRFLOW_CONN_BERTH_JSON",
        json.dumps({"conn_type": "berth", "host": "https://b.example", "password": "t2", "extra": {"retries": 1}}),
    )
    h = BerthHook("berth_uri")
    assert h.base_url == "http://berth.internal:8090" and h._token == "tok/en"
    h = BerthHook("berth_json")
    assert h.base_url == "https://b.example" and h._token == "t2" and h._retries == 1


def test_against_the_real_server(berth):
    hook = BerthHook()  # berth_default, from the environment the fixture set
    with pytest.raises(BerthError) as e:
        hook.submit({"pool": "huge", "steps": [{"args": ["true"]}], "idempotency_key": "hook-test/1"})
    assert (e.value.status, e.value.code) == (422, "unprocessable") and '"huge"' in e.value.message
    with pytest.raises(BerthError) as e:
        hook.get_job("job-999999")
    assert (e.value.status, e.value.code) == (404, "not_found")
    spec = {"pool": "bins", "steps": [{"args": ["sh", "-c", "echo hello"]}], "idempotency_key": "hook-test/2"}
    job, created = hook.submit(spec)
    again, created_again = hook.submit(spec)
    assert created and not created_again and again["id"] == job["id"]
    done = hook.wait(job["id"], timeout=60, poll=5)
    assert done["state"] == "succeeded"
    assert hook.logs(job["id"])["stdout"] == "hello\n"
    assert hook.test_connection()[0]
    wrong = BerthHook(connection=conn("127.0.0.1", int(berth.url.rsplit(":", 1)[1]), password="wrong"), retries=0)
    with pytest.raises(BerthError) as e:
        wrong.get_job(job["id"])
    assert (e.value.status, e.value.code) == (401, "unauthorized")
    assert os.environ["AIRFLOW_CONN_BERTH_DEFAULT"].startswith("berth://")
