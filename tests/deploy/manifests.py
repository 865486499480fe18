"""Reading the deployment files the way their tools would, without the tools.

No Docker engine and no kustomize binary here, so this module does in Python what
the tests need from them: compose's `${VAR:-default}` interpolation, a small
kustomize (resources, components, namespace, images, ConfigMap/Secret generators
with name hashes, strategic-merge patches by kind and name), and the environment
variable names the settings classes read. Anything in a kustomization this
renderer does not understand raises, so a new feature cannot be silently skipped.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, AliasPath, SecretStr

from shared.settings import BelfrySettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "example"
SERVICEMONITOR_COMPONENT = DEPLOY / "components" / "servicemonitor"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

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

_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's variable substitution with every variable unset: defaults apply."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(
            lambda m: "$" if m.group(0) == "$$" else (m.group(2) or ""), value
        )
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


# --- a small kustomize -----------------------------------------------------------------

_KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "namespace",
    "images",
    "configMapGenerator",
    "secretGenerator",
    "patches",
}
_GENERATOR_KEYS = {"name", "behavior", "envs", "literals"}
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "StorageClass",
    "IngressClass",
    "PersistentVolume",
}
_GENERATED = "_generated"  # marker on generated objects until their names are hashed


class UnsupportedKustomization(Exception):
    pass


def kustomize(directory: Path) -> list[Manifest]:
    """`kustomize build <directory>`, for the features this repository uses.

    Generated ConfigMaps and Secrets get a `-<hash>` suffix from their content (not
    byte-identical to kustomize's, same behaviour) and references to them in pod
    templates follow the new names."""
    objects = _render(directory)
    renames: dict[tuple[str, str], str] = {}
    for obj in objects:
        if obj.pop(_GENERATED, False):
            content = json.dumps(
                {"kind": obj["kind"], "data": obj.get("data", {})}, sort_keys=True
            ).encode()
            hashed = f"{obj['metadata']['name']}-{hashlib.sha256(content).hexdigest()[:10]}"
            renames[(obj["kind"], obj["metadata"]["name"])] = hashed
            obj["metadata"]["name"] = hashed
    for obj in objects:
        for pod in _pod_specs(obj):
            _rename_references(pod, renames)
    return objects


def _render(directory: Path) -> list[Manifest]:
    path = directory / "kustomization.yaml"
    (kustomization,) = load_documents(path)
    unknown = set(kustomization) - _KUSTOMIZATION_KEYS
    if unknown:
        raise UnsupportedKustomization(f"{path}: {sorted(unknown)}")
    objects: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        target = directory / entry
        objects += _render(target) if target.is_dir() else load_documents(target)
    for entry in kustomization.get("components", []):
        objects += _render(directory / entry)
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in kustomization.get(key, []):
            _generate(directory, kind, generator, objects)
    for patch in kustomization.get("patches", []):
        _apply_patch(directory, patch, objects)
    for image in kustomization.get("images", []):
        _set_image(image, objects)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in _CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
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


def _generate(
    directory: Path, kind: str, generator: dict[str, Any], objects: list[Manifest]
) -> None:
    unknown = set(generator) - _GENERATOR_KEYS
    if unknown:
        raise UnsupportedKustomization(f"{kind} generator {generator['name']}: {sorted(unknown)}")
    values: dict[str, str] = {}
    for env_file in generator.get("envs", []):
        values.update(read_env_file(directory / env_file))
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        values[key] = value
    behavior = generator.get("behavior", "create")
    existing = [
        obj
        for obj in objects
        if obj.get(_GENERATED)
        and obj["kind"] == kind
        and obj["metadata"]["name"] == generator["name"]
    ]
    if behavior == "create":
        if existing:
            raise ValueError(f"{kind} {generator['name']} generated twice (use behavior: merge)")
        target: Manifest = {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"name": generator["name"]},
            _GENERATED: True,
        }
        if kind == "Secret":
            target["type"] = "Opaque"
        objects.append(target)
        current: dict[str, str] = {}
    elif behavior in ("merge", "replace"):
        if len(existing) != 1:
            raise ValueError(f"{behavior}: no generated {kind} {generator['name']} in the bases")
        target = existing[0]
        current = decoded_data(target) if behavior == "merge" else {}
    else:
        raise UnsupportedKustomization(f"generator behavior {behavior!r}")
    current.update(values)
    if kind == "Secret":
        target["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in current.items()}
    else:
        target["data"] = current


def decoded_data(obj: Manifest) -> dict[str, str]:
    data: dict[str, str] = dict(obj.get("data") or {})
    if obj["kind"] == "Secret":
        data = {k: base64.b64decode(v).decode() for k, v in data.items()}
        data.update(obj.get("stringData") or {})
    return data


def _apply_patch(directory: Path, patch: dict[str, Any], objects: list[Manifest]) -> None:
    if set(patch) - {"path", "patch"}:
        raise UnsupportedKustomization(f"patch options {sorted(set(patch) - {'path', 'patch'})}")
    if "path" in patch:
        documents = load_documents(directory / patch["path"])
    else:
        documents = [doc for doc in yaml.safe_load_all(patch["patch"]) if doc is not None]
    for document in documents:
        matches = [
            obj
            for obj in objects
            if obj["kind"] == document["kind"]
            and obj["metadata"]["name"] == document["metadata"]["name"]
        ]
        if len(matches) != 1:
            raise ValueError(
                f"patch {document['kind']}/{document['metadata']['name']} "
                f"matches {len(matches)} objects"
            )
        strategic_merge(matches[0], document)


def strategic_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Maps merge key by key; lists of maps that all have a `name` merge by name
    (containers, env, ports, volumes); any other list is replaced."""
    for key, value in patch.items():
        if isinstance(value, str) and value.startswith("$patch"):
            raise UnsupportedKustomization(f"patch directive at {key}")
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            strategic_merge(current, value)
        elif isinstance(current, list) and _named_list(value) and _named_list(current):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    strategic_merge(by_name[item["name"]], item)
                else:
                    current.append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and "name" in item for item in value)
    )


def split_image(image: str) -> tuple[str, str | None]:
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, None
    return name, tag


def _set_image(rule: dict[str, Any], objects: list[Manifest]) -> None:
    if set(rule) - {"name", "newName", "newTag"}:
        raise UnsupportedKustomization(f"image options {sorted(rule)}")
    for obj in objects:
        for pod in _pod_specs(obj):
            for container in pod.get("initContainers", []) + pod.get("containers", []):
                name, tag = split_image(container["image"])
                if name == rule["name"]:
                    new_tag = rule.get("newTag", tag)
                    new_name = rule.get("newName", name)
                    container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _pod_specs(obj: Manifest) -> Iterator[dict[str, Any]]:
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        yield obj["spec"]["template"]["spec"]
    elif obj["kind"] == "Pod":
        yield obj["spec"]


def pod_spec(obj: Manifest) -> dict[str, Any]:
    (spec,) = _pod_specs(obj)
    return spec


def _rename_references(pod: dict[str, Any], renames: dict[tuple[str, str], str]) -> None:
    def rename(kind: str, ref: dict[str, Any] | None, key: str = "name") -> None:
        if ref and (kind, ref.get(key)) in renames:
            ref[key] = renames[(kind, ref[key])]

    for container in pod.get("initContainers", []) + pod.get("containers", []):
        for source in container.get("envFrom", []):
            rename("ConfigMap", source.get("configMapRef"))
            rename("Secret", source.get("secretRef"))
        for variable in container.get("env", []):
            value_from = variable.get("valueFrom") or {}
            rename("ConfigMap", value_from.get("configMapKeyRef"))
            rename("Secret", value_from.get("secretKeyRef"))
    for volume in pod.get("volumes", []):
        rename("ConfigMap", volume.get("configMap"))
        rename("Secret", volume.get("secret"), "secretName")


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
    return {
        name: importlib.import_module(f"services.{name}.bootstrap").definition.settings_type
        for name in SERVICES
    }


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
