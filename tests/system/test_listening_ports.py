"""Airflow as the local system runs it listens on this machine's loopback only: the api-server and the log server
of the tasks' logs (Airflow's own would listen on every interface)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from tests.system.harness import TEST_AIRFLOW_PORT


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on `port`, from /proc/net/tcp and tcp6."""
    addresses = set()
    for table, size in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state == "0A" and int(local_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # the kernel writes each 32-bit word in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
                addresses.add(str(ipaddress.ip_address(words)))
    return addresses


def test_the_api_server_and_the_log_server_listen_on_127_0_0_1_only(airflow_stack):
    assert listening_addresses(TEST_AIRFLOW_PORT) == {"127.0.0.1"}
    assert listening_addresses(TEST_AIRFLOW_PORT + 1) == {"127.0.0.1"}, "the log server of the tasks' logs"
