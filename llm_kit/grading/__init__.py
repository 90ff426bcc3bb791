"""Instructor and student commands around nbgrader (`llm-kit grade ...`)."""
