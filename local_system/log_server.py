"""Airflow's worker log server on 127.0.0.1 only: Airflow 3.3.2 binds it to every interface (`airflow.utils.
serve_logs`, no setting), so the local system runs its scheduler and workers with --skip-serve-logs and this in
their place, on `[logging] worker_log_server_port`; `[core] hostname_callable` names the task hosts 127.0.0.1,
where the api-server then asks for the logs of running tasks.

    python -m local_system.log_server
"""

from __future__ import annotations


def hostname() -> str:
    """The host name of every Airflow process of the local system: one machine, served on its loopback."""
    return "127.0.0.1"


def main() -> None:
    import uvicorn
    from airflow.configuration import conf

    uvicorn.run(
        "airflow.utils.serve_logs.log_server:get_app",
        factory=True,
        host="127.0.0.1",
        port=conf.getint("logging", "worker_log_server_port"),
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
