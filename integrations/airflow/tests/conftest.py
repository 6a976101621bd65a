"""Fixtures: a real `berth serve` (built from this repository, local
provider) and an Airflow home whose DAGs folder holds the package's example
DAGs and the tests' own.

Airflow reads its configuration when first imported, so the environment is
set here, at import, before any test module imports airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_services import free_loopback_port
from airflow_services import wait_for as poll

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
REPO = PACKAGE.parent.parent
TOKEN = "airflow-test-token"

WORK = Path(tempfile.mkdtemp(prefix="berth-airflow-"))
AIRFLOW_HOME = WORK / "airflow"
DAGS = AIRFLOW_HOME / "dags"
DAGS.mkdir(parents=True)
for src in [*(PACKAGE / "berth_airflow" / "example_dags").glob("example_*.py"), *(HERE / "dags").glob("*.py")]:
    shutil.copy(src, DAGS / src.name)

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # As the test deployment (airflow_services) has them: the triggers'
        # resume hold is 4 s, not 9.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    }
)


def wait_for(what: str, check, timeout: float = 60.0, every: float = 0.1):
    """Polls check() until it returns something truthy, failing the test
    after timeout."""
    return poll(what, check, timeout, every, pytest.fail)


def task_instances(dr):
    """(task_id, map_index, state, try_number) of each task instance of a
    dag.test() run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as s:
        tis = s.query(TaskInstance).filter(TaskInstance.dag_id == dr.dag_id, TaskInstance.run_id == dr.run_id).all()
        return [(ti.task_id, ti.map_index, ti.state, ti.try_number) for ti in tis]


BERTH_CONFIG = """\
listen: 127.0.0.1:{port}
store: sqlite://{dir}/berth.db
token: {token}
pools:
  - {{name: a, provider: local, slots: 1, max_clusters: 1, idle_timeout: 30s, price_per_hour: 2.0, local: {{boot_time: 500ms, dir: {dir}/local}}}}
  - {{name: b, provider: local, slots: 1, max_clusters: 1, idle_timeout: 30s, price_per_hour: 4.0, local: {{boot_time: 500ms, dir: {dir}/local}}}}
  - {{name: c, provider: local, slots: 1, max_clusters: 1, idle_timeout: 30s, price_per_hour: 8.0, local: {{boot_time: 500ms, dir: {dir}/local}}}}
  - {{name: bins, provider: local, slots: 2, max_clusters: 4, idle_timeout: 10s, price_per_hour: 3.0, local: {{boot_time: 500ms, dir: {dir}/local}}}}
"""


def berth_binary(tmp: Path) -> str:
    """The berth binary: BERTH_BIN when the Go test runs these tests, else
    built from the repository."""
    if os.environ.get("BERTH_BIN"):
        return os.environ["BERTH_BIN"]
    out = tmp / "berth"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/berth"], cwd=REPO, check=True)
    return str(out)


class Berth:
    """A `berth serve` of the tests' own, and a plain HTTP client to it for
    the tests' checks (the package under test has its own)."""

    def __init__(self, dir: Path):
        import httpx

        self.dir = dir
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = dir / "berth.yaml"
        self.config.write_text(BERTH_CONFIG.format(port=self.port, dir=dir, token=TOKEN))
        self.log = dir / "berth.log"
        self.binary = berth_binary(dir)
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def start(self) -> None:
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--config", str(self.config)], cwd=self.dir, stdout=out, stderr=subprocess.STDOUT
            )
        proc = self.proc

        def ready():
            if proc.poll() is not None:
                pytest.fail(f"berth serve exited {proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                return self.http.get("/readyz").status_code == 200
            except Exception:
                return False

        wait_for("berth serve to be ready", ready, timeout=60)

    def stop(self) -> None:
        """SIGTERM, as a restart or a deploy would; SIGKILL if it hangs."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def end_work(self) -> None:
        """Cancels every job still live and ends every cluster, waiting for
        both: a local cluster's steps outlive berth serve by design (the
        next one adopts them), and a test's must not outlive the session."""
        for state in ("queued", "running"):
            for j in self.get("/v1/jobs", state=state, limit=1000)["jobs"]:
                self.http.post(f"/v1/jobs/{j['id']}/cancel")

        def settled():
            live = [j for s in ("queued", "running") for j in self.get("/v1/jobs", state=s, limit=1000)["jobs"]]
            return not live

        wait_for("every job to end", settled, timeout=60)
        for c in self.get("/v1/clusters")["clusters"]:
            if c["state"] in ("starting", "ready", "draining"):
                self.http.post(f"/v1/clusters/{c['id']}/terminate")

        def ended():
            return all(c["state"] in ("terminated", "lost") for c in self.get("/v1/clusters")["clusters"])

        wait_for("every cluster to end", ended, timeout=60)

    def get(self, path: str, **params):
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body=None):
        r = self.http.post(path, json=body)
        r.raise_for_status()
        return r.json()

    def cli(self, *args: str) -> str:
        """Runs the berth CLI against this server."""
        cmd = [self.binary, *args[:2], "--server", self.url, "--token", TOKEN, *args[2:]]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    def jobs(self, **labels) -> list[dict]:
        return self.get("/v1/jobs", label=[f"{k}={v}" for k, v in labels.items()], limit=1000)["jobs"]


@pytest.fixture(scope="session")
def berth():
    dir = WORK / "berth"
    dir.mkdir()
    b = Berth(dir)
    os.environ["AIRFLOW_CONN_BERTH_DEFAULT"] = f"berth://:{TOKEN}@127.0.0.1:{b.port}"
    b.start()
    yield b
    try:
        b.end_work()
    finally:
        b.stop()


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database, migrated once for the session."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def dagbag(airflow_db, berth):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag


class Scripted:
    """A loopback HTTP server that answers each request with the next of
    its scripted answers (the last repeats) and records what it got."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[tuple[str, str, dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_one(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                answer = outer.answers[min(len(outer.requests), len(outer.answers)) - 1]
                status, payload, delay = (answer + (0,))[:3]
                if delay:
                    threading.Event().wait(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def make(*answers):
        s = Scripted(*answers)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0:
        shutil.rmtree(WORK, ignore_errors=True)
    else:
        print(f"\nkept the test files in {WORK}", file=sys.stderr)
