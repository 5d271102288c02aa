"""An auth manager for the test stacks: Airflow's SimpleAuthManager, except that the user `outsider` (a viewer) may
read no DAG, so that a test can show what a user without access to a DAG gets."""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

OUTSIDER = "outsider"
SETTINGS = {
    "AIRFLOW__CORE__AUTH_MANAGER": f"{__name__}.OutsiderAuthManager",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{OUTSIDER}:viewer",
}


class OutsiderAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if user.get_name() == OUTSIDER:
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
