"""`llm-kit classroom`, for real: JupyterHub with the Python proxy, learners signing in with the
workshop code, each server running as the learner's own OS user, nbgrader's exchange from release
to feedback, the kit's concurrent autograder, and a signal stopping everything.

The class uses the session's offline server as its configured model (no second one starts), but
the signals test, whose classroom starts its own with two slots."""

from __future__ import annotations

import pwd
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import psutil
import pytest

from helpers.settings import OFFLINE_MODEL_ID
from llm_kit.classroom.client import HubUser
from llm_kit.grading.course import COURSE_ID

from browser_support import descendants
from support import REPO, assert_none_left, offline_server_pids, wait_until
from support.classroom import KIT, classroom, learners_can_enter_python, require_root, scores
from support.grading import FAQ_BY_BATCH, FAQ_BY_LOOP, exercise_only

FAQ = "02_streaming_and_batching"
NOTEBOOK = f"{FAQ}/{FAQ}.ipynb"  # where nbgrader's fetch puts it in a learner's home
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
# the FAQ answers the grading tests score: one batch call (10), a loop (7), none (0)
ANSWERS = {"ada": (FAQ_BY_BATCH, 10),
           "bob": (FAQ_BY_LOOP, 7),
           "cyd": (STUB, 0)}
PROBE = """
import os
print("model", os.environ.get("NIM_BASE_URL"), os.environ.get("NIM_MODEL"),
      os.environ.get("NVIDIA_USAGE_TELEMETRY_ENABLED"), os.environ.get("KIT_WORKSHOP_CODE"))
for path in {paths!r}:
    try:
        os.listdir(path) if os.path.isdir(path) else open(path).read()
        print("read", path)
    except PermissionError:
        print("denied", path)
"""


def answered(learner: HubUser, tmp: Path, who: str) -> dict:
    """The fetched student copy, the FAQ answer in place and the lessons left out."""
    fetched = tmp / f"{who}.ipynb"
    nbformat.write(nbformat.from_dict(learner.read_notebook(NOTEBOOK)), fetched)
    return exercise_only(fetched, "faq_answers", ANSWERS[who][0])


@pytest.fixture(scope="module")
def room(offline_server):
    require_root()
    started = time.perf_counter()
    with learners_can_enter_python(), classroom(offline_server.base_url) as running:
        print(f"classroom: started in {time.perf_counter() - started:.1f} s")
        yield running


@pytest.fixture(scope="module")
def term(room, offline_server, tmp_path_factory):
    """A whole term: the instructor releases notebook 2, three learners fetch, answer and submit it
    from their own servers, the instructor collects, autogrades and releases feedback, and each
    learner fetches theirs. Returns what each step showed."""
    tmp = tmp_path_factory.mktemp("classroom")
    clock = Clock()
    seen: dict = {"released": room.kit("classroom", "release", FAQ).stdout}
    clock("released")
    instructor = HubUser(room.base, room.instructor, room.password)
    seen["instructor"] = instructor.model()

    def learner_term(who: str) -> dict:
        learner = HubUser(room.base, room.name(who), room.code)
        learner.start_server()
        listed = learner.assignment("fetch", COURSE_ID, FAQ)
        learner.write_notebook(NOTEBOOK, answered(learner, tmp, who))
        submitted = learner.assignment("submit", COURSE_ID, FAQ)
        others = [room.folder / "homes" / f"kit-{room.name(o)}" for o in ANSWERS if o != who]
        probe, status = learner.run(PROBE.format(paths=[str(others[0]), str(REPO / "solutions"),
                                                        str(REPO / "solutions" / f"{FAQ}.ipynb"),
                                                        room.env["KIT_COURSE_DIR"]]))
        return {"learner": learner, "fetched": listed, "submitted": submitted, "probe": probe,
                "status": status, "os_user": pwd.getpwnam(f"kit-{room.name(who)}")}

    with ThreadPoolExecutor(len(ANSWERS)) as pool:
        seen["learners"] = dict(zip(ANSWERS, pool.map(learner_term, ANSWERS), strict=True))
    clock("3 learners signed in, fetched, submitted")
    seen["collected"] = room.kit("classroom", "collect", FAQ).stdout
    clock("collected")
    seen["graded"] = room.kit("classroom", "grade", FAQ, "--server-port", str(offline_server.port)).stdout
    clock("graded")
    seen["feedback"] = room.kit("classroom", "feedback", FAQ).stdout
    clock("feedback released")
    for got in seen["learners"].values():
        got["feedback"] = got["learner"].assignment("fetch_feedback", COURSE_ID, FAQ)
        got["feedback_files"] = [item["name"] for folder in got["learner"].api(
            "GET", f"/api/contents/{FAQ}/feedback").json()["content"]
            for item in got["learner"].api("GET", f"/api/contents/{folder['path']}").json()["content"]]
    clock("feedback fetched")
    return seen


class Clock:
    """Prints how long each step of the term took (pytest -s shows it)."""

    def __init__(self):
        self.last = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        print(f"classroom: {step} in {now - self.last:.1f} s")
        self.last = now


def test_instructor_signs_in_as_an_admin_and_learners_only_with_the_code(room, term):
    assert term["instructor"]["admin"] is True
    with pytest.raises(PermissionError):
        HubUser(room.base, room.name("eve"), "not-the-code")
    with pytest.raises(PermissionError):  # the workshop code does not make anyone an instructor
        HubUser(room.base, room.instructor, room.code)
    with pytest.raises(PermissionError):  # a name outside the pattern (no OS account is made for it)
        HubUser(room.base, "Root/../x", room.code)


def test_each_learner_runs_as_their_own_os_user_with_the_shared_model(term, offline_server):
    for who, got in term["learners"].items():
        assert got["status"] == "ok", got["probe"]
        assert f"model {offline_server.base_url} {OFFLINE_MODEL_ID} 0 None" in got["probe"], got["probe"]
        servers = [p for p in psutil.process_iter(["uids", "cmdline"])
                   if "jupyterhub-singleuser" in " ".join(p.info["cmdline"] or [])
                   and f"/user/{got['learner'].name}/" in " ".join(p.environ().values())]
        assert [p.info["uids"].real for p in servers] == [got["os_user"].pw_uid], who
        assert Path(got["os_user"].pw_dir).stat().st_mode & 0o777 == 0o700, who


def test_a_learner_cannot_read_another_learners_home_the_solutions_or_the_course(term):
    for who, got in term["learners"].items():
        lines = got["probe"].splitlines()[1:]
        assert lines and all(line.startswith("denied ") for line in lines), (who, got["probe"])


def test_learners_fetch_and_submit_through_the_assignments_tab(term):
    for who, got in term["learners"].items():
        fetched = {a["assignment_id"]: a["status"] for a in got["fetched"]["value"]}
        assert fetched.get(FAQ) == "fetched", (who, got["fetched"])
        assert any(a["status"] == "submitted" for a in got["submitted"]["value"]), (who, got["submitted"])
    assert "collected 3 submissions" in term["collected"], term["collected"]


def test_the_instructor_collects_and_autogrades_exact_scores(room, term):
    # nbgrader names a submission after the OS account that submitted it: kit-<hub name>
    expected = {f"kit-{room.name(who)}": score for who, (_, score) in ANSWERS.items()}
    assert scores(term["graded"]) == expected, term["graded"]


def test_each_learner_fetches_their_feedback(term):
    assert "released" in term["feedback"]
    for who, got in term["learners"].items():
        assert got["feedback_files"] == [f"{FAQ}.html"], (who, got["feedback_files"])


def test_a_second_classroom_on_the_same_port_refuses_in_one_line(room):
    second = subprocess.run([str(KIT), "classroom"], env=room.env, capture_output=True, text=True,
                            timeout=120, cwd=room.folder)
    assert second.returncode == 2
    assert second.stderr.strip().count("\n") == 0 and f"Port {room.env['KIT_CLASSROOM_PORT']} is taken" \
        in second.stderr, second.stderr


# make passes SIGTERM on to its recipe; a hang-up reaches the whole foreground group, make's
# recipe included (make itself waits for its children after SIGHUP)
SIGNALS = {"make-sigterm": (True, signal.SIGTERM, False), "make-sighup": (True, signal.SIGHUP, True)}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", list(SIGNALS))
def test_a_signal_stops_the_hub_every_learner_and_the_model_server_it_started(case, offline_server):
    require_root()
    make, how, group = SIGNALS[case]
    own_model = case == "make-sigterm"  # one case starts its own offline server, with 2 slots
    with learners_can_enter_python(), classroom(None if own_model else offline_server.base_url,
                                                make=make, slots=2) as running:
        port = int(running.env["KIT_SERVER_PORT"])
        if own_model:
            assert offline_server_pids(port), "the classroom started its own model server"
        learner = HubUser(running.base, running.name("ada"), running.code)
        learner.start_server()
        learner.api("POST", "/api/kernels", json={"name": "python3"}).raise_for_status()  # left running
        uid = pwd.getpwnam(f"kit-{running.name('ada')}").pw_uid
        wait_until(lambda: len([p for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid]) >= 2,
                   60, "the learner's server and kernel")
        family = descendants(running.process.pid)
        assert any("jupyterhub" in cmd for cmd in family.values()), family
        rest = running.stop(how, group)
        assert "Stopping the classroom" in rest, rest

        def left() -> dict:
            found = {p.pid: " ".join(p.info["cmdline"] or [])
                     for p in psutil.process_iter(["uids", "cmdline"])
                     if p.info["uids"].real == uid and p.status() != psutil.STATUS_ZOMBIE}
            found.update({pid: cmd for pid, cmd in family.items() if psutil.pid_exists(pid)
                          and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE})
            found.update({pid: "offline server" for pid in offline_server_pids(port)})
            return found

        assert_none_left(left, "processes of the classroom left behind", timeout_s=60)
    assert offline_server_pids(offline_server.port), "the session's model server was not theirs to stop"
