"""The image: multi-stage, slim, non-root, runtime dependencies only, `python -m`."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from shared.settings import BelfrySettings
from tests.deploy.manifests import (
    ALL_INTERFACES,
    DOCKERFILE,
    REPO,
    dockerfile_instructions,
    dockerignore_patterns,
    dockerignored,
    env_names,
)

Instructions = list[tuple[str, str]]


@pytest.fixture(scope="module")
def instructions() -> Instructions:
    return dockerfile_instructions(DOCKERFILE.read_text())


def stages(instructions: Instructions) -> list[Instructions]:
    result: list[Instructions] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, arguments))
    return result


def global_args(instructions: Instructions) -> dict[str, str]:
    args: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            args[name] = default
    return args


def env_pairs(arguments: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", arguments))


def runtime_env(instructions: Instructions) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in stages(instructions)[-1]:
        if keyword == "ENV":
            env.update(env_pairs(arguments))
    return env


def test_builder_and_slim_python_311_runtime(instructions: Instructions) -> None:
    all_stages = stages(instructions)
    assert len(all_stages) >= 2, "multi-stage: a builder and a runtime"
    base = global_args(instructions)
    images = []
    for stage in all_stages:
        image = stage[0][1].split()[0]
        images.append(re.sub(r"\$\{(\w+)\}", lambda m: base[m.group(1)], image))
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", images[-1]), images[-1]
    runtime = all_stages[-1]
    copies = [a for k, a in runtime if k == "COPY"]
    assert any(a.startswith("--from=builder /opt/venv") for a in copies), copies
    # The runtime stage installs nothing: what it runs was built in the builder.
    assert not [a for k, a in runtime if k == "RUN" and "pip" in a]


def test_no_dev_dependencies_are_installed(instructions: Instructions) -> None:
    runs = " ".join(a for k, a in instructions if k == "RUN")
    assert "[dev]" not in runs
    assert "requirements-dev" not in runs
    assert "['project']['dependencies']" in runs, "installs [project].dependencies only"
    assert "pip install --no-deps ." in runs


def test_runs_as_a_numeric_non_root_user(instructions: Instructions) -> None:
    users = [a for k, a in stages(instructions)[-1] if k == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric, so runAsNonRoot can verify it"
    assert int(uid) > 0


def test_python_environment_and_listen_address(instructions: Instructions) -> None:
    env = runtime_env(instructions)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["BELFRY_HOST"] == ALL_INTERFACES
    assert env["BELFRY_LOG_FORMAT"] == "json"
    settings_env = env_names(BelfrySettings)
    for name in env:
        if name.startswith("BELFRY_"):
            assert name in settings_env, f"{name} is not a setting"


def test_port_signal_entrypoint_and_default_module(instructions: Instructions) -> None:
    runtime = dict(stages(instructions)[-1])
    env = runtime_env(instructions)
    assert runtime["EXPOSE"].split() == [env["BELFRY_PORT"]]
    assert runtime["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(runtime["ENTRYPOINT"]) == ["python", "-m"]
    (module,) = json.loads(runtime["CMD"])
    package = REPO.joinpath(*module.split("."))
    assert module.startswith("services."), module
    assert package.is_dir(), f"{module} is not a package of the repository"


def test_oci_labels(instructions: Instructions) -> None:
    labels: dict[str, str] = {}
    for keyword, arguments in stages(instructions)[-1]:
        if keyword == "LABEL":
            labels.update(dict(re.findall(r'([\w.]+)="([^"]*)"', arguments)))
    for key in ("title", "description", "version", "revision", "created", "source"):
        assert f"org.opencontainers.image.{key}" in labels, key


def test_copies_every_package_and_dockerignore_keeps_them(instructions: Instructions) -> None:
    sources = []
    for keyword, arguments in instructions:
        if keyword == "COPY" and not arguments.startswith("--from"):
            *paths, _destination = arguments.split()
            sources += paths
    patterns = dockerignore_patterns()
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file"
        assert not dockerignored(source, patterns), f".dockerignore excludes {source}"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in includes}
    assert packages <= set(sources), f"packages not copied: {packages - set(sources)}"
    readme = pyproject["project"].get("readme")
    assert readme is None or readme in sources, "setuptools needs the readme to build"


@pytest.mark.parametrize(
    "path",
    [
        ".venv",
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "shared/__pycache__/x.pyc",
        "deploy/overlays/example/secrets.env",
        ".env",
    ],
)
def test_dockerignore_keeps_local_state_and_secrets_out(path: str) -> None:
    assert dockerignored(path, dockerignore_patterns())


def test_dockerignore_matcher() -> None:
    # The matcher itself, so a pass above means something.
    assert dockerignored("a/b/c.pyc", ["**/*.pyc"])
    assert dockerignored("build/x", ["build"])
    assert not dockerignored("shared/build.py", ["build"])
    assert not dockerignored("keep.txt", ["*.txt", "!keep.txt"])
    assert not dockerignored(str(Path("shared")), ["tests"])
