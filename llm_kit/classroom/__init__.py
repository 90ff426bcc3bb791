"""`llm-kit classroom`: a JupyterHub on one Linux host for a whole class.

Learners sign in with one workshop code and each gets a JupyterLab running as an OS user of
their own; instructors (hub admins) get nbgrader's formgrader. One model server serves the
room, and nbgrader's exchange carries assignments out and submissions back. The settings live
in one place (settings.py), which the local hub and the Zero to JupyterHub values file share.
"""
