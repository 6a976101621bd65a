"""berth-airflow is a normal Airflow provider."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import sys
from importlib import metadata
from pathlib import Path


def test_entry_point_names_this_distribution():
    (ep,) = [e for e in metadata.entry_points(group="apache_airflow_provider") if e.value.startswith("berth_airflow")]
    info = ep.load()()
    assert ep.dist.name == info["package-name"] == "berth-airflow"
    assert info["versions"][0] == ep.dist.version
    (ct,) = info["connection-types"]
    assert (ct["hook-class-name"], ct["connection-type"], ct["hook-name"]) == ("berth_airflow.hooks.BerthHook", "berth", "Berth")


def test_providers_manager_registers_the_connection_type():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "berth-airflow" in ProvidersManager().providers
    hook = ProvidersManagerTaskRuntime().hooks["berth"]
    assert hook is not None and hook.hook_class_name == "berth_airflow.hooks.BerthHook"
    assert hook.connection_id_attribute_name == "berth_conn_id"


def test_airflow_providers_list_shows_it(airflow_db):
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run([str(airflow), "providers", "list"], capture_output=True, text=True, env=os.environ.copy(), check=True).stdout
    (line,) = [l for l in out.splitlines() if "berth-airflow" in l]
    assert "0.1.0" in line


def test_everything_is_importable():
    from berth_airflow.hooks import BerthHook
    from berth_airflow.operators import BerthJobOperator
    from berth_airflow.sensors import BerthJobSensor
    from berth_airflow.triggers import BerthJobTrigger

    assert BerthHook.conn_type == "berth"
    assert {"berth_pool", "steps", "affinity", "labels"} <= set(BerthJobOperator.template_fields)
    assert BerthJobSensor.template_fields == ("job_id",)
    classpath, kwargs = BerthJobTrigger(job_id="job-1").serialize()
    assert classpath == "berth_airflow.triggers.BerthJobTrigger" and BerthJobTrigger(**kwargs).job_id == "job-1"


def test_the_installed_package_is_this_source():
    """The tests import the source; this shows the copy pip installed into
    the venv (what Airflow's processes would load without the source on the
    path) is the same, so that what passed here is what a user installs."""
    from conftest import PACKAGE

    dist = metadata.distribution("berth-airflow")
    source = PACKAGE / "berth_airflow"
    # An editable install (PEP 610's direct_url.json says so) is the source.
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        assert Path(urllib.parse.urlparse(direct["url"]).path).resolve() == PACKAGE.resolve()
        return
    installed = {
        Path(str(f)): f
        for f in dist.files or []
        if str(f).startswith("berth_airflow/") and str(f).endswith(".py") and Path(dist.locate_file(f)).exists()
    }
    want = {p.relative_to(PACKAGE) for p in source.rglob("*.py")}
    assert set(installed) == want, "installed files differ from the source: reinstall with .ci/run"
    for rel, f in installed.items():
        assert Path(dist.locate_file(f)).read_bytes() == (PACKAGE / rel).read_bytes(), (
            f"the installed {rel} differs from the source: reinstall with .ci/run"
        )
