from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from gostx.log import ROOT_LOGGER

pytest_plugins = ["gostx.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def _restore_gostx_logger() -> Iterator[None]:
    """setup_logging() reconfigures the process-wide `gostx` logger; put it back after each test so
    tests that read logs through caplog see them whatever ran before."""
    logger = logging.getLogger(ROOT_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
    yield
    logger.handlers[:] = saved[0]
    logger.level, logger.propagate, logger.disabled = saved[1], saved[2], saved[3]
