"""The images: multi-stage, slim, non-root, installed from the lock files, `python -m`.

The default (last) target `runtime` is the production image: the production lock,
`shared` and `services`. The target `local` adds moto and the emulators (the local
lock and the `emulators` package) for docker compose's stand-ins and a laptop.
No Docker engine here: the Dockerfile is read as Docker reads it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from services.platform.settings import PlatformSettings
from shared.settings import BelfrySettings
from tests.deploy.manifests import (
    ALL_INTERFACES,
    DEV_LOCK,
    DOCKERFILE,
    LOCAL_LOCK,
    PROD_LOCK,
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


def stage_name(stage: Instructions) -> str:
    parts = stage[0][1].split()
    return parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""


def named_stages(instructions: Instructions) -> dict[str, Instructions]:
    return {stage_name(stage): stage for stage in stages(instructions)}


def lineage(instructions: Instructions, name: str) -> Instructions:
    """A stage's instructions after those of the stages it is built FROM (what the
    image of that target inherits: ENV, LABEL, USER, ENTRYPOINT, ...)."""
    by_name = named_stages(instructions)
    stage = by_name[name]
    parent = stage[0][1].split()[0]
    if parent in by_name:
        return lineage(instructions, parent) + stage[1:]
    return stage


def runtime_env(instructions: Instructions, target: str = "runtime") -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in lineage(instructions, target):
        if keyword == "ENV":
            env.update(env_pairs(arguments))
    return env


def last(instructions: Instructions, keyword: str, target: str = "runtime") -> str:
    values = [a for k, a in lineage(instructions, target) if k == keyword]
    assert values, f"target {target} has no {keyword}"
    return values[-1]


def base_image(instructions: Instructions, target: str) -> str:
    image = lineage(instructions, target)[0][1].split()[0]
    args = global_args(instructions)
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def test_builder_and_slim_python_311_runtime(instructions: Instructions) -> None:
    all_stages = stages(instructions)
    assert len(all_stages) >= 2, "multi-stage: a builder and a runtime"
    assert stage_name(all_stages[-1]) == "runtime", "the default target is the production image"
    for target in ("runtime", "local"):
        image = base_image(instructions, target)
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), f"{target}: {image}"
        copies = [a for k, a in lineage(instructions, target) if k == "COPY"]
        assert [a for a in copies if a.startswith("--from=")], f"{target} copies a built venv"
        # What it runs was built in a builder: the image installs nothing itself.
        assert not [a for k, a in lineage(instructions, target) if k == "RUN" and "pip" in a]
    runtime = named_stages(instructions)["runtime"]
    copies = [a for k, a in runtime if k == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], copies


def pip_installs(stage: Instructions) -> list[str]:
    commands = []
    for keyword, arguments in stage:
        if keyword == "RUN":
            commands += [c.strip() for c in arguments.split("&&") if "pip install" in c]
    return commands


def test_the_builder_installs_the_production_lock_and_nothing_else(
    instructions: Instructions,
) -> None:
    builder = named_stages(instructions)["builder"]
    prod_lock = str(PROD_LOCK.relative_to(REPO))
    copied = [a.split()[0] for k, a in builder if k == "COPY"]
    assert prod_lock in copied, copied
    installs = pip_installs(builder)
    assert installs == [
        f"pip install --no-deps --requirement {prod_lock}",
        "pip install --no-deps .",
    ], "exactly the lock (--no-deps: nothing resolved at build time), then Belfry"
    runs = " ".join(a for k, a in builder if k == "RUN")
    assert "pip check" in runs, "the lock is complete: every requirement is installed"
    # shared and services only: the emulators are the local target's.
    assert "emulators" not in copied
    assert {"shared", "services"} <= set(copied)


def test_no_dev_or_local_dependencies_in_the_production_image(instructions: Instructions) -> None:
    production = [i for n in ("builder", "runtime") for i in lineage(instructions, n)]
    text = " ".join(a for _, a in production)
    for forbidden in ("[dev]", "[local]", str(DEV_LOCK.name), str(LOCAL_LOCK.name), "emulators"):
        assert forbidden not in text, f"the production image gets {forbidden}"
    copies = [a for k, a in named_stages(instructions)["runtime"] if k == "COPY"]
    assert all(a.startswith("--from=builder ") for a in copies), copies


def test_the_local_target_adds_the_local_lock_and_the_emulators(
    instructions: Instructions,
) -> None:
    by_name = named_stages(instructions)
    assert "local" in by_name, "docker compose builds its stand-ins with `target: local`"
    (source,) = [a.split()[0] for k, a in by_name["local"] if k == "COPY"]
    builder = source.removeprefix("--from=")
    chain = lineage(instructions, builder)
    local_lock = str(LOCAL_LOCK.relative_to(REPO))
    assert f"pip install --no-deps --requirement {local_lock}" in pip_installs(chain)
    copied = [a.split()[0] for k, a in chain if k == "COPY"]
    assert "emulators" in copied, "the emulators package is installed in the local target"
    assert any("pip install --no-deps" in c and c.endswith(" .") for c in pip_installs(chain))
    (module,) = json.loads(last(instructions, "CMD", "local"))
    assert module == "services.platform", "docker run belfry:local: `make run` in a container"
    env = runtime_env(instructions, "local")
    assert env.get("BELFRY_PLATFORM_EMBED_AWS", "true") == "true", "local embeds moto"
    assert env.get("BELFRY_PLATFORM_EMBED_CHIME", "true") == "true"


def test_without_an_argument_production_runs_against_configured_endpoints(
    instructions: Instructions,
) -> None:
    """The runtime image has no moto or emulator: its platform must not embed them."""
    (module,) = json.loads(last(instructions, "CMD"))
    env = runtime_env(instructions)
    if module == "services.platform":
        assert env["BELFRY_PLATFORM_EMBED_AWS"] == "false"
        assert env["BELFRY_PLATFORM_EMBED_CHIME"] == "false"
    settings = PlatformSettings.model_validate(
        {k.removeprefix("BELFRY_").lower(): v for k, v in env.items() if k.startswith("BELFRY_")}
    )
    assert not settings.embeds_aws
    assert not settings.embeds_chime


def test_runs_as_a_numeric_non_root_user(instructions: Instructions) -> None:
    for target in ("runtime", "local"):
        uid = last(instructions, "USER", target).split(":")[0]
        assert uid.isdigit(), "numeric, so runAsNonRoot can verify it"
        assert int(uid) > 0


def test_python_environment_and_listen_address(instructions: Instructions) -> None:
    env = runtime_env(instructions)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["BELFRY_HOST"] == ALL_INTERFACES
    assert env["BELFRY_LOG_FORMAT"] == "json"
    settings_env = env_names(BelfrySettings) | env_names(PlatformSettings)
    for name in env:
        if name.startswith("BELFRY_"):
            assert name in settings_env, f"{name} is not a setting"


def test_port_signal_entrypoint_and_default_module(instructions: Instructions) -> None:
    runtime = dict(lineage(instructions, "runtime"))
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
    for keyword, arguments in lineage(instructions, "runtime"):
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
