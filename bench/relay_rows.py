"""Bench tunnels for the relay protocol over wss (the tungo seed's chain `-F relay+wss://SERVER:443`).

- `relay_wss_forward`: A forwards 127.0.0.1:5201 through `-F relay+wss://B:443` to B's iperf3; B runs
  `gost -L relay+wss://:443`. The transport alone (TLS + WebSocket + relay).
- `http_over_relay_wss`: A runs an HTTP proxy chained to the relay server (`gost -L http://127.0.0.1:8080
  -F relay+wss://B:443`); iperf3 reaches it through a second gost, a port forward through that proxy
  (`-L tcp://127.0.0.1:5201/B:5201 -F http://127.0.0.1:8080`).
- `tungo_over_relay_wss`: tungo in A (`route=` only B's hidden address, so no default route is taken)
  with `-F relay+wss://B:443?interface=<A's veth>` as in the seed.

Each takes `command` (None: this checkout) so the same commands can run a Go gost ($BENCH_GO_GOST).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.rig import Rig
from bench.tunnels import BEHIND_TUNGO, CLIENT_TUN_IP, TUN_PREFIX, GostTunnel, Role, gostx_command
from gostx.testing import iperf

RELAY_PORT = 443
HTTP_PORT = 8080


def _relay_server() -> list[str]:
    return ["-L", f"relay+wss://:{RELAY_PORT}"]


@dataclass
class ChainedGostTunnel(GostTunnel):
    """GostTunnel plus a second gost process in A (an entry that feeds the first client)."""

    entry_args: list[str] = field(default_factory=list)

    def build_roles(self, rig: Rig) -> list[Role]:
        roles = super().build_roles(rig)
        cmd = self.command or gostx_command()
        entry = [arg.format(server=rig.b_ip, a_if=rig.pair.a_if if rig.pair else "") for arg in self.entry_args]
        return [*roles, Role("a", "gost entry", [*cmd, *entry])]


def relay_wss_forward(command: list[str] | None = None) -> GostTunnel:
    port = iperf.DEFAULT_PORT
    return GostTunnel(
        target="127.0.0.1",
        ready="tcp",
        server_args=_relay_server(),
        client_args=["-L", f"tcp://127.0.0.1:{port}/{{server}}:{port}", "-F", f"relay+wss://{{server}}:{RELAY_PORT}"],
        command=command,
    )


def http_over_relay_wss(command: list[str] | None = None) -> GostTunnel:
    port = iperf.DEFAULT_PORT
    return ChainedGostTunnel(
        target="127.0.0.1",
        ready="tcp",
        server_args=_relay_server(),
        client_args=["-L", f"http://127.0.0.1:{HTTP_PORT}", "-F", f"relay+wss://{{server}}:{RELAY_PORT}"],
        entry_args=["-L", f"tcp://127.0.0.1:{port}/{{server}}:{port}", "-F", f"http://127.0.0.1:{HTTP_PORT}"],
        command=command,
    )


@dataclass
class TungoRelayTunnel(GostTunnel):
    """tungo in A with the seed's `interface=` on the relay+wss hop (A's veth)."""

    def build_roles(self, rig: Rig) -> list[Role]:
        a_if = rig.pair.a_if if rig.pair else ""
        self.client_args = [
            "-L", f"tungo://:0?name=gxtungo&net={CLIENT_TUN_IP}/{TUN_PREFIX}&route={BEHIND_TUNGO}/32",
            "-F", f"relay+wss://{{server}}:{RELAY_PORT}?interface={a_if}"]
        return super().build_roles(rig)


def tungo_over_relay_wss(command: list[str] | None = None) -> GostTunnel:
    return TungoRelayTunnel(target=BEHIND_TUNGO, ready="tcp", server_args=_relay_server(), behind_tungo=True,
                            command=command)
