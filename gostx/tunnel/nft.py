"""The firewall rule fake TCP needs, as an nftables table of our own.

The kernel TCP connection under a fake-TCP flow is muted with TTL (hop limit) 1; this table drops
what it still sends (its ACKs), so the peer sees only the hand-built segments:

    table inet gostx_<pid>_<n> {
      chain output {
        type filter hook output priority filter; policy accept;
        ip ttl 1 tcp sport 8421 counter drop                      # server, per family it listens on
        ip daddr SERVER ip ttl 1 tcp dport 8421 counter drop      # client
      }
    }

One table per endpoint and process: removal is `nft delete table` of exactly that table. Tables of
processes that no longer exist (killed with SIGKILL) are removed when the next one is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from gostx.errors import GostError

TABLE_PREFIX = "gostx_"
_TABLE_NAME = re.compile(r"^gostx_(\d+)_(\d+)$")
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_counter = itertools.count()


@dataclass(frozen=True)
class MuteRule:
    """Drop TTL-1 TCP of one family: from our port (server) or to the server's ip:port (client)."""

    version: int                # 4 or 6
    sport: int | None = None
    dport: int | None = None
    daddr: str | None = None

    def text(self) -> str:
        ip = "ip" if self.version == 4 else "ip6"
        parts = [f"{ip} daddr {self.daddr}"] if self.daddr else []
        parts.append("ip ttl 1" if self.version == 4 else "ip6 hoplimit 1")
        if self.sport is not None:
            parts.append(f"tcp sport {self.sport}")
        if self.dport is not None:
            parts.append(f"tcp dport {self.dport}")
        return " ".join([*parts, "counter drop"])


def ruleset(table: str, rules: list[MuteRule]) -> str:
    """The `nft -f` input that creates table with rules."""
    lines = [f"table inet {table} {{", "  chain output {",
             "    type filter hook output priority filter; policy accept;"]
    lines += [f"    {rule.text()}" for rule in rules]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def find_nft() -> str:
    """The nft command, or a one-line error saying how to get it."""
    path = shutil.which("nft") or shutil.which("nft", path=os.pathsep.join(_SBIN))
    if path is None:
        raise GostError("fake TCP (tcp=true) needs nftables: the `nft` command is not installed "
                        "(apt-get install nftables)")
    return path


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=15, check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_tables(listing: str, own_pid: int) -> list[str]:
    """Names of gostx tables in `nft -j list tables` output whose process is gone."""
    try:
        items = json.loads(listing).get("nftables", [])
    except (ValueError, AttributeError):
        return []
    out = []
    for item in items:
        table = item.get("table") if isinstance(item, dict) else None
        if not isinstance(table, dict) or table.get("family") != "inet":
            continue
        match = _TABLE_NAME.match(str(table.get("name", "")))
        if match and int(match.group(1)) != own_pid and not _pid_alive(int(match.group(1))):
            out.append(match.group(0))
    return out


def list_tables(nft: str | None = None) -> list[str]:
    """Every gostx table in this network namespace."""
    done = _run([nft or find_nft(), "-j", "list", "tables"])
    if done.returncode != 0:
        return []
    try:
        items = json.loads(done.stdout).get("nftables", [])
    except (ValueError, AttributeError):
        return []
    return [str(i["table"]["name"]) for i in items if isinstance(i, dict) and isinstance(i.get("table"), dict)
            and str(i["table"].get("name", "")).startswith(TABLE_PREFIX)]


class MuteTable:
    """The nftables table of one fake-TCP endpoint: install() once, remove() on every exit path."""

    def __init__(self, rules: list[MuteRule]) -> None:
        self.rules = rules
        self.name = f"{TABLE_PREFIX}{os.getpid()}_{next(_counter)}"
        self.installed = False
        self._nft: str | None = None

    def install_sync(self) -> None:
        nft = self._nft = find_nft()
        listing = _run([nft, "-j", "list", "tables"])
        if listing.returncode == 0:
            for stale in stale_tables(listing.stdout, os.getpid()):
                _run([nft, "delete", "table", "inet", stale])
        done = _run([nft, "-f", "-"], stdin=ruleset(self.name, self.rules))
        if done.returncode != 0:
            why = " ".join((done.stderr or done.stdout).split()) or f"exit status {done.returncode}"
            if "Operation not permitted" in why:
                why = "operation not permitted (needs CAP_NET_ADMIN: run as root)"
            raise GostError(f"fake TCP: cannot install the nftables rule: {why}")
        self.installed = True

    def remove_sync(self) -> None:
        if not self.installed or self._nft is None:
            return
        self.installed = False
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _run([self._nft, "delete", "table", "inet", self.name])

    async def install(self) -> None:
        await asyncio.to_thread(self.install_sync)

    async def remove(self) -> None:
        await asyncio.to_thread(self.remove_sync)
