"""Toxiproxy, Shopify's fault-injecting TCP proxy: latency, lost connections and resets between a client and a
server, set through its REST API while they talk. Installed once with `go install` from the Go module proxy into
.toxiproxy/, pinned to one version, like the Kafka jars are fetched with Maven.

    with Toxiproxy(19700) as toxiproxy:
        proxy = toxiproxy.proxy("x_api", listen="127.0.0.1:19701", upstream="127.0.0.1:8099")
        proxy.add_toxic("latency", latency=2000)   # every answer 2 s late
        toxiproxy.reset()                          # no toxic left, every proxy enabled
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import requests

from local_system.service import ROOT, Service, ServiceError

MODULE = "github.com/Shopify/toxiproxy/v2"
VERSION = "v2.12.0"
INSTALL_DIR = ROOT / ".toxiproxy"
SERVER = INSTALL_DIR / VERSION / "toxiproxy-server"
GO_INSTALL = "/usr/local/go/bin"  # where Go's own archive installs it, when not on PATH


def install_toxiproxy() -> Path:
    """Build Toxiproxy's server (MODULE at VERSION) with `go install` into .toxiproxy/<version>/ once; return its
    path. Processes that start it at the same time wait for one build."""
    INSTALL_DIR.mkdir(exist_ok=True)
    with (INSTALL_DIR / "install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if SERVER.exists():
            return SERVER
        go = shutil.which("go") or shutil.which("go", path=GO_INSTALL)
        if go is None:
            raise ServiceError(
                f"Go is needed to install Toxiproxy ({MODULE}@{VERSION}): install Go 1.23 or later"
            )
        print(f"Installing Toxiproxy {VERSION} from the Go module proxy into {SERVER.parent}", flush=True)
        build = INSTALL_DIR / f"{VERSION}.build"
        shutil.rmtree(build, ignore_errors=True)
        env = {**os.environ, "GOBIN": str(build), "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
        result = subprocess.run(
            [go, "install", f"{MODULE}/cmd/server@{VERSION}"], env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise ServiceError(
                f"go install of Toxiproxy failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        SERVER.parent.mkdir(exist_ok=True)
        (build / "server").rename(SERVER)
        shutil.rmtree(build, ignore_errors=True)
        return SERVER


class Toxiproxy(Service):
    """
    A Toxiproxy server, its REST API on `host`:`port`; the proxies it makes listen where they are told.

    :param host: the address of its API (and of its host: in a network namespace, the namespace's address)
    :param netns: the network namespace to run in (see local_system.network.NetworkHost), None for this machine's
    """

    name = "toxiproxy"

    def __init__(
        self, port: int, host: str = "127.0.0.1", netns: str | None = None, state_dir: Path | None = None
    ):
        super().__init__(state_dir or ROOT / ".artifacts" / f"toxiproxy-{port}")
        self.port = port
        self.host = host
        self.netns = netns

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def prepare(self) -> None:
        install_toxiproxy()

    def command(self) -> list[str]:
        return [str(SERVER), "-host", self.host, "-port", str(self.port)]

    def env(self) -> dict[str, str]:
        return {**os.environ, "LOG_LEVEL": "warn"}  # not a line per connection

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/version", timeout=1).ok
        except requests.RequestException:
            return False

    def api(self, method: str, path: str, **body: Any) -> Any:
        """Call its REST API; return the JSON answer, raise ServiceError on an error status."""
        response = requests.request(method, self.url + path, json=body or None, timeout=10)
        if response.status_code >= 400:
            raise ServiceError(f"Toxiproxy {method} {path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def proxy(self, name: str, listen: str, upstream: str) -> Proxy:
        """A proxy that listens on `listen` (host:port) and forwards to `upstream`, made anew."""
        if name in self.api("GET", "/proxies"):
            self.api("DELETE", f"/proxies/{name}")
        self.api("POST", "/proxies", name=name, listen=listen, upstream=upstream)
        return Proxy(self, name, listen)

    def reset(self) -> None:
        """Remove every toxic and enable every proxy."""
        self.api("POST", "/reset")


class Proxy:
    """One proxy of a Toxiproxy server: clients connect to `listen`, and its toxics act on what passes."""

    def __init__(self, toxiproxy: Toxiproxy, name: str, listen: str):
        self.toxiproxy = toxiproxy
        self.name = name
        self.listen = listen

    def add_toxic(
        self,
        kind: str,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes,
    ) -> str:
        """Add a toxic (`latency`, `timeout`, `reset_peer`, `limit_data`, ...: see Toxiproxy's README) with its
        attributes, to the `downstream` (server to client) or `upstream` stream, on a `toxicity` share of the
        connections; return its name."""
        name = name or f"{kind}_{stream}"
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        self.toxiproxy.api("POST", f"/proxies/{self.name}/toxics", **body)
        return name

    def remove_toxic(self, name: str) -> None:
        self.toxiproxy.api("DELETE", f"/proxies/{self.name}/toxics/{name}")
