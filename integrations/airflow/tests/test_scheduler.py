"""The bins example under a real Airflow: api-server, scheduler,
dag-processor and triggerer, LocalExecutor with two worker slots.

Each bin reads a named pipe, so its Berth job runs until the test writes to
the pipe: the test sees every mapped task deferred at once before any job
can end, whatever the machine's speed.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from airflow_services import AirflowDeployment
from conftest import PACKAGE, wait_for

DAG_ID = "berth_bins"
BINS = 6
SLOTS = 2


def feed(pipes: list[Path], lines: int) -> None:
    """Writes to each pipe; an open for writing waits for the bin's reader."""
    errors: list[BaseException] = []

    def write(p: Path):
        try:
            with open(p, "w") as f:
                f.write("x\n" * lines)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(p,), daemon=True) for p in pipes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads), (errors, "a bin never opened its input")


def pipes_in(dir: Path, n: int) -> list[Path]:
    dir.mkdir()
    pipes = [dir / f"part-{i}" for i in range(n)]
    for p in pipes:
        os.mkfifo(p)
    return pipes


@pytest.fixture(scope="module")
def airflow(berth, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deployment")
    dags = tmp / "dags"
    dags.mkdir()
    shutil.copy(PACKAGE / "berth_airflow" / "example_dags" / "example_berth_bins.py", dags)
    env = {
        "AIRFLOW_CONN_BERTH_DEFAULT": os.environ["AIRFLOW_CONN_BERTH_DEFAULT"],
        "AIRFLOW__CORE__PARALLELISM": str(SLOTS),
    }
    with AirflowDeployment(tmp / "home", dags, env, dag_ids=[DAG_ID]) as af:
        af.unpause(DAG_ID)
        yield af


def test_bins_wait_in_the_triggerer(airflow, berth, tmp_path: Path):
    af = airflow
    inputs = tmp_path / "input"
    pipes = pipes_in(inputs, BINS)
    run_id = af.trigger(DAG_ID, conf={"input": str(inputs)})
    with af.sample_states(DAG_ID, run_id) as sampler:
        # Every bin deferred at once on two worker slots, and every
        # Berth job running at once: the pool scaled out to the queue.
        af.wait_states(DAG_ID, run_id, "deferred", at_least=BINS, timeout=180)
        running = wait_for(
            "every bin's job to run",
            lambda: (js := berth.jobs(dag_id=DAG_ID, run_id=run_id, task_id="bin"))
            and len(js) == BINS
            and all(j["state"] == "running" for j in js)
            and js,
            timeout=60,
        )
        af.wait_deferrals_processed(DAG_ID, run_id, timeout=60)
        feed(pipes, lines=3)
        state = af.wait_run(DAG_ID, run_id, timeout=180)
    report = af.report(DAG_ID, run_id)
    assert state == "success", report
    tasks = af.task_states(DAG_ID, run_id)
    pools = {t["pool"] for t in af.task_instances(DAG_ID, run_id)}

    bins = [t for t in tasks if t.task_id == "bin"]
    assert [t.map_index for t in bins] == list(range(BINS)), report
    assert all(t.state == "success" and t.try_number == 1 for t in tasks), report
    assert sampler.max("deferred") >= BINS and sampler.max("running") <= SLOTS, sampler.maxima
    assert pools == {"default_pool"}, "no Airflow pool of its own is needed"
    clusters = {j["cluster_id"] for j in running}
    assert 3 <= len(clusters) <= 4, f"6 jobs on a pool of 2 slots a cluster, at most 4 clusters, ran on {clusters}"
    jobs = berth.jobs(dag_id=DAG_ID, run_id=run_id, task_id="bin")
    assert all(j["state"] == "succeeded" and len(j["attempts"]) == 1 for j in jobs)
    outputs = sorted(berth.get(f"/v1/jobs/{j['id']}/logs")["stdout"] for j in jobs)
    assert outputs == sorted(f"3 lines in {p}\n" for p in pipes)
    (merge,) = berth.jobs(dag_id=DAG_ID, run_id=run_id, task_id="merge")
    assert berth.get(f"/v1/jobs/{merge['id']}/logs")["stdout"] == f"merging {BINS} bins\n"


def test_a_deferred_task_marked_failed_cancels_its_job(airflow, berth, tmp_path: Path):
    """A user marks a deferred bin failed: the triggerer calls the trigger's
    on_kill, which cancels the Berth job and its step."""
    af = airflow
    (pipe,) = pipes_in(tmp_path / "input", 1)
    run_id = af.trigger(DAG_ID, conf={"input": str(pipe.parent)})
    af.wait_states(DAG_ID, run_id, "deferred", at_least=1, timeout=180)
    (job,) = wait_for("the bin's job", lambda: berth.jobs(dag_id=DAG_ID, run_id=run_id, task_id="bin"), timeout=60)
    af.wait_deferrals_processed(DAG_ID, run_id, timeout=60)

    # Airflow tells a trigger of the user's action only once the triggerer
    # runs it (before that, nothing is told, and the job runs on): wait for
    # its first words in its log.
    logs = af.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=bin" / "map_index=0"

    def trigger_running():
        return any(f"Waiting for Berth job {job['id']}" in p.read_text() for p in logs.glob("attempt=1.log.trigger.*"))

    wait_for("the trigger to run in the triggerer", trigger_running, timeout=60)
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/bin/0"
    af.api("PATCH", path, body={"new_state": "failed"}, params={"update_mask": "new_state"})

    def cancelled():
        j = berth.get(f"/v1/jobs/{job['id']}")
        return j if j["state"] == "cancelled" else None

    j = wait_for(f"job {job['id']} to be cancelled", cancelled, timeout=90)
    assert [a["reason"] for a in j["attempts"]] == ["cancelled"], j["attempts"]
    assert af.wait_run(DAG_ID, run_id, timeout=120) == "failed"


def test_the_ui_offers_the_berth_connection_type(airflow):
    """The api-server serves the connection form of type berth, with the
    hook's labels: connections can be made in the UI."""
    (meta,) = [m for m in airflow.api("GET", "/ui/connections/hook_meta") if m["connection_type"] == "berth"]
    assert meta["hook_name"] == "Berth"
    fields = meta["standard_fields"]
    assert fields["host"]["title"] == "Host or URL" and fields["password"]["title"] == "Token"
    assert fields["url_schema"]["hidden"] and fields["login"]["hidden"]
    assert set(meta["extra_fields"]) == {"scheme", "timeout", "retries", "verify"}
