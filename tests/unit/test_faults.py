"""The fault matrix, the rows that need no model server (stand-ins only), and which faults are
worth a retry. The rows live in support/faults.py."""

from __future__ import annotations

import re

import pytest

from helpers.friendly_errors import KitError

from support.faults import NO_SERVER_ROWS, check_row, row_params
from support.solutions import solution_function


@pytest.mark.parametrize("row", row_params(NO_SERVER_ROWS))
def test_fault(row, request):
    check_row(row, request)


@pytest.mark.parametrize("error, transient", [
    (Exception("[429] Too Many Requests\nrate limit reached"), True),
    (Exception("[503] Service Unavailable\nLoading model"), True),
    (Exception("[400] Bad Request\nthe request exceeds the available context size"), False),
    (Exception("[404] Not Found"), False),
    (ConnectionRefusedError("[Errno 111] Connection refused"), True),
    (KitError("No model server answered."), False),
    (ValueError("Invalid input type <class 'int'>."), False),
], ids=["429", "503", "too-long", "404", "refused", "kit-message", "bad-input"])
def test_only_passing_faults_are_transient(error, transient):
    """Notebook 6's own is_transient, the one its retries use."""
    is_transient = solution_function("06_async_and_concurrency", "is_transient", re=re)
    assert is_transient(error) is transient
