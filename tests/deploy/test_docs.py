"""Every environment variable the deployment files use is documented."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re

from shared.budget import BUDGET_OWNER, BUDGET_TABLE
from shared.dynamo import TableSpec
from shared.ratelimit import RATE_LIMIT_OWNER, RATE_LIMIT_TABLE
from shared.settings import BelfrySettings
from tests.deploy.manifests import (
    COMPOSE_FILE,
    OVERLAY,
    REPO,
    SERVICES,
    compose_environment,
    decoded_data,
    env_names,
    kustomize,
    load_compose,
    of_kind,
    pod_spec,
)

NONE = "\u2013"  # the README's en dash for "no such key"
# docs/configuration.md is generated from the settings classes; docs/deploy.md says
# what the deployment files set and why.
DOCS = (REPO / "docs" / "configuration.md", REPO / "docs" / "deploy.md")


def documented() -> set[str]:
    return {name for doc in DOCS for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", doc.read_text())}


def test_the_settings_deployments_must_decide_are_explained() -> None:
    deploy_doc = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", DOCS[1].read_text()))
    for name in ("AMQP_URL", "BELFRY_HOST", "BELFRY_PORT", "BELFRY_INSTANCE_ID"):
        assert name in deploy_doc
    assert set(env_names(BelfrySettings)) <= documented()


def test_every_variable_used_by_compose_is_documented() -> None:
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    services = load_compose()["services"]
    for name, service in services.items():
        if name != "rabbitmq":  # the broker image's own variables
            used |= set(compose_environment(service))
    missing = used - documented()
    assert not missing, f"document in docs/deploy.md: {sorted(missing)}"


def test_every_variable_used_in_kubernetes_is_documented() -> None:
    objects = kustomize(OVERLAY)
    used: set[str] = set()
    for source in of_kind(objects, "ConfigMap") + of_kind(objects, "Secret"):
        used |= set(decoded_data(source))
    for deployment in of_kind(objects, "Deployment"):
        for container in pod_spec(deployment)["containers"]:
            used |= {variable["name"] for variable in container.get("env", [])}
    missing = used - documented()
    assert not missing, f"document in docs/deploy.md: {sorted(missing)}"


def test_iam_and_trust_policies_in_the_deploy_readme_are_valid_json() -> None:
    blocks = re.findall(r"```json\n(.*?)```", (REPO / "deploy" / "README.md").read_text(), re.S)
    # trust policy, DynamoDB, the Chime budget, rooms (meetings, meeting events), chat, notifier
    assert len(blocks) == 7
    for block in blocks:
        document = json.loads(block)
        statements = document.get("Statement", document) if isinstance(document, dict) else document
        for statement in statements if isinstance(statements, list) else [statements]:
            assert statement["Effect"] == "Allow"
            assert statement["Action"]
            assert statement.get("Resource") or statement.get("Principal")


def readme_tables() -> dict[str, tuple[str, str, str, str]]:
    """`<prefix>-<service>-<suffix>` -> (partition, sort, indexes, ttl) as written."""
    rows = re.findall(
        r"^\| `<prefix>-([\w-]+)` \| (.*?) \| (.*?) \| (.*?) \| (.*?) \|$",
        (REPO / "deploy" / "README.md").read_text(),
        re.M,
    )
    return {name: (pk, sk, indexes, ttl) for name, pk, sk, indexes, ttl in rows}


def spec_row(spec: TableSpec) -> tuple[str, str, str, str]:
    def key(name: str | None, kind: str) -> str:
        if name is None:
            return NONE
        return f"`{name}`" + (f" (`{kind}`)" if kind != "S" else "")

    indexes = ", ".join(
        f"`{i.name}` ({key(i.hash_key, i.hash_type)}, {key(i.range_key, i.range_type)})"
        for i in spec.indexes
    )
    ttl = f"`{spec.ttl_attribute}`" if spec.ttl_attribute else NONE
    return (
        key(spec.hash_key, spec.hash_type),
        key(spec.range_key, spec.range_type),
        indexes or NONE,
        ttl,
    )


def service_table_specs(name: str) -> list[TableSpec]:
    """The TableSpecs a service defines (its adapters and the inbox/outbox its
    bootstrap imports)."""
    package = importlib.import_module(f"services.{name}.adapters")
    modules = [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]
    modules.append(importlib.import_module(f"services.{name}.bootstrap"))
    specs: dict[str, TableSpec] = {}
    for module in modules:
        for value in vars(module).values():
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, TableSpec):
                    specs[item.suffix] = item
    return list(specs.values())


def test_the_readme_lists_every_table_as_the_services_define_it() -> None:
    documented_tables = readme_tables()
    defined = {
        f"{name}-{spec.suffix}": spec for name in SERVICES for spec in service_table_specs(name)
    }
    defined[f"{BUDGET_OWNER}-{BUDGET_TABLE.suffix}"] = BUDGET_TABLE  # every Chime client's
    defined[f"{RATE_LIMIT_OWNER}-{RATE_LIMIT_TABLE.suffix}"] = RATE_LIMIT_TABLE  # every service's
    assert set(documented_tables) == set(defined), "deploy/README.md's tables are not the code's"
    for table, spec in defined.items():
        assert documented_tables[table] == spec_row(spec), table
