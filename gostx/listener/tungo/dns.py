"""The `dns` option: per-link DNS servers through systemd-resolved (`resolvectl dns <if> <ips>`), as gost
does on Linux. Without systemd-resolved running, the servers cannot be applied: that is logged."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Sequence

from gostx.log import FieldLogger
from gostx.netlink.routes import IPAddress

RESOLVED_RUNTIME_DIR = "/run/systemd/resolve"


def resolved_available() -> bool:
    """systemd-resolved runs here (its runtime directory exists and resolvectl is installed)."""
    return shutil.which("resolvectl") is not None and os.path.isdir(RESOLVED_RUNTIME_DIR)


async def apply_link_dns(ifname: str, servers: Sequence[IPAddress], log: FieldLogger) -> bool:
    """Point the link's DNS at servers; True when applied. Failures are logged, never raised."""
    if not servers:
        return False
    shown = ",".join(str(s) for s in servers)
    if not resolved_available():
        log.warning(f"dns {shown} is not applied to {ifname}: systemd-resolved is not running here",
                    extra={"device": ifname, "dns": shown})
        return False
    argv = ["resolvectl", "dns", ifname, *(str(s) for s in servers)]
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.PIPE)
        _, err = await proc.communicate()
    except OSError as exc:
        log.warning(f"dns {shown} is not applied to {ifname}: {exc.strerror or exc}", extra={"device": ifname})
        return False
    if proc.returncode != 0:
        why = " ".join(err.decode(errors="replace").split()) or f"status {proc.returncode}"
        log.warning(f"dns {shown} is not applied to {ifname}: resolvectl: {why}", extra={"device": ifname})
        return False
    log.info(f"dns {shown} set on {ifname}", extra={"device": ifname, "dns": shown})
    return True
