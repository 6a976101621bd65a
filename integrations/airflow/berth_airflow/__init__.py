"""berth-airflow: Airflow operators for Berth.

One deferrable operator per unit of work replaces the EMR create-cluster,
add-steps, step-sensor and terminate-cluster chain: Berth owns the clusters.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["CONNECTION_FIELDS", "CONNECTION_UI", "__version__", "get_provider_info"]


# The connection form, as Airflow 3.3 reads it from the provider's info
# without importing the hook; BerthHook.get_ui_field_behaviour gives the
# same to Airflows that import it.
CONNECTION_UI = {
    "hidden-fields": ["schema", "login"],
    "relabeling": {"host": "Host or URL", "password": "Token"},
    "placeholders": {
        "host": "berth.example.com or https://berth.example.com",
        "port": "8080",
        "password": "the bearer token of the server's config, if it has one",
    },
}
CONNECTION_FIELDS = {
    "scheme": {
        "label": "Scheme",
        "description": "http or https, when the host is not a URL",
        "schema": {"type": ["string", "null"], "enum": ["http", "https", None]},
    },
    "timeout": {"label": "Timeout (seconds) of one call", "schema": {"type": ["number", "null"], "default": 30}},
    "retries": {
        "label": "Retries",
        "description": "of connection errors, timeouts and answers 500, 502, 503 and 504",
        "schema": {"type": ["integer", "null"], "default": 5},
    },
    "verify": {"label": "Verify TLS certificates", "schema": {"type": ["boolean", "null"], "default": True}},
}


def get_provider_info() -> dict:
    """What Airflow's providers manager reads through the
    ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "berth-airflow",
        "name": "Berth",
        "description": "Run Airflow tasks as Berth jobs: Berth queues them, reuses and scales clusters "
        "(AWS EMR and others), and re-runs work interrupted by a lost cluster.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Berth",
                "external-doc-url": "https://github.com/berthhq/berth",
                "tags": ["service"],
            }
        ],
        "operators": [{"integration-name": "Berth", "python-modules": ["berth_airflow.operators"]}],
        "sensors": [{"integration-name": "Berth", "python-modules": ["berth_airflow.sensors"]}],
        "hooks": [{"integration-name": "Berth", "python-modules": ["berth_airflow.hooks"]}],
        "triggers": [{"integration-name": "Berth", "python-modules": ["berth_airflow.triggers"]}],
        "connection-types": [
            {
                "hook-class-name": "berth_airflow.hooks.BerthHook",
                "hook-name": "Berth",
                "connection-type": "berth",
                "ui-field-behaviour": CONNECTION_UI,
                "conn-fields": CONNECTION_FIELDS,
            }
        ],
    }
