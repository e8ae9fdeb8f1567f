"""Service hook commands: metadata preUp, postUp, preDown, postDown (gost X:service/service.go).

Each command is split like a shell would split it (shlex) and run without a shell, one after the
other, stdin from /dev/null, stdout/stderr inherited. A command that cannot be split, cannot be
started or exits non-zero only gives a warning log line: hooks are never fatal.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess

from gostx.config.metadata import Metadata
from gostx.log import FieldLogger

STAGES = ("preUp", "postUp", "preDown", "postDown")


def hook_commands(metadata: Metadata, stage: str) -> list[str]:
    """The commands of one stage as listed in the service metadata."""
    if stage not in STAGES:
        raise ValueError(f"unknown hook stage {stage!r}")
    return metadata.get_strings(stage)


async def run_command(command: str, stage: str, log: FieldLogger) -> int | None:
    """Run one command; returns its exit status, or None when it could not be run."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        log.warning(f"{stage}: cannot split command {command!r}: {exc}", extra={"stage": stage})
        return None
    if not argv:
        return None
    log.debug(f"{stage}: {command}", extra={"stage": stage})
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.DEVNULL)
    except OSError as exc:
        log.warning(f"{stage}: {argv[0]}: {exc.strerror or exc}", extra={"stage": stage})
        return None
    try:
        status = await proc.wait()
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if status != 0:
        log.warning(f"{stage}: command {command!r} exited with status {status}", extra={"stage": stage})
    return status


async def run_hooks(metadata: Metadata, stage: str, log: FieldLogger) -> None:
    """Run every command of `stage`, in order."""
    for command in hook_commands(metadata, stage):
        await run_command(command, stage, log)
