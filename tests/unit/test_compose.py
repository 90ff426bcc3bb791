"""docker-compose.yml: valid against the Compose spec, and safe and correct where it matters.

No Docker engine is needed: the file is validated with check-jsonschema's bundled Compose
schema, read with PyYAML, and its healthcheck probe is run against a local stub server.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import yaml

from helpers.settings import OFFLINE_MODEL_ID
from llm_kit.cli import build_parser

from support import REPO, venv_tool

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
NIM_IMAGE = "nvcr.io/nim/meta/llama-3.1-8b-instruct"
SERVER_COMMAND = ["llm-kit", "server", "start", "--foreground", "--host", "0.0.0.0", "--port", "8000"]
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def in_profile(services: dict, profile: str) -> dict:
    return {name: svc for name, svc in services.items() if profile in svc.get("profiles", [])}


def env_of(service: dict) -> dict:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def seconds(duration: str) -> float:
    """A Compose duration such as 30m, 1h30m or 90s, in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), f"bad duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# --- schema ---------------------------------------------------------------------------------

def test_compose_file_matches_the_compose_spec_schema():
    done = subprocess.run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(COMPOSE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_rejects_a_broken_compose_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  llama:\n    image: x\n    shm_sise: 16gb\n")
    done = subprocess.run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(broken)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, "the schema check must be able to fail"


# --- the NIM service ---------------------------------------------------------------------------

def test_nim_image_is_pinned_to_a_release(services):
    image = services["llama"]["image"]
    name, _, tag = image.rpartition(":")
    assert name == NIM_IMAGE, image
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin an exact NIM release, not {tag!r}"


def test_nim_reserves_one_nvidia_gpu(services):
    devices = services["llama"]["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    device = devices[0]
    assert device["driver"] == "nvidia"
    assert device["count"] == 1
    assert device["capabilities"] == ["gpu"]


def test_nim_cache_shm_and_key(services, compose):
    nim = services["llama"]
    assert str(nim["shm_size"]).lower() == "16gb"
    targets = {volume.split(":")[1]: volume.split(":")[0] for volume in nim["volumes"]}
    assert "/opt/nim/.cache" in targets
    assert targets["/opt/nim/.cache"] in compose["volumes"], "the NIM cache is a named volume"
    key = env_of(nim)["NGC_API_KEY"]
    assert re.fullmatch(r"\$\{NGC_API_KEY:?\?[^}]+\}", key), \
        f"NGC_API_KEY must be required from the environment/.env with a message, not {key!r}"


def test_nim_reuses_the_kv_cache_of_repeated_prompts(services):
    """Off by default in a NIM; set as NVIDIA documents it, with the document named beside it."""
    assert str(env_of(services["llama"])["NIM_ENABLE_KV_CACHE_REUSE"]) == "1"
    text = COMPOSE.read_text()
    assert "docs.nvidia.com/nim/large-language-models/latest/kv-cache-reuse.html" in text


def test_nim_waits_long_enough_for_the_first_download(services):
    healthcheck = services["llama"]["healthcheck"]
    assert seconds(healthcheck["start_period"]) >= 20 * 60


def test_nim_health_is_probed_often_while_it_starts(services):
    healthcheck = services["llama"]["healthcheck"]
    start_interval = seconds(healthcheck["start_interval"])
    assert start_interval <= 10, "readiness must be seen soon after the model has loaded"
    assert start_interval < seconds(healthcheck["interval"])
    assert seconds(healthcheck["start_period"]) > 60 * start_interval  # many probes while loading


def test_lab_waits_for_a_healthy_model_server(services):
    assert services["lab"]["depends_on"]["llama"]["condition"] == "service_healthy"
    assert services["lab-cpu"]["depends_on"]["llama-cpu"]["condition"] == "service_healthy"


# --- healthchecks, run for real against a stub server --------------------------------------

class _Stub(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        body = b'{"object":"health.response"}'
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_server():
    handler = type("Handler", (_Stub,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_probe(healthcheck: dict, base: str) -> subprocess.CompletedProcess:
    """Run the healthcheck's own Python probe, pointed at `base` instead of the container."""
    test = healthcheck["test"]
    assert test[:3] == ["CMD", "python3", "-c"], f"expected a python3 -c probe, got {test[:3]}"
    snippet, url = test[3], test[4]
    path = urlsplit(url).path
    return subprocess.run([sys.executable, "-c", snippet, base + path],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("service, path", [("llama", "/v1/health/ready"), ("llama-cpu", "/health")])
def test_healthcheck_fails_while_loading_and_passes_when_ready(services, stub_server, service, path):
    healthcheck = services[service]["healthcheck"]
    assert urlsplit(healthcheck["test"][4]).path == path
    handler, base = stub_server
    handler.status = 503
    loading = run_probe(healthcheck, base)
    assert loading.returncode != 0, "a 503 (model still loading) must count as unhealthy"
    assert "503" in loading.stderr
    handler.status = 200
    ready = run_probe(healthcheck, base)
    assert ready.returncode == 0, ready.stderr


def test_healthcheck_fails_when_nothing_listens(services):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for service in ("llama", "llama-cpu"):
        done = run_probe(services[service]["healthcheck"], f"http://127.0.0.1:{port}")
        assert done.returncode != 0, service


# --- exposure and secrets ----------------------------------------------------------------------

def published_ports(services: dict):
    for name, service in services.items():
        for port in service.get("ports", []):
            yield name, port


def test_every_published_port_is_bound_to_localhost(services):
    ports = list(published_ports(services))
    assert {name for name, _ in ports} >= {"llama", "lab", "lab-cpu"}
    for name, port in ports:
        if isinstance(port, dict):
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
        else:
            resolved = re.sub(r"\$\{[A-Z_0-9]+:?-([^}]*)\}", r"\1", str(port))  # ${VAR:-default}
            host_ip, host_port, container_port = resolved.split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond localhost"
            assert host_port.isdigit() and container_port.isdigit(), f"{name}: {port!r}"


def test_lab_publishes_jupyterlab_on_8888(services):
    for name in ("lab", "lab-cpu"):
        assert any(str(port).endswith(":8888") for port in services[name]["ports"]), name


def test_no_secret_values_inline():
    for path in (COMPOSE, ENV_EXAMPLE):
        text = path.read_text()
        assert not re.search(r"nvapi-[A-Za-z0-9_-]{6,}", text), f"{path.name} contains an API key"


def test_secret_variables_are_references(services):
    found = set()
    for name, service in services.items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key):
                found.add(key)
                assert re.fullmatch(r"\$\{" + key + r"(:?[?-][^}]*)?\}", str(value)), \
                    f"{name}.{key} must come from the environment/.env as ${{{key}}}, not inline"
    assert found >= {"NGC_API_KEY", "JUPYTER_TOKEN"}


def test_env_example_lists_every_variable_without_values(compose):
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text)) | {"COMPOSE_PROFILES"}
    example = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"([A-Z_][A-Z0-9_]*)=(.*)$", line)
        if match:
            example[match.group(1)] = match.group(2)
    assert used <= set(example), f".env.example lacks {sorted(used - set(example))}"
    for name, value in example.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example must leave {name} empty"
    assert example["COMPOSE_PROFILES"] == "gpu"


def test_env_file_is_git_ignored():
    assert ".env" in (REPO / ".gitignore").read_text().split()


# --- profiles ------------------------------------------------------------------------------

def test_profiles_split_gpu_and_cpu_stacks(services):
    assert set(in_profile(services, "gpu")) == {"llama", "lab"}
    assert set(in_profile(services, "cpu")) == {"llama-cpu", "lab-cpu"}
    assert all(service.get("profiles") for service in services.values()), \
        "an unprofiled service would start in both stacks"
    for profile in ("gpu", "cpu"):  # compose refuses a dependency outside the enabled profiles
        enabled = in_profile(services, profile)
        for name, service in enabled.items():
            assert set(service.get("depends_on", {})) <= set(enabled), name


def test_cpu_llama_runs_the_kits_server_under_the_name_llama(services):
    cpu = services["llama-cpu"]
    assert cpu["command"] == SERVER_COMMAND
    assert "llama" in cpu["networks"]["default"]["aliases"]
    assert cpu["image"] == services["lab-cpu"]["image"] == services["lab"]["image"]
    assert cpu["build"] == "." and cpu["image"] == services["lab-cpu"]["image"]
    assert "deploy" not in cpu, "the cpu profile must not ask for a GPU"


def test_cpu_server_command_parses_with_the_kits_cli():
    done = subprocess.run([venv_tool("llm-kit"), "server", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--foreground" in done.stdout and "--host" in done.stdout
    args = build_parser().parse_args(SERVER_COMMAND[1:])
    assert (args.command, args.action, args.foreground, args.host, args.port) == (
        "server", "start", True, "0.0.0.0", 8000)


def test_lab_settings_per_profile(services):
    gpu, cpu = env_of(services["lab"]), env_of(services["lab-cpu"])
    for env in (gpu, cpu):
        assert env["NIM_BASE_URL"] == "http://llama:8000/v1"
        assert env["KIT_LAB_IP"] == "0.0.0.0"
    assert gpu["NIM_MODEL"] == "meta/llama-3.1-8b-instruct"
    assert cpu["NIM_MODEL"] == OFFLINE_MODEL_ID


def test_lab_mounts_the_student_copies_only(services):
    for name in ("lab", "lab-cpu"):
        mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in services[name]["volumes"]}
        assert mounts == {"./notebooks": "/kit/notebooks"}, "solutions/ holds the hidden tests"
