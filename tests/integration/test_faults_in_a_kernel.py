"""The fault matrix in a real kernel, the rows that need no model server: after
`enable_friendly_errors()` the cell fails with the learner's paragraph as its error output."""

from __future__ import annotations

import pytest

from support.faults import NO_SERVER_ROWS, check_row_in_a_kernel, kernel_rows


@pytest.mark.timeout(240, func_only=True)  # the row again, then a kernel start on 2 busy cores
@pytest.mark.parametrize("row", kernel_rows(NO_SERVER_ROWS))
def test_fault_in_a_kernel(row, request, tmp_path):
    check_row_in_a_kernel(row, request, tmp_path)
