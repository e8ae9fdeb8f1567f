"""A fixture for tests that reconfigure gostx's logger: its handlers, level and propagation come back."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from gostx.log import ROOT_LOGGER


@pytest.fixture(autouse=True)
def restore_logger() -> Iterator[None]:
    logger = logging.getLogger(ROOT_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in saved[0]:
        logger.addHandler(h)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
