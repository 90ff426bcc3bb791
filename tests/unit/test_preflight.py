"""`llm-kit preflight` without a model server: no server turns exactly the readiness row red, the
table's layout, the verdicts of the cap and batch rows, and the NIM cache volume check."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers.ports import free_port
from helpers.settings import WORKSHOP_MODEL
from llm_kit.preflight import backend_to_check
from llm_kit.preflight.cache_volume import NimCache, check_cache_volume, chown_command, nim_cache
from llm_kit.preflight.checks import CAP, CapResult, batch_verdict, cap_verdict
from llm_kit.preflight.table import FAIL, PASS, RED, SKIP, WIDTH, failed, passed, render, skipped

from support import REPO
from support.preflight import BACKEND_VARS, ROWS, assert_only_red, run_in_process, table_rows, without_usage

# --- a fault without a server -------------------------------------------------------------

def test_no_server_turns_readiness_red_and_skips_what_needs_it(monkeypatch, capsys, tmp_path):
    nowhere = f"http://127.0.0.1:{free_port()}/v1"  # free a moment ago: nothing listens
    code, out = run_in_process(monkeypatch, capsys, tmp_path, {"NIM_BASE_URL": nowhere})
    assert code == 1
    rows = table_rows(out)
    assert_only_red(rows, "readiness", "Nothing answers at")
    assert "unreachable" in rows["readiness"][1]
    assert all(rows[name][0] == SKIP for name in ROWS[1:])
    assert "FAILED: 1 of 1 checks (readiness)" in out


def test_the_proxy_strips_only_usage():
    usage_only = 'data: {"choices": [], "usage": {"completion_tokens": 3}}'
    mixed = 'data: {"choices": [{"delta": {"content": "Hi"}}], "usage": {"completion_tokens": 1}}'
    assert without_usage(usage_only) is None
    assert json.loads(without_usage(mixed).removeprefix("data: ")) == {
        "choices": [{"delta": {"content": "Hi"}}]}
    assert without_usage("data: [DONE]") == "data: [DONE]"
    assert without_usage("") == ""


def test_on_the_compose_host_an_unconfigured_check_targets_the_stacks_nim(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in BACKEND_VARS:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("COMPOSE_PROFILES=gpu\nLLAMA_HOST_PORT=8001\n")
    with backend_to_check(server_port=free_port(), compose=True) as (settings, note):
        assert (settings.base_url, settings.model) == ("http://127.0.0.1:8001/v1", WORKSHOP_MODEL)
        assert settings.backend == "nim" and "compose" in note
    monkeypatch.setenv("NIM_BASE_URL", "http://gpu-box:8000/v1")  # a configured backend wins
    with backend_to_check(server_port=free_port(), compose=True) as (settings, _):
        assert settings.base_url == "http://gpu-box:8000/v1"


# --- the table ---------------------------------------------------------------------------------

def test_the_table_fits_100_columns_and_wraps_long_cells():
    long = "word " * 60
    checks = [passed("invoke", "8 tokens in 0.20 s"), failed("model id", long.strip(), long.strip()),
              skipped("NIM cache", "not a compose host")]
    text = render(checks)
    assert all(len(line) <= WIDTH for line in text.splitlines())
    rows = table_rows(text)
    assert rows["model id"][0] == FAIL and rows["model id"][1].count("word") == 120
    assert rows["NIM cache"] == (SKIP, "NIM cache skip skipped: not a compose host")


def test_only_failed_rows_turn_red_and_only_with_colour():
    checks = [passed("invoke", "ok"), failed("model id", "not served " * 8, "set NIM_MODEL")]
    coloured = render(checks, color=True).splitlines()
    red = [line.startswith(RED) for line in coloured]
    assert red[:3] == [False, False, False] and len(red) > 4 and all(red[3:])  # heading, rule, pass
    assert RED not in render(checks)


# --- the answer cap: which parameter holds ----------------------------------------------------

@pytest.mark.parametrize("per_call, constructor, result, advice", [
    (CapResult(CAP, "length"), CapResult(CAP, "length"), PASS, ""),
    (CapResult(error="BadRequest: unknown field"), CapResult(CAP, "length"), FAIL, "in the constructor"),
    (CapResult(57, "stop"), CapResult(CAP, "length"), FAIL, "in the constructor"),
    (CapResult(CAP, "length"), CapResult(300, "stop"), FAIL, "pass the cap per call"),
    (CapResult(90, "stop"), CapResult(300, "stop"), FAIL, "Neither cap holds"),
])
def test_the_cap_row_says_which_parameter_works(per_call, constructor, result, advice):
    check = cap_verdict(per_call, constructor)
    assert check.result == result
    assert advice in check.fix
    assert f"max_completion_tokens={CAP}:" in check.measured and f"max_tokens={CAP}:" in check.measured


# --- batch vs loop: side by side on the server, or faster by the clock -----------------------

@pytest.mark.parametrize("ratio, peak, result", [
    (2.3, 6, PASS),    # the offline server on a quiet CPU
    (0.8, 6, PASS),    # a busy CPU: the clock says nothing, the server's slots ran side by side
    (5.0, 0, PASS),    # a NIM answered faster than the counters were read
    (5.0, None, PASS),  # no counters (hosted): the clock decides
    (1.0, 1, FAIL),    # one request at a time
    (1.0, None, FAIL),
])
def test_batch_passes_when_the_server_runs_requests_side_by_side(ratio, peak, result):
    check = batch_verdict(ratio, peak, "figure")
    assert check.result == result
    assert (result == PASS) == (check.fix == "")


# --- the NIM cache volume on a compose host ---------------------------------------------------

def test_the_compose_file_names_the_cache_volume_and_image():
    cache = nim_cache()
    assert cache.volume == "llm-streaming-kit_nim-cache"
    assert cache.path == "/opt/nim/.cache"
    assert cache.image.startswith("nvcr.io/nim/meta/llama-3.1-8b-instruct:")


def test_not_a_compose_host_is_skipped_not_failed():
    check = check_cache_volume(which=lambda name: None)
    assert check.result == SKIP and check.measured == "skipped: not a compose host"
    assert check_cache_volume(forced=True, which=lambda name: None).result == FAIL


def test_without_the_stack_it_is_skipped_unless_asked():
    """Against this machine's real Docker (or none): no stack volume means not a compose host;
    asked with --compose anyway, the row fails and says why."""
    docker = shutil.which("docker")
    cache = nim_cache()
    inspect = (subprocess.run([docker, "volume", "inspect", cache.volume], capture_output=True,
                              text=True, timeout=30) if docker else None)
    forced = check_cache_volume(forced=True)
    if inspect is not None and inspect.returncode == 0:  # this is a compose host: the real check
        assert forced.result in (PASS, FAIL) and "uid 1000" in forced.measured
        return
    assert check_cache_volume().measured == "skipped: not a compose host"
    assert forced.result == FAIL
    if docker is None:
        assert forced.measured == "docker: command not found"
    elif "daemon" in inspect.stderr.lower():
        assert "daemon" in forced.measured.lower() and "start docker" in forced.fix.lower()
    else:
        assert forced.measured == f"no volume {cache.volume}"


class FakeDocker:
    """Answers `docker volume inspect` and `docker run` as a compose host would (unit test)."""

    def __init__(self, run_error: str = ""):
        self.run_error = run_error
        self.calls: list[list[str]] = []

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        failing = argv[1] == "run" and self.run_error
        return subprocess.CompletedProcess(argv, 1 if failing else 0, "", self.run_error if failing else "")


def test_a_root_owned_cache_volume_fails_with_the_chown_fix():
    docker = FakeDocker(run_error="touch: cannot touch '/opt/nim/.cache/.kit-preflight-7': Permission denied")
    check = check_cache_volume(run=docker, which=lambda name: "/usr/bin/docker")
    assert check.result == FAIL
    assert "cannot write /opt/nim/.cache" in check.measured
    assert chown_command(nim_cache()) in check.fix
    run = docker.calls[-1]
    assert run[:2] == ["/usr/bin/docker", "run"] and "1000:1000" in run
    assert f"{nim_cache().volume}:/opt/nim/.cache" in run


def test_a_writable_cache_volume_passes():
    check = check_cache_volume(run=FakeDocker(), which=lambda name: "/usr/bin/docker")
    assert check.result == PASS and "uid 1000 can write /opt/nim/.cache" in check.measured


def test_chown_command_targets_the_volume_as_root():
    cache = NimCache(volume="v", path="/opt/nim/.cache", image="img:1")
    assert chown_command(cache) == ("docker run --rm --user 0 -v v:/cache --entrypoint chown img:1 "
                                    "-R 1000:1000 /cache")


def test_make_preflight_is_listed_and_runs_the_cli():
    makefile = (REPO / "Makefile").read_text()
    assert "\npreflight: setup  ## " in makefile
    done = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert any(line.split()[:1] == ["preflight"] for line in done.stdout.splitlines()), done.stdout
