"""environment.yml (conda) must ask for what pyproject.toml asks for.

conda cannot be reached from the kit's CI, so instead of solving the environment this test
compares the two files: the same packages (pip names mapped to conda-forge names) and the same
version bounds, a Python that pyproject accepts, and the kit itself installed editable.
"""

from __future__ import annotations

import re
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from support import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib


# pip requirement (name plus extras) -> conda-forge package providing it, where they differ.
PIP_TO_CONDA = {
    "ray[serve]": "ray-serve",
}
CONDA_ONLY = {"python", "pip"}  # the interpreter and installer, not dependencies of the kit


def pip_key(requirement: Requirement) -> str:
    name = canonicalize_name(requirement.name)
    return f"{name}[{','.join(sorted(requirement.extras))}]" if requirement.extras else name


def pyproject_dependencies(pyproject: dict) -> dict[str, SpecifierSet]:
    """pyproject's dependencies, keyed by the conda-forge name that provides each."""
    wanted = {}
    for line in pyproject["project"]["dependencies"]:
        requirement = Requirement(line)
        key = pip_key(requirement)
        if requirement.extras and key not in PIP_TO_CONDA:
            raise AssertionError(f"{key}: add its conda-forge name to PIP_TO_CONDA")
        wanted[PIP_TO_CONDA.get(key, key)] = requirement.specifier
    return wanted


def parse_conda_spec(spec: str) -> tuple[str, SpecifierSet]:
    """'name >=1,<2' (or 'name>=1,<2', 'name=1.2') -> (name, specifier)."""
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", spec.strip())
    if not match:
        raise AssertionError(f"cannot read conda spec {spec!r}")
    name, version = match.group(1), match.group(2).replace(" ", "")
    if re.fullmatch(r"=[^=<>!,]+", version):  # conda's fuzzy pin: python=3.11 means 3.11.*
        version = f"=={version[1:]}.*"
    return canonicalize_name(name), SpecifierSet(version)


def environment_dependencies(environment: dict) -> tuple[dict[str, SpecifierSet], list[str]]:
    """(package -> specifier from both the conda and the pip lists, the pip list's other lines)."""
    found: dict[str, SpecifierSet] = {}
    pip_other: list[str] = []
    for item in environment["dependencies"]:
        if isinstance(item, dict):
            for line in item["pip"]:
                if line.startswith("-"):
                    pip_other.append(line)
                    continue
                requirement = Requirement(line)
                key = pip_key(requirement)
                found[PIP_TO_CONDA.get(key, key)] = requirement.specifier
        else:
            name, specifier = parse_conda_spec(item)
            if name in found:
                raise AssertionError(f"{name} is listed twice")
            found[name] = specifier
    return found, pip_other


def lower_bound(specifier: SpecifierSet) -> Version | None:
    bounds = [Version(s.version) for s in specifier if s.operator in (">=", "==", "~=", ">")]
    return max(bounds) if bounds else None


def disagreements(pyproject: dict, environment: dict) -> list[str]:
    """Every way the two files disagree, as sentences (empty when they agree)."""
    wanted = pyproject_dependencies(pyproject)
    found, _ = environment_dependencies(environment)
    found = {name: spec for name, spec in found.items() if name not in CONDA_ONLY}
    problems = [f"environment.yml lacks {name} (pyproject: {wanted[name]})"
                for name in sorted(set(wanted) - set(found))]
    problems += [f"environment.yml has {name}, which pyproject.toml does not list"
                 for name in sorted(set(found) - set(wanted))]
    for name in sorted(set(wanted) & set(found)):
        if lower_bound(wanted[name]) != lower_bound(found[name]):
            problems.append(f"{name}: lower bound {lower_bound(found[name])} in environment.yml, "
                            f"{lower_bound(wanted[name])} in pyproject.toml")
        elif wanted[name] != found[name]:
            problems.append(f"{name}: '{found[name]}' in environment.yml, '{wanted[name]}' in "
                            "pyproject.toml")
    return problems


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text())


def test_environment_matches_pyproject(pyproject, environment):
    assert disagreements(pyproject, environment) == []


def test_conda_forge_is_the_channel(environment):
    assert environment["channels"] == ["conda-forge"]


def test_python_is_pinned_and_accepted_by_pyproject(pyproject, environment):
    found, _ = environment_dependencies(environment)
    assert str(found["python"]) == "==3.11.*"
    assert Version("3.11") in SpecifierSet(pyproject["project"]["requires-python"])


def test_kit_installed_editable_without_the_test_tools(environment):
    found, pip_other = environment_dependencies(environment)
    assert "pip" in found, "the pip section needs pip itself in the conda list"
    # A learner's environment: the test tools ([dev]) come with `make test`, as with the venv.
    assert any(re.fullmatch(r"-e\s+\.", line) for line in pip_other), pip_other


def test_comment_says_the_file_is_not_solved_in_ci():
    header = (REPO / "environment.yml").read_text().split("name:")[0]
    assert "conda" in header and "CI" in header and "not" in header


# The comparison itself must catch drift: feed it environments that disagree.

def _mutated(environment: dict, old: str, new: str | None) -> dict:
    copy = {**environment, "dependencies": []}
    for item in environment["dependencies"]:
        if isinstance(item, str) and item.split()[0] == old:
            if new is not None:
                copy["dependencies"].append(new)
        else:
            copy["dependencies"].append(item)
    return copy


@pytest.mark.parametrize("old, new, expected", [
    ("pandas", None, "lacks pandas"),
    ("pandas", "pandas >=1.5,<3", "pandas: lower bound 1.5"),
    ("pandas", "pandas >=2,<4", "pandas: '"),
    ("ray-serve", "ray-default >=2.40,<3", "lacks ray-serve"),
    ("httpx", "httpx-ws >=0.27,<1", "has httpx-ws"),
])
def test_drift_is_reported(pyproject, environment, old, new, expected):
    problems = disagreements(pyproject, _mutated(environment, old, new))
    assert any(expected in problem for problem in problems), problems


def test_pip_names_map_to_conda_names():
    assert parse_conda_spec("ray-serve >=2.40,<3") == ("ray-serve", SpecifierSet(">=2.40,<3"))
    assert pyproject_dependencies({"project": {"dependencies": ["ray[serve]>=2.40,<3"]}}) == {
        "ray-serve": SpecifierSet(">=2.40,<3")}
    with pytest.raises(AssertionError, match="PIP_TO_CONDA"):
        pyproject_dependencies({"project": {"dependencies": ["uvicorn[standard]>=0.29"]}})
