"""nbgrader's exchange on this host, the learners' and instructor's Jupyter config, and the
gradebook's list of students."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from ..grading import course
from .settings import (
    LEARNER_DISABLED_PLUGINS,
    Room,
    nbgrader_learner_config,
)


def prepare(room: Room) -> None:
    """The folders a room needs, with the permissions nbgrader's exchange asks for: the exchange
    root writable by everyone (0777, sticky: nobody removes what another wrote; nbgrader gives
    each course's inbound 0733 and outbound 0755 itself), the hub's state root-only, the learners'
    config readable by all."""
    room.root.mkdir(parents=True, exist_ok=True)
    os.chmod(room.root, 0o755)
    room.exchange.mkdir(parents=True, exist_ok=True)
    os.chmod(room.exchange, 0o1777)
    room.hub_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(room.hub_dir, 0o700)
    room.home_root.mkdir(parents=True, exist_ok=True)
    _write_config(room.learner_config, nbgrader_learner_config(room.exchange),
                  {"disabledExtensions": dict.fromkeys(LEARNER_DISABLED_PLUGINS, True)}, public=True)
    instructor = nbgrader_learner_config(room.exchange)
    instructor["CourseDirectory"].update(root=str(course.COURSE),
                                         db_url=f"sqlite:///{course.COURSE / 'gradebook.db'}")
    _write_config(room.instructor_config, instructor,
                  {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}},
                  public=False)


def _write_config(folder: Path, nbgrader: dict, page_config: dict, public: bool) -> None:
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    (folder / "nbgrader_config.json").write_text(json.dumps(nbgrader, indent=1))
    (folder / "labconfig" / "page_config.json").write_text(json.dumps(page_config, indent=1))
    mode_dir, mode_file = (0o755, 0o644) if public else (0o700, 0o600)
    for path in (folder, folder / "labconfig"):
        os.chmod(path, mode_dir)
    for path in (folder / "nbgrader_config.json", folder / "labconfig" / "page_config.json"):
        os.chmod(path, mode_file)


def add_student(name: str | None, course_dir: Path | None = None) -> None:
    """Put a learner in the course's gradebook (nbgrader's API), as they sign in; with no name,
    only make sure the gradebook exists (its first opening builds it, which takes seconds)."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    course_dir = course_dir or course.COURSE
    course_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}",
                                              course.COURSE_ID) as gradebook:
        warnings.simplefilter("ignore", SAWarning)
        if name:
            gradebook.update_or_create_student(name)
