"""The tools a user would pick instead of gostx, as bench rows beside it in the same rig.

- wireguard-go (Debian's package, or a current build with TUN/UDP offloads at $BENCH_WIREGUARD_GO):
  userspace WireGuard, the closest peer to tun://. Each side runs `wireguard-go -f DEV`, then
  `wg set` gives it a key and the other side as its peer, and `ip` its address, as wg-quick would.
- hev-socks5-tunnel ($BENCH_HEV): tun2socks over the same SOCKS5 server as the tungo rows.
- udp2raw in faketcp mode ($BENCH_UDP2RAW) carrying a plaintext tun://: the peer of tun's tcp=true.

A binary that is not there makes its row "n/a (<how to get it>)"; the run goes on.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bench.tunnels import (
    BEHIND_TUNGO,
    CLIENT_TUN_IP,
    SERVER_TUN_IP,
    SOCKS_PORT,
    TUN_PREFIX,
    TUNNEL_PORT,
    GostTunnel,
    ProcessTunnel,
    Role,
    TunnelDown,
    gostx_command,
    tun_url,
)

if TYPE_CHECKING:
    from bench.rig import Rig

WIREGUARD_GO_ENV = "BENCH_WIREGUARD_GO"
HEV_ENV = "BENCH_HEV"
UDP2RAW_ENV = "BENCH_UDP2RAW"
WG_PORT = 51820
UDP2RAW_PORT = 4096
UDP2RAW_LOCAL = 8422  # the client's udp2raw listens here on A's loopback; gost's tun client dials it


def _keypair() -> tuple[str, str]:
    """A WireGuard key pair as `wg genkey | wg pubkey` prints them (base64 of the raw X25519 keys)."""
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode(), base64.b64encode(pub).decode()


def _write_secret(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def _executable(env: str, default: str | None, hint: str) -> str:
    """The binary a peer row runs: $env if set (it must be executable), else default from PATH."""
    path = os.environ.get(env, "").strip()
    if path:
        if not os.access(path, os.X_OK):
            raise TunnelDown(f"{env}={path} is not an executable")
        return path
    found = shutil.which(default) if default else None
    if not found:
        raise TunnelDown(hint)
    return found


@dataclass
class WireGuardGoTunnel(ProcessTunnel):
    """wireguard-go on both ends of the veth; devices named per process (their UAPI sockets live in
    /var/run/wireguard, which every namespace shares)."""

    binary_env: str | None = None  # None: Debian's wireguard-go from PATH
    binary: str = ""
    devs: dict[str, str] = field(default_factory=dict)

    def prepare(self, rig: Rig) -> None:
        if self.binary_env:
            hint = f"set {self.binary_env}=/path/to/wireguard-go (a current build) to compare with it"
            self.binary = _executable(self.binary_env, None, hint)
        else:
            hint = "wireguard-go is not installed (apt-get install wireguard-go)"
            self.binary = _executable("", "wireguard-go", hint)
        if shutil.which("wg") is None:
            raise TunnelDown("wg is not installed (apt-get install wireguard-tools)")
        tag = f"{os.getpid() % 100000}{'c' if self.binary_env else ''}"
        self.devs = {"a": f"gxwg{tag}a", "b": f"gxwg{tag}b"}

    def build_roles(self, rig: Rig) -> list[Role]:
        env = ["env", "WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error"]
        return [
            Role("b", "wireguard-go server", [*env, self.binary, "-f", self.devs["b"]]),
            Role("a", "wireguard-go client", [*env, self.binary, "-f", self.devs["a"]]),
        ]

    def configure(self, rig: Rig, timeout: float) -> None:
        keys = {side: _keypair() for side in ("a", "b")}
        sides = {"a": (rig.a, CLIENT_TUN_IP, "b"), "b": (rig.b, SERVER_TUN_IP, "a")}
        deadline = time.monotonic() + timeout
        for side, (ns, own_ip, other) in sides.items():
            dev = self.devs[side]
            while ns.run(["ip", "link", "show", "dev", dev], check=False).returncode != 0:
                if time.monotonic() >= deadline:
                    raise TunnelDown(f"wireguard-go made no device {dev} within {timeout:g} s")
                exited = self._exited()
                if exited:
                    raise TunnelDown(exited)
                time.sleep(0.05)
            key_path = os.path.join(rig.workdir, f"wg-{side}.key")
            _write_secret(key_path, keys[side][0])
            peer_ip = SERVER_TUN_IP if side == "a" else CLIENT_TUN_IP
            endpoint = ["endpoint", f"{rig.b_ip}:{WG_PORT}"] if side == "a" else []
            ns.run(["wg", "set", dev, "private-key", key_path, *(["listen-port", str(WG_PORT)] if side == "b" else []),
                    "peer", keys[other][1], "allowed-ips", f"{peer_ip}/32", *endpoint])
            ns.run(["ip", "addr", "add", f"{own_ip}/{TUN_PREFIX}", "dev", dev])
            ns.run(["ip", "link", "set", dev, "up"])


@dataclass
class HevTunnel(GostTunnel):
    """hev-socks5-tunnel in A (a TUN, its lwIP stack, out through B's gost SOCKS5 server): the peer of
    the tungo -F socks5:// row. Its YAML config is written here; the route to BEHIND_TUNGO goes into
    its device once it exists."""

    dev: str = "gxhev0"

    def prepare(self, rig: Rig) -> None:
        super().prepare(rig)
        binary = _executable(HEV_ENV, None, f"set {HEV_ENV}=/path/to/hev-socks5-tunnel to compare tungo with it")
        conf = os.path.join(rig.workdir, "hev.yml")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(
                f"tunnel:\n  name: {self.dev}\n  mtu: 8500\n  ipv4: {CLIENT_TUN_IP}\n"
                f"socks5:\n  port: {SOCKS_PORT}\n  address: {rig.b_ip}\n  udp: 'udp'\n"
            )
        self.command = None
        self.client_args = []
        self.roles = [Role("a", "hev-socks5-tunnel", [binary, conf])]

    def build_roles(self, rig: Rig) -> list[Role]:
        server = [*gostx_command(), *self.server_args]
        return [Role("b", "gost server", server), *self.roles]

    def configure(self, rig: Rig, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while rig.a.run(["ip", "link", "show", "dev", self.dev], check=False).returncode != 0:
            if time.monotonic() >= deadline:
                raise TunnelDown(f"hev-socks5-tunnel made no device {self.dev} within {timeout:g} s")
            time.sleep(0.05)
        rig.a.run(["ip", "link", "set", self.dev, "up"])
        rig.a.run(["ip", "route", "replace", f"{BEHIND_TUNGO}/32", "dev", self.dev])


def hev_socks5() -> HevTunnel:
    return HevTunnel(target=BEHIND_TUNGO, ready="tcp", server_args=["-L", f"socks5://:{SOCKS_PORT}"],
                     behind_tungo=True)


@dataclass
class Udp2rawTunnel(GostTunnel):
    """A plaintext gost tun:// whose UDP rides udp2raw's fake TCP (no cipher, no auth: the same work as
    gostx's tcp=true), the peer of the tun-faketcp row."""

    def prepare(self, rig: Rig) -> None:
        super().prepare(rig)
        binary = _executable(UDP2RAW_ENV, None, f"set {UDP2RAW_ENV}=/path/to/udp2raw to compare fake TCP with it")
        common = ["-k", "gostx-bench", "--raw-mode", "faketcp", "--cipher-mode", "none", "--auth-mode", "none", "-a"]
        self.roles = [
            Role("b", "udp2raw server", [binary, "-s", f"-l0.0.0.0:{UDP2RAW_PORT}",
                                         f"-r127.0.0.1:{TUNNEL_PORT}", *common]),
            Role("a", "udp2raw client", [binary, "-c", f"-l127.0.0.1:{UDP2RAW_LOCAL}",
                                         f"-r{rig.b_ip}:{UDP2RAW_PORT}", *common]),
        ]

    def build_roles(self, rig: Rig) -> list[Role]:
        return [*self.roles, *super().build_roles(rig)]


def udp2raw_tun() -> Udp2rawTunnel:
    server = tun_url("tun", None, SERVER_TUN_IP)
    client = tun_url("tun", None, CLIENT_TUN_IP, listen=":0", remote=f"127.0.0.1:{UDP2RAW_LOCAL}")
    return Udp2rawTunnel(server_args=["-L", server], client_args=["-L", client])


def wireguard_go(binary_env: str | None = None) -> Callable[[], WireGuardGoTunnel]:
    return lambda: WireGuardGoTunnel(binary_env=binary_env)
