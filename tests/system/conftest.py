"""Fixtures of the scheduler tests in this folder."""

from __future__ import annotations

import pytest

from local_system import XApiSimulator
from tests.system.harness import TEST_X_BEARER_TOKEN


@pytest.fixture(scope="module")
def simulator():
    """The X API simulator of one test module, for the module's own scheduling stack: it lives as long as
    the module (not a test, as tests/conftest.py's does), since the stack's runs go on between tests."""
    with XApiSimulator(bearer_token=TEST_X_BEARER_TOKEN) as sim:
        yield sim
