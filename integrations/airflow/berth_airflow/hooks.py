"""BerthHook: Berth's HTTP API (v1) for Airflow workers and triggers.

One hook serves both sides: the operator calls it synchronously in the
worker, the trigger asynchronously in the triggerer. Both go through the
same request description, retry policy and error decoding, so a worker and
a triggerer see Berth's answers the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from berth_airflow import CONNECTION_UI

try:  # Airflow 3
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowException
except ImportError:  # pragma: no cover - Airflow 2
    from airflow.exceptions import AirflowException
    from airflow.hooks.base import BaseHook

DEFAULT_CONN_ID = "berth_default"
DEFAULT_PORT = 8080

# Statuses worth another try: Berth not ready, the store unable to write,
# a provider throttling Berth, or a proxy in front of it failing. 500 is
# included because a proxy answers it too; Berth's own 500 is a bug that a
# second try rarely meets again.
RETRY_STATUSES = frozenset({500, 502, 503, 504})

# Job states: the ones a job leaves, and the ones it ends in.
ACTIVE_STATES = frozenset({"queued", "running"})
END_STATES = frozenset({"succeeded", "failed", "cancelled"})


# How long a wait for a job pauses before asking again when Berth does not
# answer (after the hook's own retries): doubling from OUTAGE_BACKOFF up to
# OUTAGE_BACKOFF_MAX, for as long as the outage lasts. A Berth restart, or a
# network cut, does not end a wait: the job goes on, and so does the wait.
OUTAGE_BACKOFF = 1.0
OUTAGE_BACKOFF_MAX = 30.0


def outage_delay(polls: int) -> float:
    """The pause after ``polls`` unanswered polls in a row, plus this one."""
    return min(OUTAGE_BACKOFF_MAX, OUTAGE_BACKOFF * 2**polls)


class BerthError(AirflowException):
    """Berth answered with an error, or could not be reached.

    ``status`` is the HTTP status (0 when Berth never answered), ``code``
    Berth's error code (``invalid``, ``not_found``, ``conflict``,
    ``unprocessable``, ``unavailable``, ...; ``unreachable`` when it never
    answered) and ``message`` Berth's sentence for the user.
    """

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"Berth: {message} ({code}, HTTP {status})" if status else f"Berth: {message} ({code})")
        self.status = status
        self.code = code
        self.message = message

    @property
    def outage(self) -> bool:
        """Whether Berth was out of reach or failing (no answer, or 5xx),
        rather than refusing the request."""
        return self.status == 0 or self.status >= 500


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None
    # How long to wait for the answer beyond the connection's timeout (a
    # long poll's wait).
    extra_timeout: float = 0.0
    # Whether a request that may have reached Berth can be sent again:
    # reads, cancels and submissions that carry an idempotency key. A
    # request that never connected is always safe to send again.
    replayable: bool = True


class BerthHook(BaseHook):
    """Talks to a Berth server over its HTTP API (v1).

    The connection (type ``berth``): host and port, or a URL in the host
    field (``https://berth.example.com``); the bearer token in the password
    field. Extras: ``scheme`` (``http`` or ``https`` when the host is not a
    URL), ``timeout`` (seconds for one call, default 30), ``retries``
    (default 5), ``verify`` (TLS certificate check, default true).

    Connection errors, timeouts and answers 500/502/503/504 are retried with
    exponential backoff and jitter; other errors raise :class:`BerthError`
    at once with Berth's code and message.
    """

    conn_name_attr = "berth_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "berth"
    hook_name = "Berth"

    def __init__(
        self,
        berth_conn_id: str = DEFAULT_CONN_ID,
        *,
        retries: int | None = None,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        timeout: float | None = None,
        connection: Any = None,
    ):
        super().__init__()
        self.berth_conn_id = berth_conn_id
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._timeout = timeout
        self._connection = connection
        self._base_url: str | None = None
        self._token: str | None = None

    # --- the connection -------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": CONNECTION_UI["hidden-fields"],
            "relabeling": CONNECTION_UI["relabeling"],
            "placeholders": CONNECTION_UI["placeholders"],
        }

    def _configure(self, conn: Any) -> None:
        extra = conn.extra_dejson if conn is not None else {}
        host = (conn.host or "").strip() if conn is not None else ""
        if not host:
            raise BerthError(0, "invalid", f"connection {self.berth_conn_id!r} has no host")
        if "://" in host:
            url = httpx.URL(host)
            if conn.port and url.port is None:
                url = url.copy_with(port=conn.port)
        else:
            scheme = extra.get("scheme") or (conn.schema if conn.schema in ("http", "https") else "http")
            url = httpx.URL(scheme=scheme, host=host, port=conn.port or DEFAULT_PORT)
        self._base_url = str(url).rstrip("/")
        self._token = conn.password or extra.get("token") or None
        # The UI's form stores a field left empty as null.
        if self._timeout is None:
            self._timeout = float(extra.get("timeout") or 30)
        if self._retries is None:
            self._retries = int(5 if extra.get("retries") is None else extra["retries"])
        self._verify = extra.get("verify", True) not in (False, "false", "False", "0", 0)

    def _ensure(self) -> None:
        if self._base_url is None:
            self._configure(self._connection or self.get_connection(self.berth_conn_id))

    async def _aensure(self) -> None:
        if self._base_url is None:
            conn = self._connection
            if conn is None:
                conn = await self.aget_connection(self.berth_conn_id)
            self._configure(conn)

    @property
    def base_url(self) -> str:
        self._ensure()
        return self._base_url  # type: ignore[return-value]

    def _headers(self) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "berth-airflow"}
        if self._token:
            h["Authorization"] = f"Bearer {self._token}"
        return h

    # --- one request, sync and async ------------------------------------

    def _delay(self, attempt: int) -> float:
        d = min(self._max_backoff, self._backoff * (2**attempt))
        return d * (0.5 + random.random() / 2)

    def _retry_after(self, req: _Request, attempt: int, resp: httpx.Response | None, exc: Exception | None) -> float | None:
        """The delay before another try, or None when there is none to make."""
        if attempt >= (self._retries or 0):
            return None
        if exc is not None:
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                return self._delay(attempt)
            return self._delay(attempt) if req.replayable else None
        assert resp is not None
        if resp.status_code in RETRY_STATUSES and req.replayable:
            return self._delay(attempt)
        return None

    @staticmethod
    def _decode(resp: httpx.Response) -> Any:
        if resp.status_code < 400:
            try:
                return resp.json()
            except ValueError:
                raise BerthError(resp.status_code, "bad_answer", f"Berth answered {resp.status_code} with no JSON body") from None
        code, message = "unknown", resp.text.strip()[:500] or resp.reason_phrase
        try:
            err = resp.json().get("error") or {}
            code, message = err.get("code") or code, err.get("message") or message
        except (ValueError, AttributeError):
            pass
        raise BerthError(resp.status_code, code, message)

    @staticmethod
    def _unreachable(req: _Request, exc: Exception) -> BerthError:
        what = type(exc).__name__
        return BerthError(0, "unreachable", f"{req.method} {req.path} failed: {what}: {exc}")

    def _timeouts(self, req: _Request) -> httpx.Timeout:
        t = float(self._timeout or 30)
        return httpx.Timeout(t, read=t + req.extra_timeout)

    def _settle(
        self, req: _Request, attempt: int, resp: httpx.Response | None, exc: Exception | None
    ) -> tuple[float, tuple[int, Any] | None]:
        """After one try: the answer (status, decoded body) when it is the
        last, else the delay before the next. Raises BerthError."""
        delay = self._retry_after(req, attempt, resp, exc)
        if delay is None:
            if exc is not None:
                raise self._unreachable(req, exc) from exc
            return 0.0, (resp.status_code, self._decode(resp))  # type: ignore[union-attr]
        self.log.warning("Berth %s %s: %s; trying again in %.1fs", req.method, req.path, exc or resp.status_code, delay)  # type: ignore[union-attr]
        return delay, None

    def _call(self, req: _Request) -> tuple[int, Any]:
        self._ensure()
        with httpx.Client(base_url=self._base_url, headers=self._headers(), verify=self._verify) as client:
            for attempt in itertools.count():
                try:
                    resp, exc = client.request(req.method, req.path, params=req.params, json=req.body, timeout=self._timeouts(req)), None
                except httpx.TransportError as e:
                    resp, exc = None, e
                delay, answer = self._settle(req, attempt, resp, exc)
                if answer is not None:
                    return answer
                time.sleep(delay)
        raise AssertionError("unreachable")

    async def _acall(self, req: _Request) -> tuple[int, Any]:
        await self._aensure()
        async with httpx.AsyncClient(base_url=self._base_url, headers=self._headers(), verify=self._verify) as client:
            for attempt in itertools.count():
                try:
                    resp, exc = await client.request(req.method, req.path, params=req.params, json=req.body, timeout=self._timeouts(req)), None
                except httpx.TransportError as e:
                    resp, exc = None, e
                delay, answer = self._settle(req, attempt, resp, exc)
                if answer is not None:
                    return answer
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # --- the API ----------------------------------------------------------

    @staticmethod
    def _job_path(job_id: str, tail: str = "") -> str:
        return f"/v1/jobs/{quote(job_id, safe='')}{tail}"

    @staticmethod
    def _submit_request(spec: dict[str, Any]) -> _Request:
        return _Request("POST", "/v1/jobs", body=spec, replayable=bool(spec.get("idempotency_key")))

    @classmethod
    def _get_request(cls, job_id: str, wait: float | None) -> _Request:
        if not wait:
            return _Request("GET", cls._job_path(job_id))
        secs = max(1, int(wait))
        return _Request("GET", cls._job_path(job_id), params={"wait": f"{secs}s"}, extra_timeout=secs)

    def submit(self, spec: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Submits a job; returns it and whether this call created it (False:
        its idempotency key named a job that exists)."""
        status, job = self._call(self._submit_request(spec))
        return job, status == 201

    def get_job(self, job_id: str, wait: float | None = None) -> dict[str, Any]:
        """One job. With ``wait`` (seconds, at most 600), Berth answers when
        the job ends or the wait runs out, whichever comes first."""
        return self._call(self._get_request(job_id, wait))[1]

    async def aget_job(self, job_id: str, wait: float | None = None) -> dict[str, Any]:
        return (await self._acall(self._get_request(job_id, wait)))[1]

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 60) -> dict[str, Any]:
        """Long-polls until the job ends, through outages of Berth; raises
        TimeoutError after ``timeout`` seconds with the job still under way."""
        deadline = None if timeout is None else time.monotonic() + timeout
        outage = 0
        while True:
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"Berth job {job_id} has not ended within {timeout}s")
            try:
                job = self.get_job(job_id, wait=max(1.0, left))
            except BerthError as e:
                if not e.outage:
                    raise
                delay = outage_delay(outage)
                outage += 1
                self.log.warning("Berth did not answer for job %s (%s); asking again in %.0fs", job_id, e.message, delay)
                time.sleep(delay)
                continue
            outage = 0
            if job["state"] in END_STATES:
                return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Asks Berth to cancel the job (its running step with it)."""
        return self._call(_Request("POST", self._job_path(job_id, "/cancel")))[1]

    async def acancel(self, job_id: str) -> dict[str, Any]:
        return (await self._acall(_Request("POST", self._job_path(job_id, "/cancel"))))[1]

    def list_jobs(
        self, *, labels: dict[str, str] | None = None, state: str | None = None, pool: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """One page of jobs, newest first."""
        params: dict[str, Any] = {}
        if labels:
            params["label"] = [f"{k}={v}" for k, v in sorted(labels.items())]
        if state:
            params["state"] = state
        if pool:
            params["pool"] = pool
        if limit:
            params["limit"] = limit
        return self._call(_Request("GET", "/v1/jobs", params=params))[1]["jobs"]

    def logs(self, job_id: str, attempt: int | None = None, step: int | None = None) -> dict[str, Any]:
        """A step's logs: its output (local provider) or where they are (EMR)."""
        params = {k: v for k, v in (("attempt", attempt), ("step", step)) if v is not None}
        return self._call(_Request("GET", self._job_path(job_id, "/logs"), params=params or None))[1]

    def test_connection(self) -> tuple[bool, str]:
        """For the Airflow UI's Test button."""
        try:
            self._call(_Request("GET", "/v1/pools"))
        except BerthError as e:
            return False, str(e)
        return True, f"Berth at {self.base_url} answers"
