"""Test hosts for network faults: a network namespace (`ip netns`, Debian's iproute2) cabled to this machine's by a
veth pair, so that a server run in it (`Service.netns`) is a host of its own, which a partition cuts off.

    with NetworkHost.of_port(19310) as host:   # as root: the namespace t2k-19310, at 198.19.110.2
        broker = KafkaBroker(..., host=host.address, netns=host.netns)
        host.partition()   # its end of the cable set down: nothing passes either way, no error is sent
        host.heal()

The namespace's link is a /30 of 198.18.0.0/15, the range set aside for network tests (RFC 2544): this machine is
its first address (`outside`), the host its second (`address`). Both ends know each other's hardware address for
good (permanent neighbour entries), so that a partition drops packets silently, as a cut cable or a firewall
dropping them does, rather than failing fast on a lost ARP reply; TCP retransmits what was lost once it heals.
Only the host's end goes down: this machine's end and its route to the link stay, so that nothing sent to the host
during a partition takes another way.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from contextlib import suppress
from pathlib import Path

from local_system.databases import install_debian_packages
from local_system.service import ServiceError


def ip(command: str) -> str:
    """Run `ip <command>` (iproute2; its words split at spaces); return its output, raise ServiceError with it on
    failure."""
    result = subprocess.run(["ip", *command.split()], capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"ip {command} failed: {result.stderr.strip()}")
    return result.stdout


class NetworkHost:
    """
    A network namespace `netns` linked to this machine by the veth pair `<netns>0` (here) and `<netns>1` (in it).

    :param netns: its name, at most 14 characters (an interface name takes 15); its interfaces take its name
    :param subnet: the first address of its /30, e.g. "198.18.44.0"
    """

    def __init__(self, netns: str, subnet: str):
        if len(netns) > 14:
            raise ValueError(f"a test host's name is at most 14 characters, not {netns!r}")
        self.netns = netns
        first = ipaddress.IPv4Address(subnet)
        self.outside = str(first + 1)  # this machine's end
        self.address = str(first + 2)  # the host's end
        self.outside_link = f"{netns}0"
        self.link = f"{netns}1"

    @classmethod
    def of_port(cls, port: int) -> NetworkHost:
        """The test host of a server on `port`: `t2k-<port>`, on the first /30 of the /24 number `port % 512` of
        198.18.0.0/15, so that test runs on other ports (another checkout's) make other hosts."""
        number = port % 512
        return cls(f"t2k-{port}", f"198.{18 + number // 256}.{number % 256}.0")

    def start(self) -> NetworkHost:
        """Make the namespace and its link, anew (a previous run's is removed first); root only."""
        if os.geteuid() != 0:
            raise ServiceError(
                f"the test host {self.netns} is a network namespace, which only root can make (ip netns): run the "
                "network fault cases as root, as CI does"
            )
        install_debian_packages("iproute2")
        self.remove()
        try:
            ip(f"netns add {self.netns}")
            ip(f"link add {self.outside_link} type veth peer name {self.link} netns {self.netns}")
            ip(f"addr add {self.outside}/30 dev {self.outside_link}")
            ip(f"-n {self.netns} addr add {self.address}/30 dev {self.link}")
            ip(f"-n {self.netns} link set lo up")
            ip(f"-n {self.netns} link set {self.link} up")
            ip(f"link set {self.outside_link} up")
            self._hardware = Path(f"/sys/class/net/{self.outside_link}/address").read_text().strip()
            there = ip(f"netns exec {self.netns} cat /sys/class/net/{self.link}/address").strip()
            ip(f"neigh replace {self.address} lladdr {there} dev {self.outside_link} nud permanent")
            self._know_outside()
        except BaseException:
            self.remove()
            raise
        return self

    def _know_outside(self) -> None:
        ip(
            f"-n {self.netns} neigh replace {self.outside} lladdr {self._hardware} dev {self.link} nud permanent"
        )

    def partition(self) -> None:
        """Cut it off: its end of the link down, so that nothing passes in either direction."""
        ip(f"-n {self.netns} link set {self.link} down")

    def heal(self) -> None:
        """Its end of the link up again (a no-op when it is up)."""
        ip(f"-n {self.netns} link set {self.link} up")
        self._know_outside()  # a link set down forgets its neighbours, permanent ones too

    def remove(self) -> None:
        """Delete the link and the namespace (what runs in it should be stopped first)."""
        with suppress(ServiceError):
            ip(f"link del {self.outside_link}")  # both ends of the pair
        with suppress(ServiceError):
            ip(f"netns del {self.netns}")

    def __enter__(self) -> NetworkHost:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
