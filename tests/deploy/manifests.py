"""Reading the deployment files the way their tools would.

Kubernetes manifests are rendered by the real kustomize (`kubectl kustomize <dir>`,
or a standalone `kustomize build <dir>`), so the tests check exactly what
`kubectl apply -k` would send and a kustomize rule this module does not know about
cannot slip through. With neither tool on PATH the tests that need them are skipped,
and fail when CI=true. No Docker engine here, so this module does in Python what the
tests need from compose (`${VAR:-default}` interpolation) and reads the Dockerfile,
.dockerignore and the environment variable names the settings classes read.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from pydantic import AliasChoices, AliasPath, SecretStr

from services.platform.composition import definitions
from shared.settings import BelfrySettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "example"
SERVICEMONITOR_COMPONENT = DEPLOY / "components" / "servicemonitor"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
MAKEFILE = REPO / "Makefile"
PYPROJECT = REPO / "pyproject.toml"
# Written by `make lock`: the production image, the image's `local` target, the venv.
PROD_LOCK = REPO / "requirements" / "prod.lock"
LOCAL_LOCK = REPO / "requirements" / "local.lock"
DEV_LOCK = REPO / "requirements" / "dev.lock"

SERVICES = ("scheduler", "rooms", "chat", "notifier")
PREFIXES = {
    "scheduler": "/schedule",
    "rooms": "/rooms",
    "chat": "/chat",
    "notifier": "/notifications",
}
AUTOSCALED = ("rooms", "chat", "notifier")
# What BELFRY_HOST must be in a container: the settings default, 127.0.0.1, is unreachable.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104

Manifest = dict[str, Any]


def load_documents(path: Path) -> list[Manifest]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


# --- docker compose ------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")


def _substitute(match: re.Match[str]) -> str:
    if match.group(0) == "$$":
        return "$"
    if match.group(2) == "?":
        return f"<required: {match.group(1)}>"
    return match.group(3) or ""


def interpolate(value: Any) -> Any:
    """Compose's variable substitution with every variable unset: defaults apply;
    a required one (`${VAR:?message}`) becomes `<required: VAR>`."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(_substitute, value)
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    return value


def load_compose() -> dict[str, Any]:
    (document,) = load_documents(COMPOSE_FILE)
    result: dict[str, Any] = interpolate(document)
    return result


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) for item in environment)
        return dict(pairs)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def parse_duration_seconds(value: str) -> float:
    """Compose durations: `1m30s`, `40s`, `500ms`."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a compose duration: {value!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


# --- Dockerfile ------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rules, enough for this repository: last match wins, `!` re-includes,
    `**` spans directories, and a matched directory excludes what is inside it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        if _dockerignore_regex(body.strip("/")).match(path):
            ignored = not negate
    return ignored


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(f"^{out}(?:/.*)?$")


# --- lock files ------------------------------------------------------------------------

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?$")


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: Version
    marker: Marker | None  # where it is installed: universal locks name other platforms too

    def applies(self) -> bool:
        """Whether pip installs it on this interpreter and platform."""
        return self.marker is None or self.marker.evaluate()


def read_lock(path: Path) -> dict[str, Pin]:
    """The `name==version [; marker]` lines of a lock `uv pip compile` wrote; anything
    else (a range, a URL, an editable, an option) is an error: a lock pins versions."""
    pins: dict[str, Pin] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if not match:
            raise ValueError(f"{path.name}:{number}: not an exact pin: {raw!r}")
        name = canonicalize_name(match.group(1))
        if name in pins:
            raise ValueError(f"{path.name}:{number}: {name} pinned twice")
        marker = Marker(match.group(3)) if match.group(3) else None
        pins[name] = Pin(name, Version(match.group(2)), marker)
    return pins


def project_requirements() -> dict[str, list[Requirement]]:
    """pyproject.toml's requirements by group: `runtime` ([project].dependencies) and
    each extra (`local`, `dev`)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    groups = {"runtime": [Requirement(spec) for spec in project["dependencies"]]}
    for extra, specs in project.get("optional-dependencies", {}).items():
        groups[extra] = [Requirement(spec) for spec in specs]
    return groups


def makefile_rules() -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines), variables expanded where the Makefile
    sets them with `:=`/`=`/`?=` (enough for this repository's Makefile)."""
    text = MAKEFILE.read_text().replace("\\\n", " ")
    variables: dict[str, str] = {}
    for name, value in re.findall(r"^([A-Z_]+)\s*[:?]?=\s*(.*)$", text, re.M):
        variables[name] = value.strip()

    def expand(value: str) -> str:
        for _ in range(5):
            value = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), value)
        return value

    rules: dict[str, tuple[list[str], list[str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("\t") and current is not None:
            rules[current][1].append(expand(line.strip()))
            continue
        current = None
        match = re.match(r"^([^\s:=#][^:=]*):(?!=)\s*(.*)$", line)
        if match:
            current = expand(match.group(1).strip())
            rules[current] = (expand(match.group(2)).split(), [])
    return rules


# --- kustomize ---------------------------------------------------------------------------

# Rendering a directory takes well under a second; a minute means the tool hangs.
KUSTOMIZE_TIMEOUT = 60.0


class KustomizeError(RuntimeError):
    """The kustomize build failed: the message has the command and its stderr."""


def kustomize_command(directory: Path) -> list[str]:
    """`kubectl kustomize <dir>`, or a standalone `kustomize build <dir>`.

    With neither on PATH the caller's test fails when CI=true (CI must never pass by
    skipping every manifest check) and is skipped anywhere else."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize", str(directory)]
    standalone = shutil.which("kustomize")
    if standalone:
        return [standalone, "build", str(directory)]
    reason = "neither `kubectl` nor `kustomize` is on PATH: cannot render deploy/"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: install kubectl or kustomize)", pytrace=False)
    pytest.skip(reason)


@functools.cache
def _build(directory: Path) -> str:
    command = kustomize_command(directory)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=KUSTOMIZE_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise KustomizeError(f"{shlex.join(command)}: no output in {exc.timeout} s") from exc
    if result.returncode != 0:
        raise KustomizeError(
            f"{shlex.join(command)} exited with {result.returncode}:\n{result.stderr.strip()}"
        )
    return result.stdout


def kustomize(directory: Path) -> list[Manifest]:
    """The objects `kubectl apply -k <directory>` would send, as the real kustomize
    renders them (generated names hashed by kustomize, references renamed, Secret
    `data` base64-encoded). Rendered once per directory per session; every call
    returns freshly parsed objects, so a test may change them."""
    objects = [doc for doc in yaml.safe_load_all(_build(directory.resolve())) if doc is not None]
    for obj in objects:
        assert isinstance(obj, dict), f"kustomize printed a non-object: {obj!r}"
        assert obj.get("kind"), f"kustomize printed an object without a kind: {obj}"
        assert obj.get("metadata", {}).get("name"), f"kustomize printed a nameless {obj['kind']}"
    return objects


def read_env_file(path: Path) -> dict[str, str]:
    """kustomize's `envs:` format: KEY=VALUE lines, `#` comments, blank lines."""
    data: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path}:{number}: not KEY=VALUE: {raw!r}")
        if key in data:
            raise ValueError(f"{path}:{number}: {key} set twice")
        data[key] = value
    return data


def decoded_data(obj: Manifest) -> dict[str, str]:
    """A ConfigMap's or Secret's keys and values. kustomize base64-encodes a Secret's
    `data` and wraps values longer than 70 characters over several lines."""
    data: dict[str, str] = dict(obj.get("data") or {})
    if obj["kind"] == "Secret":
        data = {
            k: base64.b64decode("".join(v.split()), validate=True).decode() for k, v in data.items()
        }
        data.update(obj.get("stringData") or {})
    return data


def split_image(image: str) -> tuple[str, str | None]:
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, None
    return name, tag


def _pod_specs(obj: Manifest) -> Iterator[dict[str, Any]]:
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        yield obj["spec"]["template"]["spec"]
    elif obj["kind"] == "Pod":
        yield obj["spec"]


def pod_spec(obj: Manifest) -> dict[str, Any]:
    (spec,) = _pod_specs(obj)
    return spec


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} objects {kind}/{name}"
    return matches[0]


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def parse_quantity(value: str | int | float) -> float:
    """Kubernetes quantities: cpu `100m`, `1`; memory `256Mi`, `1G`."""
    text = str(value)
    suffixes = {
        "m": 1e-3,
        "": 1.0,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "Ki": 2.0**10,
        "Mi": 2.0**20,
        "Gi": 2.0**30,
    }
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi)?", text)
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * suffixes[match.group(2) or ""]


# --- settings ---------------------------------------------------------------------------


def settings_classes() -> dict[str, type[BelfrySettings]]:
    """Each service's settings class, as its definition names it."""
    return {d.name: d.settings_type for d in definitions()}


def env_names(settings: type[BelfrySettings]) -> dict[str, str]:
    """Environment variable name (upper case) -> field name, as pydantic-settings
    reads them: an alias replaces the prefixed name."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias or field.alias
        choices: list[str]
        if isinstance(alias, AliasChoices):
            choices = [c for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, AliasPath):
            choices = []
        elif isinstance(alias, str):
            choices = [alias]
        else:
            choices = [prefix + field_name]
        for choice in choices:
            names[choice.upper()] = field_name
    return names


def secret_fields(settings: type[BelfrySettings]) -> set[str]:
    return {
        name
        for name, field in settings.model_fields.items()
        if field.annotation is SecretStr or "SecretStr" in str(field.annotation)
    }
