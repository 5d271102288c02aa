"""The X API simulator, in the test's own process (`XApiSimulator`, with its controls and ground truth) or
as a process of its own (`SimulatorProcess`, as `make run`, the distributed suite and the benchmarks use it).
The one place that names the simulator's module."""

from __future__ import annotations

import sys
from pathlib import Path

import requests

import x_api_simulator as simulator_package  # the one line that names the simulator's package
from local_system.service import ROOT, Service

XApiSimulator = simulator_package.XApiSimulator

__all__ = ["SimulatorProcess", "XApiSimulator"]


class SimulatorProcess(Service):
    """
    `python -m` the simulator on 127.0.0.1:`port`, accepting `bearer_token`.

    :param options: more of its command-line options, e.g. {"rate-limit": 1000000}
    """

    name = "x-api-simulator"

    def __init__(self, port: int, bearer_token: str, state_dir: Path | None = None, **options: object):
        super().__init__(state_dir or ROOT / ".artifacts" / f"x-api-simulator-{port}")
        self.port = port
        self.bearer_token = bearer_token
        self.options = options

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def command(self) -> list[str]:
        command = [sys.executable, "-m", simulator_package.__name__, "--port", str(self.port)]
        command += ["--bearer-token", self.bearer_token]
        for name, value in self.options.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        return command

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/_sim/health", timeout=1).ok
        except requests.RequestException:
            return False
