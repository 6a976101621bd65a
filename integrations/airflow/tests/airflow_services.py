"""Run a real Apache Airflow 3 deployment for one test, on loopback only.

This module holds no pytest fixtures: a conftest wraps it. It starts the four
services Airflow 3 needs to run tasks with the LocalExecutor -- api-server,
scheduler, dag-processor and triggerer -- as subprocesses of the Python that
runs the tests (``sys.executable -m airflow``), each in a process group of its
own, with a SQLite metadata database and every file in a home directory the
deployment owns. Typical use::

    with AirflowDeployment(home=tmp / "home", dags_folder=tmp / "dags",
                           extra_env={"AIRFLOW__CORE__PARALLELISM": "2"}) as af:
        af.unpause("my_dag")
        run_id = af.trigger("my_dag", conf={"x": 1})
        with af.sample_states("my_dag", run_id) as sampler:
            state = af.wait_run("my_dag", run_id, timeout=90)
        assert state == "success", af.report("my_dag", run_id)
        assert sampler.max("deferred") >= 4

Every error this module raises (:class:`AirflowServiceError`) carries the tail
of each service's log file, and of the task logs where a run is concerned, so
that a failure in CI can be read without the machine it ran on.

Nothing here listens anywhere but 127.0.0.1: the api-server is bound there on
a free port, and the scheduler's and triggerer's log servers are not started
(task logs are read from files in the home directory).
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple

#: The services started, in the order they are started. They are stopped in
#: the reverse order, so that the api-server -- which running tasks talk to --
#: goes last.
SERVICES = ("api-server", "dag-processor", "triggerer", "scheduler")

#: Run states after which a run changes no more.
FINISHED_RUN_STATES = frozenset({"success", "failed"})

#: Lines of each log file that error messages carry.
LOG_TAIL_LINES = 60


def airflow_command() -> list[str]:
    """The command that runs the Airflow CLI of the Python running the tests."""
    return [sys.executable, "-m", "airflow"]


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, every: float = 0.25, fail: Callable[[str], Any] | None = None
) -> Any:
    """Polls ``check`` until it returns something true, and returns that.
    After ``timeout`` seconds it calls ``fail`` with a message, or raises
    :class:`AirflowServiceError` without one."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:.0f}s waiting for {what}"
            if fail is not None:
                fail(message)
            raise AirflowServiceError(message)
        time.sleep(every)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file, or a note that there are none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as e:
        return f"(cannot read {path.name}: {e})"
    got = data.splitlines()[-lines:]
    return "\n".join(got) if got else "(empty)"


class AirflowServiceError(RuntimeError):
    """Something about the Airflow deployment failed; the message has its logs."""


class TaskState(NamedTuple):
    task_id: str
    map_index: int
    state: str | None
    try_number: int


class _Service:
    """One started service: its process, which leads a group of its own."""

    def __init__(self, name: str, proc: subprocess.Popen, log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path


def _proc_start_time(pid: int) -> str | None:
    """The start time of a process (field 22 of /proc/PID/stat), or None if gone.

    Together with the pid it names one process: a pid reused later has
    another start time.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name, field 2, is in parentheses and may hold spaces.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _descendants(pids: Iterable[int]) -> dict[int, str]:
    """Every live descendant of ``pids``, as pid -> start time (Linux /proc)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children[int(fields[1])].append(int(entry))
    found: dict[int, str] = {}
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child in found:
                continue
            start = _proc_start_time(child)
            if start is not None:
                found[child] = start
                todo.append(child)
    return found


class AirflowDeployment:
    """A real Airflow deployment (LocalExecutor, SQLite) living in ``home``.

    :param home: an empty directory the deployment owns: AIRFLOW_HOME, the
        SQLite database, the service logs (``<service>.log``) and task logs.
    :param dags_folder: the folder of DAG files, already in place.
    :param extra_env: variables set for every Airflow process, after (and so
        over) the ones this class sets, e.g. ``AIRFLOW_CONN_*`` or
        ``AIRFLOW__CORE__PARALLELISM``.
    :param dag_ids: the DAG ids that must be parsed before the deployment is
        ready. Without it, every Python file in ``dags_folder`` that Airflow
        would parse (one naming both "airflow" and "dag") must have given a DAG
        or an import error.
    :param allow_import_errors: whether an import error in the DAG files is
        tolerated; by default starting fails with the error's stack trace.
    :param startup_timeout: seconds that starting may take, migration
        included.

    Variables named ``AIRFLOW_*`` in the environment of the tests are not
    passed on, so that a configuration meant for in-process tests (say a
    unit-test AIRFLOW_HOME) does not leak into this deployment.
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        extra_env: Mapping[str, str] | None = None,
        *,
        dag_ids: Iterable[str] | None = None,
        allow_import_errors: bool = False,
        startup_timeout: float = 150.0,
    ) -> None:
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.extra_env = dict(extra_env or {})
        self.dag_ids = list(dag_ids) if dag_ids is not None else None
        self.allow_import_errors = allow_import_errors
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.env: dict[str, str] = {}
        self._services: list[_Service] = []
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- life cycle ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise AirflowServiceError("the deployment is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def __enter__(self) -> AirflowDeployment:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def build_env(self) -> dict[str, str]:
        """The environment of every Airflow process of this deployment."""
        if self.port is None:
            self.port = free_loopback_port()
        base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_")}
        # Nothing of ours goes through a proxy: not this module's requests,
        # not the task runners' calls to the Execution API.
        no_proxy = ",".join(
            p for p in (env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost") if p
        )
        env["NO_PROXY"] = env["no_proxy"] = no_proxy
        bin_dir = os.path.dirname(sys.executable)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW_CONFIG": str(self.home / "airflow.cfg"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
                # Secrets every process must share: the api-server checks the
                # tokens the scheduler signs for the task runners.
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                # The api-server, on loopback; task runners reach its
                # Execution API there.
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": base + "/",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": base + "/execution/",
                # The public REST API without logging in: every caller is admin.
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                # Fast loops, so a test waits little; lean parsing, for a
                # machine of few cores.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
                # New files are found within REFRESH_INTERVAL; a file changed
                # in place is parsed again after MIN_FILE_PROCESS_INTERVAL.
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # A task supervisor notices its task process has ended only
                # when its wait times out, which is this long: with the default
                # 5 s, a task that defers keeps its worker slot 5 s longer,
                # and the window of the race described at
                # wait_deferrals_processed is that much wider.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Migrate the database, start the services and wait until they serve."""
        if self._services:
            raise AirflowServiceError("the deployment is already started")
        if not self.dags_folder.is_dir():
            raise AirflowServiceError(f"no DAGs folder at {self.dags_folder}")
        self.home.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.startup_timeout
        self.env = self.build_env()
        try:
            self._migrate(deadline)
            for name in SERVICES:
                self._start_service(name)
            self._wait_healthy(deadline)
            self._wait_parsed(deadline)
        except BaseException:
            self.stop()
            raise

    def _airflow(self, args: list[str], log_path: Path) -> subprocess.Popen:
        """Starts the Airflow CLI in a session of its own, output to log_path."""
        with open(log_path, "wb") as log:
            return subprocess.Popen(
                [*airflow_command(), *args],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _migrate(self, deadline: float) -> None:
        log_path = self.home / "db-migrate.log"
        proc = self._airflow(["db", "migrate"], log_path)
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AirflowServiceError(
                "airflow db migrate did not finish in time\n" + self._section(log_path)
            ) from None
        if code != 0:
            raise AirflowServiceError(f"airflow db migrate exited {code}\n" + self._section(log_path))

    def _start_service(self, name: str) -> None:
        args = [name]
        if name == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        elif name in ("scheduler", "triggerer"):
            # Their log servers would listen on every interface, on fixed
            # ports; the api-server reads task logs from files instead.
            args += ["--skip-serve-logs"]
        log_path = self.home / f"{name}.log"
        self._services.append(_Service(name, self._airflow(args, log_path), log_path))

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every process group started here, SIGKILL what outlives ``timeout``.

        Task processes, which Airflow puts in process groups of their own, are
        found as descendants of the started services before any signal is
        sent, and get the same treatment. Nothing else is signalled.
        """
        services, self._services = self._services, []
        if not services:
            return
        leaders = [s.proc.pid for s in services if s.proc.poll() is None]
        family = _descendants(leaders)

        def signal_all(sig: int) -> None:
            for s in reversed(services):
                if s.proc.poll() is None:
                    try:
                        os.killpg(s.proc.pid, sig)
                    except (ProcessLookupError, PermissionError):
                        pass
            for pid, start in family.items():
                if _proc_start_time(pid) == start:
                    try:
                        os.kill(pid, sig)
                    except (ProcessLookupError, PermissionError):
                        pass

        def all_gone() -> bool:
            return all(s.proc.poll() is not None for s in services) and all(
                _proc_start_time(pid) != start for pid, start in family.items()
            )

        signal_all(signal.SIGTERM)
        end = time.monotonic() + timeout
        while not all_gone() and time.monotonic() < end:
            time.sleep(0.1)
        if not all_gone():
            signal_all(signal.SIGKILL)
            end = time.monotonic() + 10
            while not all_gone() and time.monotonic() < end:
                time.sleep(0.1)
        # Groups whose leader ended on SIGTERM may still hold members.
        for s in services:
            try:
                os.killpg(s.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                s.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    # -- logs -----------------------------------------------------------------

    def _section(self, path: Path, lines: int = LOG_TAIL_LINES) -> str:
        return f"----- {path.name} (last {lines} lines) -----\n{tail(path, lines)}\n"

    def logs_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The tail of every service log, and of the newest dag-processor file logs."""
        parts = []
        for path in [self.home / "db-migrate.log", *(self.home / f"{n}.log" for n in SERVICES)]:
            if path.exists():
                parts.append(self._section(path, lines))
        processor_logs = sorted(
            (self.home / "logs" / "dag_processor").rglob("*.log"),
            key=lambda p: p.stat().st_mtime,
        )
        for path in processor_logs[-3:]:
            parts.append(self._section(path, 20))
        for s in self._services:
            if s.proc.poll() is not None:
                parts.insert(0, f"!!! {s.name} exited with code {s.proc.returncode}\n")
        return "".join(parts)

    def task_logs_tail(self, dag_id: str, run_id: str, lines: int = 30) -> str:
        """The tail of each task log of one run (newest attempt of each task)."""
        run_dir = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        parts = []
        for path in sorted(run_dir.rglob("*.log")):
            parts.append(f"----- {path.relative_to(run_dir)} -----\n{tail(path, lines)}\n")
        return "".join(parts) or f"(no task logs under {run_dir})\n"

    def report(self, dag_id: str | None = None, run_id: str | None = None) -> str:
        """What to print when a test fails: run and task states and every log tail."""
        parts = []
        if dag_id and run_id:
            try:
                parts.append(f"run {dag_id}/{run_id} state: {self.run_state(dag_id, run_id)}\n")
                for ts in self.task_states(dag_id, run_id):
                    parts.append(f"  {ts.task_id}[{ts.map_index}] {ts.state} try {ts.try_number}\n")
            except Exception as e:  # the report must not hide the failure it reports
                parts.append(f"(cannot read the run's state: {e})\n")
            parts.append(self.task_logs_tail(dag_id, run_id))
        parts.append(self.logs_tail())
        return "".join(parts)

    def fail(self, message: str, dag_id: str | None = None, run_id: str | None = None):
        """Raise :class:`AirflowServiceError` with ``message`` and :meth:`report`."""
        raise AirflowServiceError(f"{message}\n{self.report(dag_id, run_id)}")

    # -- waiting ------------------------------------------------------------

    def _check_alive(self) -> None:
        for s in self._services:
            if s.proc.poll() is not None:
                self.fail(f"airflow {s.name} exited with code {s.proc.returncode}")

    def wait_for(
        self,
        what: str,
        check: Callable[[], Any],
        timeout: float,
        interval: float = 0.25,
        dag_id: str | None = None,
        run_id: str | None = None,
    ) -> Any:
        """:func:`wait_for`, failing with the logs when ``timeout`` seconds
        pass or a service ends. ``check`` may raise
        :class:`AirflowServiceError` (say, the api-server is not up yet); the
        last such error goes into the message.
        """
        last_error: Exception | None = None

        def attempt() -> Any:
            nonlocal last_error
            self._check_alive()
            try:
                return check()
            except _Fatal:
                raise
            except AirflowServiceError as e:
                last_error = e
                return None

        def fail(message: str) -> None:
            self.fail(message + (f" (last error: {last_error})" if last_error else ""), dag_id, run_id)

        return wait_for(what, attempt, timeout, interval, fail)

    def _wait_healthy(self, deadline: float) -> None:
        def healthy() -> bool:
            health = self.api("GET", "/api/v2/monitor/health")
            return all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        self.wait_for(
            "the api-server and every service to report healthy",
            healthy,
            timeout=max(1.0, deadline - time.monotonic()),
            interval=0.5,
        )

    def _dag_files(self) -> set[str]:
        """The files, relative to the DAGs folder, that Airflow's safe mode parses."""
        files = set()
        for path in self.dags_folder.rglob("*.py"):
            try:
                text = path.read_text(errors="replace").lower()
            except OSError:
                continue
            if "airflow" in text and "dag" in text:
                files.add(str(path.relative_to(self.dags_folder)))
        return files

    def _relative(self, fileloc: str) -> str:
        try:
            return str(Path(fileloc).resolve().relative_to(self.dags_folder))
        except ValueError:
            return fileloc

    def _wait_parsed(self, deadline: float) -> None:
        want_files = self._dag_files() if self.dag_ids is None else set()

        def parsed() -> bool:
            dags = self.dags()
            errors = self.import_errors()
            if errors and not self.allow_import_errors:
                raise _ImportErrors(
                    "import errors in the DAG files:\n"
                    + "\n".join(f"== {e['filename']}\n{e['stack_trace']}" for e in errors)
                )
            if self.dag_ids is not None:
                return set(self.dag_ids) <= {d["dag_id"] for d in dags}
            seen = {d.get("relative_fileloc") or self._relative(d["fileloc"]) for d in dags}
            seen |= {self._relative(e["filename"]) for e in errors}
            return want_files <= seen

        try:
            self.wait_for(
                f"the DAGs to be parsed ({self.dag_ids or sorted(self._dag_files())})",
                parsed,
                timeout=max(1.0, deadline - time.monotonic()),
                interval=0.5,
            )
        except _ImportErrors as e:
            self.fail(str(e))

    # -- REST API -----------------------------------------------------------

    def api(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Call the api-server's REST API and return the decoded JSON answer.

        Raises :class:`AirflowServiceError` (without logs: callers that give
        up add them) for a connection failure or an answer that is not 2xx.
        """
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:2000]
            raise AirflowServiceError(f"{method} {path}: HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            raise AirflowServiceError(f"{method} {path}: {e}") from None
        return json.loads(raw) if raw else None

    def _paged(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        items: list[dict] = []
        while True:
            page = self.api("GET", path, params={**(params or {}), "limit": 100, "offset": len(items)})
            got = page[key]
            items.extend(got)
            if not got or len(items) >= page["total_entries"]:
                return items

    def dags(self) -> list[dict]:
        """Every DAG the api-server knows (parsed by the dag-processor)."""
        return self._paged("/api/v2/dags", "dags")

    def import_errors(self) -> list[dict]:
        """The import errors of the DAG files, as the REST API gives them."""
        return self._paged("/api/v2/importErrors", "import_errors")

    def _dag_path(self, dag_id: str) -> str:
        return "/api/v2/dags/" + urllib.parse.quote(dag_id, safe="")

    def _run_path(self, dag_id: str, run_id: str) -> str:
        return self._dag_path(dag_id) + "/dagRuns/" + urllib.parse.quote(run_id, safe="")

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG, so that the scheduler runs its runs."""
        try:
            got = self.api("PATCH", self._dag_path(dag_id), body={"is_paused": False}, params={"update_mask": "is_paused"})
        except AirflowServiceError as e:
            self.fail(f"cannot unpause {dag_id}: {e}")
        if got.get("is_paused") is not False:
            self.fail(f"{dag_id} is_paused is {got.get('is_paused')} after unpausing it")

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Create a manual run of ``dag_id`` and return its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id is not None:
            body["dag_run_id"] = run_id
        try:
            got = self.api("POST", self._dag_path(dag_id) + "/dagRuns", body=body)
        except AirflowServiceError as e:
            self.fail(f"cannot trigger {dag_id}: {e}")
        return got["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        """The state of one run: queued, running, success or failed."""
        return self.api("GET", self._run_path(dag_id, run_id))["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 120.0, expect: str | None = None) -> str:
        """Wait until a run has finished and return its final state.

        With ``expect``, a final state other than that raises, with the
        report of the run.
        """

        def finished() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in FINISHED_RUN_STATES else None

        state = self.wait_for(f"run {dag_id}/{run_id} to finish", finished, timeout, 0.5, dag_id, run_id)
        if expect is not None and state != expect:
            self.fail(f"run {dag_id}/{run_id} ended {state}, not {expect}", dag_id, run_id)
        return state

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of a run, as the REST API gives them."""
        return self._paged(self._run_path(dag_id, run_id) + "/taskInstances", "task_instances")

    def task_states(self, dag_id: str, run_id: str) -> list[TaskState]:
        """Every task instance of a run, mapped ones one by one, sorted."""
        tis = self.task_instances(dag_id, run_id)
        return sorted(TaskState(t["task_id"], t["map_index"], t["state"], t["try_number"]) for t in tis)

    def count_states(self, dag_id: str, run_id: str) -> collections.Counter:
        """How many task instances of a run are in each state right now."""
        return collections.Counter(ts.state for ts in self.task_states(dag_id, run_id))

    def wait_states(
        self, dag_id: str, run_id: str, state: str, at_least: int, timeout: float = 60.0
    ) -> int:
        """Wait until at least ``at_least`` task instances of a run are in ``state`` at once."""

        def enough() -> int:
            n = self.count_states(dag_id, run_id)[state]
            return n if n >= at_least else 0

        return self.wait_for(
            f"{at_least} task instances of {dag_id}/{run_id} in state {state} at once",
            enough, timeout, 0.25, dag_id, run_id,
        )

    def deferral_exits_processed(self) -> set[str]:
        """Ids of the task instances whose exit on deferring the scheduler has processed.

        Read from the scheduler's log: it writes one "TaskInstance Finished"
        line per executor event it handles, with the task instance's state.
        """
        done = set()
        try:
            with open(self.home / "scheduler.log", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if "TaskInstance Finished:" not in line:
                        continue
                    ti = _TI_ID.search(line)
                    state = _TI_STATE.search(line)
                    if ti and state and state.group(1) == "deferred":
                        done.add(ti.group(1))
        except OSError:
            pass
        return done

    def wait_deferrals_processed(self, dag_id: str, run_id: str, timeout: float = 60.0) -> None:
        """Wait until the scheduler has handled the exit of every deferred task of a run.

        When a task defers, its worker process ends and the executor reports
        that end as a success of the same try. If the trigger fires and the
        task is queued again before the scheduler has handled that report,
        Airflow 3.3.2 takes the report for the resumed task's, finds the task
        queued or running, and fails it ("finished with state success, but the
        task instance's state attribute is queued"; apache/airflow issues
        66374, 71580 and 72716 are the same race). A test that decides when
        its triggers fire calls this first, so that they fire only once the
        stale reports are handled.
        """

        def processed() -> bool:
            deferred = {t["id"] for t in self.task_instances(dag_id, run_id) if t["state"] == "deferred"}
            return bool(deferred) and deferred <= self.deferral_exits_processed()

        self.wait_for(
            f"the scheduler to handle the deferral exits of {dag_id}/{run_id}",
            processed, timeout, 0.25, dag_id, run_id,
        )

    def sample_states(self, dag_id: str, run_id: str, interval: float = 0.25) -> StateSampler:
        """A :class:`StateSampler` of one run (use it as a context manager)."""
        return StateSampler(self, dag_id, run_id, interval)


_TI_ID = re.compile(r"\bti_id=([0-9a-f-]+)")
_TI_STATE = re.compile(r"(?<![\w])state=(\w+)")


class _Fatal(AirflowServiceError):
    """An error that :meth:`AirflowDeployment.wait_for` does not wait out."""


class _ImportErrors(_Fatal):
    pass


class StateSampler:
    """A thread that counts, over and over, the task instances of a run by state.

    It keeps the largest count seen of each state; :meth:`max` reads it, so
    ``sampler.max("deferred")`` is the most task instances seen deferred at
    the same time. A failure to read is kept and raised again by :meth:`stop`.
    """

    def __init__(self, deployment: AirflowDeployment, dag_id: str, run_id: str, interval: float = 0.25):
        self.deployment = deployment
        self.dag_id = dag_id
        self.run_id = run_id
        self.interval = interval
        self.samples = 0
        self._max: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"sampler-{run_id}", daemon=True)

    def __enter__(self) -> StateSampler:
        self.start()
        return self

    def __exit__(self, exc_type, *rest: object) -> None:
        self.stop(reraise=exc_type is None)

    def start(self) -> None:
        self._thread.start()

    def stop(self, reraise: bool = True) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if reraise and self._error is not None:
            raise AirflowServiceError(
                f"sampling {self.dag_id}/{self.run_id} failed: {self._error}"
            ) from self._error

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                counts = self.deployment.count_states(self.dag_id, self.run_id)
                failures = 0
            except Exception as e:
                # A single slow answer is no reason to stop; many in a row are.
                failures += 1
                if failures >= 20:
                    self._error = e
                    return
            else:
                with self._lock:
                    self.samples += 1
                    for state, n in counts.items():
                        if n > self._max[state]:
                            self._max[state] = n
            self._stop.wait(self.interval)

    def max(self, state: str) -> int:
        """The most task instances seen in ``state`` in one sample."""
        with self._lock:
            return self._max[state]

    @property
    def maxima(self) -> dict[str, int]:
        with self._lock:
            return dict(self._max)
