"""berth-airflow: Airflow operators for Berth.

One deferrable operator per unit of work replaces the EMR create-cluster,
add-steps, step-sensor and terminate-cluster chain: Berth owns the clusters.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


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
        "connection-types": [{"hook-class-name": "berth_airflow.hooks.BerthHook", "connection-type": "berth"}],
    }
