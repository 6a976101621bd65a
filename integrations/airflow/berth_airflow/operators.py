"""BerthJobOperator: one task, one Berth job, whichever cluster runs it."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Sequence, Sized
from datetime import timedelta
from typing import Any

try:  # Airflow 3
    from airflow.sdk import BaseOperator, XComArg
    from airflow.sdk.exceptions import AirflowException, AirflowTaskTimeout
except ImportError:  # pragma: no cover - Airflow 2
    from airflow.exceptions import AirflowException, AirflowTaskTimeout
    from airflow.models import BaseOperator
    from airflow.models.xcom_arg import XComArg

from berth_airflow.hooks import ACTIVE_STATES, DEFAULT_CONN_ID, BerthError, BerthHook
from berth_airflow.triggers import DEFAULT_POLL, BerthJobTrigger

# The key under which a task instance keeps its Berth job's id across
# tries, in Airflow 3.3's task state store (AIP-103) and in XCom.
JOB_ID_KEY = "berth_job_id"

# Labels every job carries, so that `berth jobs ls --label dag_id=...`
# finds a DAG's work and a retried task instance finds its job.
TASK_LABELS = ("dag_id", "task_id", "run_id", "map_index")


def go_duration(value: Any) -> str | None:
    """A timeout as Berth reads it: a Go duration string."""
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError(f"timeout must be positive, got {value}")
        return f"{int(value)}s" if float(value).is_integer() else f"{value}s"
    return str(value)


def normalize_steps(steps: Any) -> list[dict[str, Any]]:
    """Steps as the API takes them, from a list of step dicts, one step dict
    or a plain list of args for one step."""
    if isinstance(steps, dict):
        return [dict(steps)]
    if isinstance(steps, list | tuple) and steps:
        if all(isinstance(s, str | int | float) for s in steps):
            return [{"args": [str(s) for s in steps]}]
        if all(isinstance(s, dict) for s in steps):
            return [dict(s) for s in steps]
    raise ValueError(
        "steps must be a list of step dicts such as [{'name': 'x', 'args': ['spark-submit', ...]}] "
        f"or a list of arguments for one step, got {steps!r}"
    )


def task_labels(context: Any) -> dict[str, str]:
    ti = context["ti"]
    map_index = getattr(ti, "map_index", None)
    return {
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "run_id": ti.run_id,
        "map_index": str(-1 if map_index is None else map_index),
    }


# Berth's limits on an idempotency key and a job name, in bytes.
MAX_KEY_BYTES = 512
MAX_NAME_BYTES = 256

# Berth's limits on a job's then list: hints, and jobs in one hint.
MAX_HINTS = 16
MAX_HINT_JOBS = 10_000


def base_key(context: Any) -> str:
    """The idempotency key of a task instance's first job: the same on
    every try, so that a retry finds the job instead of starting another.
    Airflow's ids may be 250 characters each; a key too long for Berth
    (with room for a try suffix) is a digest of them instead."""
    lb = task_labels(context)
    key = "airflow/" + "/".join(lb[k] for k in TASK_LABELS)
    if len(key.encode()) > MAX_KEY_BYTES - 16:
        key = "airflow/sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def clip(s: str, limit: int) -> str:
    """s cut to at most limit bytes of UTF-8, on a character boundary."""
    return s.encode()[:limit].decode(errors="ignore")


def summary(job: dict[str, Any]) -> dict[str, Any]:
    """What a task returns (XCom) for a job that ended."""
    attempts = job.get("attempts") or []
    clusters: list[str] = []
    for a in attempts:
        if a.get("cluster_id") and a["cluster_id"] not in clusters:
            clusters.append(a["cluster_id"])
    return {
        "job_id": job["id"],
        "state": job["state"],
        "pool": job.get("pool"),
        "clusters": clusters,
        "attempts": len(attempts),
        "attempt_reasons": [a.get("reason") for a in attempts],
        "cost": job.get("cost", 0.0),
    }


def failure_message(job: dict[str, Any], logs: dict[str, Any] | None) -> str:
    """Why a job failed, from its last attempt, and where its logs are:
    "Berth job J failed after 2 attempt(s), the last step_failed: step 0
    (transform): exited with code 1. Logs: s3://..."."""
    attempts = job.get("attempts") or []
    out = f"Berth job {job['id']} {job['state']}"
    reason = job.get("reason")
    if attempts:
        last = attempts[-1]
        if reason and reason != last.get("reason"):
            out += f" ({reason})"
        out += f" after {len(attempts)} attempt(s), the last {last.get('reason') or last.get('state')}"
        failed = [st for st in last.get("steps") or [] if st.get("state") == "failed" or st.get("message")]
        if failed:
            st = failed[-1]
            steps = job.get("steps") or []
            name = steps[st["index"]].get("name") if st.get("index") is not None and st["index"] < len(steps) else None
            detail = st.get("message") or (f"exit code {st['exit_code']}" if st.get("exit_code") is not None else "")
            out += f": step {st.get('index')}" + (f" ({name})" if name else "") + (f": {detail}" if detail else "")
    elif reason:
        out += f" ({reason})"
    where = (logs or {}).get("location")
    return out + (f". Logs: {where}" if where else f". Logs: berth jobs logs {job['id']}")


def merge_hints(hints: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """A then list as Berth takes it, from (pool, jobs) pairs: one hint per
    pool with its jobs summed, in pool order, so that every try of a task
    submits the same spec whatever order Airflow lists its tasks in; and
    within Berth's limits, so that advice never fails a submission."""
    jobs: dict[str, int] = {}
    for pool, n in hints:
        jobs[pool] = jobs.get(pool, 0) + n
    return [{"pool": p, "jobs": min(jobs[p], MAX_HINT_JOBS)} for p in sorted(jobs)][:MAX_HINTS]


def normalize_then(then: Any) -> list[dict[str, Any]]:
    """An explicit then list as the API takes it, from hint dicts
    (``{"pool": "b", "jobs": 2}``; jobs 1 when left out) or pool names. It
    goes to Berth as given: Berth checks it, and a mistake fails the task."""
    if not isinstance(then, list | tuple):
        raise ValueError(f"then must be a list of hints such as [{{'pool': 'b', 'jobs': 2}}] or of pool names, got {then!r}")
    out = []
    for h in then:
        if isinstance(h, str):
            out.append({"pool": h, "jobs": 1})
        elif isinstance(h, dict):
            out.append({"jobs": 1, **h})
        else:
            raise ValueError(f"a hint is a dict such as {{'pool': 'b', 'jobs': 2}} or a pool name, got {h!r}")
    return out


class BerthJobOperator(BaseOperator):
    """Runs one Berth job and waits for it: the unit of work, not the cluster.

    Replaces EmrCreateJobFlowOperator, EmrAddStepsOperator, EmrStepSensor and
    EmrTerminateJobFlowOperator: Berth picks or starts the cluster, replaces
    it when it is lost and runs the job again, and ends clusters that idle.

    :param berth_pool: the Berth pool (cluster shape) to run on. Airflow's own
        ``pool`` keeps its Airflow meaning.
    :param steps: a list of step dicts as in Berth's API
        (``{"name", "args", "jar", "main_class", "properties", "env", "dir"}``),
        or a plain list of arguments for one step.
    :param name: the job's name (default: dag_id/task_id[/map_index]).
    :param affinity: jobs with the same key prefer the cluster that last ran
        one of them, e.g. ``"{{ run_id }}"`` for a DAG run's phases.
    :param affinity_required: run only on that cluster.
    :param priority: higher runs first.
    :param job_retries: Berth's retries of step failures and timeouts. A lost
        cluster is never charged to them: see ``max_infra_retries``.
        Airflow's ``retries`` keep their Airflow meaning.
    :param max_infra_retries: how many lost clusters the job survives (Berth's
        default 5).
    :param timeout: Berth's limit on one attempt (timedelta, seconds or a Go
        duration string).
    :param resume: ``"from_start"`` (default) or ``"unfinished"``: where a job
        starts again after its cluster was lost.
    :param labels: more labels; ``dag_id``, ``task_id``, ``run_id`` and
        ``map_index`` are added unless given here.
    :param execution_role_arn: EMR's runtime role for the job's steps.
    :param then: the work that follows the job, so that Berth can have its
        clusters ready: a list of ``{"pool", "jobs"}`` hints or pool names.
        By default it comes from the DAG: one hint per direct downstream
        BerthJobOperator, on its ``berth_pool``, for one job, or for a
        mapped one (``.partial().expand()``) for as many as it will have
        when that is known already. ``then=[]`` sends none.
    :param idempotency_key: overrides the key derived from the task instance.
    :param berth_conn_id: the Airflow connection of type ``berth``.
    :param deferrable: wait in the triggerer (default) rather than in a worker.
    :param poll_interval: the longest one long poll waits, in seconds.

    Returns (XCom) ``{"job_id", "state", "pool", "clusters", "attempts",
    "attempt_reasons", "cost"}``. A retried task instance reattaches to its
    job when that job is queued, running or succeeded; it submits a new one
    only when the last ended failed or cancelled.
    """

    template_fields: Sequence[str] = (
        "berth_pool",
        "steps",
        "name",
        "affinity",
        "labels",
        "idempotency_key",
        "execution_role_arn",
        "then",
    )
    template_fields_renderers = {"steps": "json", "labels": "json"}
    ui_color = "#d7ecf7"

    def __init__(
        self,
        *,
        berth_pool: str,
        steps: Any,
        name: str | None = None,
        affinity: str | None = None,
        affinity_required: bool = False,
        priority: int = 0,
        job_retries: int = 0,
        max_infra_retries: int | None = None,
        timeout: Any = None,
        resume: str | None = None,
        labels: dict[str, str] | None = None,
        execution_role_arn: str | None = None,
        then: list[Any] | None = None,
        idempotency_key: str | None = None,
        berth_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = True,
        poll_interval: float = DEFAULT_POLL,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.berth_pool = berth_pool
        self.steps = steps
        self.name = name
        self.affinity = affinity
        self.affinity_required = affinity_required
        self.priority = priority
        self.job_retries = job_retries
        self.max_infra_retries = max_infra_retries
        self.timeout = timeout
        self.resume = resume
        self.labels = labels
        self.execution_role_arn = execution_role_arn
        self.then = then
        self.idempotency_key = idempotency_key
        self.berth_conn_id = berth_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self._job_id: str | None = None

    def hook(self) -> BerthHook:
        return BerthHook(self.berth_conn_id)

    # --- the job ------------------------------------------------------------

    def job_spec(self, context: Any) -> dict[str, Any]:
        """The submission, without its idempotency key."""
        labels = task_labels(context)
        labels.update({k: str(v) for k, v in (self.labels or {}).items()})
        ti = context["ti"]
        map_index = getattr(ti, "map_index", None)
        name = self.name or clip(
            f"{ti.dag_id}/{ti.task_id}" + (f"/{map_index}" if map_index is not None and map_index >= 0 else ""), MAX_NAME_BYTES
        )
        spec: dict[str, Any] = {
            "pool": self.berth_pool,
            "name": name,
            "steps": normalize_steps(self.steps),
            "labels": labels,
        }
        optional = {
            "priority": self.priority or None,
            "affinity": self.affinity or None,
            "affinity_required": self.affinity_required or None,
            "retries": self.job_retries or None,
            "max_infra_retries": self.max_infra_retries,
            "timeout": go_duration(self.timeout),
            "resume": self.resume or None,
            "execution_role_arn": self.execution_role_arn or None,
        }
        spec.update({k: v for k, v in optional.items() if v is not None})
        then = self.then_hints(context)
        if then:
            spec["then"] = then
        return spec

    def then_hints(self, context: Any) -> list[dict[str, Any]]:
        """The job's then list: the explicit ``then``, else one hint for
        each direct downstream BerthJobOperator whose pool this task can
        tell (see :meth:`downstream_hint`)."""
        if self.then is not None:
            return normalize_then(self.then)
        if not self.has_dag():  # an operator on its own has no relatives
            return []
        hints = []
        for task in sorted(self.get_direct_relatives(upstream=False), key=lambda t: t.task_id):
            hint = self.downstream_hint(task, context)
            if hint is not None:
                hints.append(hint)
        return merge_hints(hints)

    def downstream_hint(self, task: Any, context: Any) -> tuple[str, int] | None:
        """(pool, jobs) for a downstream task; None when it is no Berth job
        or its pool cannot be told here (mapped over pools, or templated
        with what only its own run knows), or a mapped task that will have
        no instance. A mapped task counts its instances when they are known
        (see :meth:`mapped_count`), else 1."""
        if isinstance(task, BerthJobOperator):
            value, jobs = task.berth_pool, 1
        elif is_mapped_berth_job(task):
            count = self.mapped_count(task, context)
            if "berth_pool" not in task.partial_kwargs or count == 0:
                return None
            value, jobs = task.partial_kwargs["berth_pool"], count or 1
        else:
            return None
        try:
            # This task's context stands in for the downstream's: the same
            # DAG run, params and macros.
            pool = self.render_template(value, context)
        except Exception as e:
            self.log.info("No then hint for %s: its berth_pool %r does not render here: %s", task.task_id, value, e)
            return None
        if not isinstance(pool, str) or not pool:
            return None
        return pool, jobs

    def mapped_count(self, task: Any, context: Any) -> int | None:
        """How many instances a mapped task will have, when this task can
        say: what it expands over is literal, or the XCom of tasks upstream
        of this one, which have run before it, so that every try of this
        task counts the same. None otherwise: it maps over this task's own
        result, or that of a task that may not have run yet."""
        upstream = self.get_flat_relative_ids(upstream=True)

        def length(arg: Any) -> int | None:
            if isinstance(arg, XComArg):
                refs = [op for op, _ in arg.iter_references()]
                if not refs or any(
                    op.task_id not in upstream or op.is_mapped or op.get_closest_mapped_task_group() is not None for op in refs
                ):
                    return None
                arg = arg.resolve(context)
            if isinstance(arg, str) or not isinstance(arg, Sized):
                return None
            return len(arg)

        try:
            value = task.expand_input.value
            if isinstance(value, dict):
                # expand(): the cross product of what each argument maps over.
                lengths = [length(v) for v in value.values()]
                return None if not lengths or None in lengths else math.prod(lengths)
            return length(value)  # expand_kwargs()
        except Exception as e:
            self.log.info("Counting %s's mapped instances failed; its then hint says 1 job: %s", task.task_id, e)
            return None

    def _prior_job(self, context: Any, hook: BerthHook, spec: dict[str, Any], base: str) -> dict[str, Any] | None:
        """The newest job an earlier try of this task instance submitted."""

        def ours(job: dict[str, Any]) -> bool:
            key = job.get("idempotency_key") or ""
            return key == base or key.startswith(base + "/try-")

        store = context.get("task_state_store")
        if store is not None:
            try:
                job_id = store.get(JOB_ID_KEY)
            except Exception as e:  # an experimental store must not fail the task
                self.log.warning("Could not read the task state store: %s", e)
                job_id = None
            if job_id:
                try:
                    job = hook.get_job(job_id)
                    if ours(job):
                        return job
                except BerthError as e:
                    if e.status != 404:
                        raise
        labels = {k: v for k, v in spec["labels"].items() if k in TASK_LABELS}
        for job in hook.list_jobs(labels=labels, limit=50):
            if ours(job):
                return job
        return None

    def find_or_submit(self, context: Any) -> dict[str, Any]:
        """The job this try waits for: the earlier try's when it is queued,
        running or succeeded, else a new one."""
        hook = self.hook()
        spec = self.job_spec(context)
        base = self.idempotency_key or base_key(context)
        prior = self._prior_job(context, hook, spec, base)
        if prior is not None and prior["state"] not in ("failed", "cancelled"):
            self.log.info("Reattaching to Berth job %s (%s), submitted by an earlier try", prior["id"], prior["state"])
            job = prior
        else:
            try_key = f"{base}/try-{context['ti'].try_number}"
            keys = [try_key] if prior is not None else [base, try_key]
            for key in keys:
                try:
                    job, created = self._submit(hook, {**spec, "idempotency_key": key})
                except BerthError as e:
                    # The first key names a job this lookup did not find, with
                    # another spec: an earlier try's, so a new key is due.
                    if e.code == "conflict" and key != try_key:
                        continue
                    raise
                if not created and key != try_key and job["state"] in ("failed", "cancelled"):
                    continue
                self.log.info(
                    "%s Berth job %s on pool %s", "Submitted" if created else "Found", job["id"], job["pool"]
                )
                break
        self._job_id = job["id"]
        self._remember(context, job["id"])
        return job

    def _submit(self, hook: BerthHook, spec: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Submits spec. The then hints taken from the DAG are advice: when
        Berth refuses one (a downstream task's pool it does not have, or a
        pool that renders otherwise in that task's own run), the job goes
        without them rather than failing a task whose own job is sound.
        Hints given with ``then=`` are the task's to get right."""
        try:
            return hook.submit(spec)
        except BerthError as e:
            if self.then is not None or "then" not in spec or e.status != 422 or not e.message.startswith("then["):
                raise
            self.log.warning("Berth refused the then hints %s (%s); submitting the job without them", spec["then"], e.message)
            return hook.submit({k: v for k, v in spec.items() if k != "then"})

    def _remember(self, context: Any, job_id: str) -> None:
        store = context.get("task_state_store")
        if store is not None:
            try:
                store.set(JOB_ID_KEY, job_id)
            except Exception as e:
                self.log.warning("Could not write the task state store: %s", e)
        try:
            context["ti"].xcom_push(key=JOB_ID_KEY, value=job_id)
        except Exception as e:
            self.log.warning("Could not push the job id to XCom: %s", e)

    # --- Airflow's side ------------------------------------------------------

    def _deadline(self, context: Any) -> float | None:
        """When execution_timeout runs out, as a Unix time. Airflow does not
        apply it to a deferred task; the trigger does."""
        if not self.execution_timeout:
            return None
        start = getattr(context["ti"], "start_date", None)
        t0 = start.timestamp() if start is not None else time.time()
        return t0 + self.execution_timeout.total_seconds()

    def execute(self, context: Any) -> dict[str, Any]:
        job = self.find_or_submit(context)
        if job["state"] in ACTIVE_STATES:
            if self.deferrable:
                self.defer(
                    trigger=BerthJobTrigger(
                        job_id=job["id"],
                        berth_conn_id=self.berth_conn_id,
                        poll=self.poll_interval,
                        deadline=self._deadline(context),
                    ),
                    method_name="execute_complete",
                )
            job = self.hook().wait(job["id"], poll=self.poll_interval)
        return self.finish(job)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        self._job_id = event.get("job_id")
        if event.get("status") == "timeout":
            raise AirflowTaskTimeout(f"Berth job {event['job_id']} cancelled: execution_timeout {self.execution_timeout} passed")
        if event.get("status") != "ended":
            raise AirflowException(event.get("message") or f"waiting for Berth job {event.get('job_id')} failed")
        return self.finish(event["job"])

    def finish(self, job: dict[str, Any]) -> dict[str, Any]:
        """The task's result for a job that ended: its summary, or an error."""
        if job["state"] == "succeeded":
            out = summary(job)
            self.log.info(
                "Berth job %s succeeded on %s after %d attempt(s), cost %.4f",
                job["id"], ", ".join(out["clusters"]) or "-", out["attempts"], out["cost"],
            )
            return out
        logs = None
        try:
            logs = self.hook().logs(job["id"])
            if logs.get("stderr"):
                self.log.error("stderr of the failed step (end):\n%s", logs["stderr"][-4000:])
        except BerthError as e:
            self.log.info("No logs for Berth job %s: %s", job["id"], e.message)
        raise AirflowException(failure_message(job, logs))

    def on_kill(self) -> None:
        """Cancels the Berth job, and with it the step on its cluster."""
        if not self._job_id:
            return
        try:
            BerthHook(self.berth_conn_id, retries=2).cancel(self._job_id)
            self.log.info("Cancelled Berth job %s", self._job_id)
        except BerthError as e:
            if e.code != "conflict":
                self.log.warning("Could not cancel Berth job %s: %s", self._job_id, e)


def is_mapped_berth_job(task: Any) -> bool:
    """Whether task is a mapped BerthJobOperator (``.partial().expand()``)."""
    cls = getattr(task, "operator_class", None)
    return bool(getattr(task, "is_mapped", False)) and isinstance(cls, type) and issubclass(cls, BerthJobOperator)
