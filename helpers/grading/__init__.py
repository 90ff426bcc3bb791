"""Grading support: call recording for hidden tests, and the nbgrader instructor commands."""
