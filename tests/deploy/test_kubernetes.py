"""deploy/: the Kustomize base and the example overlay, rendered by the real kustomize
(`kubectl kustomize`, see tests/deploy/manifests.py), validated against the Kubernetes
JSON schemas bundled with kubernetes-validate (offline) and checked for consistency:
labels and selectors, probes and ports, security, resources, config and secret
references, settings."""

from __future__ import annotations

import copy
import re
import socket
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from shared.settings import BelfrySettings
from tests.deploy.manifests import (
    ALL_INTERFACES,
    AUTOSCALED,
    BASE,
    OVERLAY,
    PREFIXES,
    SERVICEMONITOR_COMPONENT,
    SERVICES,
    KustomizeError,
    Manifest,
    decoded_data,
    env_names,
    find,
    kustomize,
    of_kind,
    parse_quantity,
    pod_spec,
    read_env_file,
    secret_fields,
    settings_classes,
    split_image,
)

# The schemas kubernetes-validate bundles (1.25 to 1.37 in 1.37.0); 1.32 is a version
# every managed offering still supports. Strict: unknown fields are errors.
KUBERNETES_VERSION = "1.32"
PLACEHOLDER = "CHANGE-ME"


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    return kustomize(BASE)


@pytest.fixture(scope="module")
def overlay() -> list[Manifest]:
    return kustomize(OVERLAY)


@pytest.fixture(params=["base", "overlay"])
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    objects: list[Manifest] = request.getfixturevalue(request.param)
    return objects


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def container(deployment: Manifest) -> dict[str, Any]:
    (only,) = pod_spec(deployment)["containers"]
    result: dict[str, Any] = only
    return result


def container_port(deployment: Manifest, port: int | str) -> int:
    ports: dict[str, int] = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    if isinstance(port, str):
        assert port in ports, f"no container port named {port}"
        return ports[port]
    assert port in ports.values(), f"no container port {port}"
    return port


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def deployment(objects: list[Manifest], name: str) -> Manifest:
    return find(objects, "Deployment", f"belfry-{name}")


# --- schema -----------------------------------------------------------------------------


@pytest.mark.usefixtures("no_network")
def test_every_object_is_valid_against_the_kubernetes_schemas(rendered: list[Manifest]) -> None:
    assert rendered
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")


@pytest.mark.usefixtures("no_network")
def test_the_schema_check_catches_mistakes(overlay: list[Manifest]) -> None:
    broken = copy.deepcopy(deployment(overlay, "rooms"))
    container(broken)["readinesProbe"] = container(broken).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(find(overlay, "HorizontalPodAutoscaler", "belfry-rooms"))
    broken["spec"]["minReplicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_what_is_rendered(base: list[Manifest], overlay: list[Manifest]) -> None:
    def kinds(objects: list[Manifest]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for obj in objects:
            counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1
        return counts

    per_service = {"Deployment": 4, "Service": 4, "PodDisruptionBudget": 4, "ServiceAccount": 4}
    assert kinds(base) == {**per_service, "HorizontalPodAutoscaler": 3, "ConfigMap": 1}
    assert kinds(overlay) == {
        **per_service,
        "HorizontalPodAutoscaler": 3,
        "ConfigMap": 1,
        "Secret": 1,
        "Namespace": 1,
        "Ingress": 1,
    }


# --- namespaces and images ------------------------------------------------------------


def test_base_is_namespace_agnostic_and_the_overlay_sets_one(
    base: list[Manifest], overlay: list[Manifest]
) -> None:
    assert not [o for o in base if "namespace" in o["metadata"]]
    (namespace,) = of_kind(overlay, "Namespace")
    name = namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in overlay:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == name, obj["metadata"]["name"]


def test_the_overlay_sets_one_image_with_a_registry_and_tag(overlay: list[Manifest]) -> None:
    images = {container(d)["image"] for d in of_kind(overlay, "Deployment")}
    (image,) = images
    name, tag = split_image(image)
    assert "/" in name, image
    assert tag, image


# --- per service ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_labels_and_selectors_agree(rendered: list[Manifest], name: str) -> None:
    workload = deployment(rendered, name)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert selects(workload["spec"]["selector"]["matchLabels"], labels)
    # Each selector picks this service's pods and no other service's.
    others = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in of_kind(rendered, "Deployment")
        if d is not workload
    ]
    service = find(rendered, "Service", f"belfry-{name}")
    pdb = find(rendered, "PodDisruptionBudget", f"belfry-{name}")
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selects(selector, labels)
        assert not any(selects(selector, other) for other in others), selector
    for constraint in pod_spec(workload).get("topologySpreadConstraints", []):
        assert selects(constraint["labelSelector"]["matchLabels"], labels)


@pytest.mark.parametrize("name", SERVICES)
def test_service_targets_the_container_port(rendered: list[Manifest], name: str) -> None:
    workload = deployment(rendered, name)
    ports = {p["name"]: p for p in find(rendered, "Service", f"belfry-{name}")["spec"]["ports"]}
    assert set(ports) == {"http", "metrics"}
    assert container_port(workload, ports["http"]["targetPort"]) == 8080
    assert container_port(workload, ports["metrics"]["targetPort"]) == 9464


@pytest.mark.parametrize("name", SERVICES)
def test_runs_its_module_on_the_port_it_is_probed_on(rendered: list[Manifest], name: str) -> None:
    workload = deployment(rendered, name)
    main = container(workload)
    assert main.get("command") is None, "keep the image's `python -m` entrypoint"
    assert main["args"] == [f"services.{name}"]
    env = {e["name"]: e for e in main["env"]}
    assert env["BELFRY_HOST"]["value"] == ALL_INTERFACES
    port = int(env["BELFRY_PORT"]["value"])
    assert container_port(workload, "http") == port
    probes = {
        kind: main[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["startupProbe"]["path"] in ("/healthz", "/readyz")
    for probe in probes.values():
        assert container_port(workload, probe["port"]) == port
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    # /metrics is on its own port (BELFRY_METRICS_PORT, from the ConfigMap), not the API's
    metrics_port = int(annotations["prometheus.io/port"])
    assert metrics_port != port
    assert container_port(workload, "metrics") == metrics_port


@pytest.mark.parametrize("name", SERVICES)
def test_instance_id_is_the_pod_name(rendered: list[Manifest], name: str) -> None:
    env = {e["name"]: e for e in container(deployment(rendered, name))["env"]}
    field = env["BELFRY_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.name"


@pytest.mark.parametrize("name", SERVICES)
def test_restricted_security_context(rendered: list[Manifest], name: str) -> None:
    pod = pod_spec(deployment(rendered, name))
    main = container(deployment(rendered, name))
    pod_context, context = pod["securityContext"], main["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context.get("runAsUser", 1) != 0
    seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile")
    assert seccomp == {"type": "RuntimeDefault"}
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (tmp,) = [m for m in main["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]
    # Service links would put BELFRY_<SERVICE>_... variables into the settings' namespace.
    assert pod["enableServiceLinks"] is False


@pytest.mark.parametrize("name", SERVICES)
def test_resources_requests_within_limits(rendered: list[Manifest], name: str) -> None:
    resources = container(deployment(rendered, name))["resources"]
    for resource in ("cpu", "memory"):
        request = parse_quantity(resources["requests"][resource])
        limit = parse_quantity(resources["limits"][resource])
        assert 0 < request <= limit, resource


@pytest.mark.parametrize("name", SERVICES)
def test_graceful_termination(rendered: list[Manifest], name: str) -> None:
    pod = pod_spec(deployment(rendered, name))
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= 30
    command = container(deployment(rendered, name))["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    # The sleep plus uvicorn's 30 s graceful shutdown fit in the grace period.
    assert 0 < int(command[1]) <= grace - 30


def test_scheduler_runs_two_replicas_without_autoscaling(rendered: list[Manifest]) -> None:
    assert deployment(rendered, "scheduler")["spec"]["replicas"] >= 2
    assert not [
        h
        for h in of_kind(rendered, "HorizontalPodAutoscaler")
        if "scheduler" in h["metadata"]["name"]
    ]


@pytest.mark.parametrize("name", AUTOSCALED)
def test_autoscaled_services(rendered: list[Manifest], name: str) -> None:
    workload = deployment(rendered, name)
    hpa = find(rendered, "HorizontalPodAutoscaler", f"belfry-{name}")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    assert target["name"] == workload["metadata"]["name"]
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # The autoscaler owns the replica count: `kubectl apply` must not reset it.
    assert "replicas" not in workload["spec"]
    # CPU utilisation needs a CPU request to be measured against.
    assert container(workload)["resources"]["requests"]["cpu"]


@pytest.mark.parametrize("name", SERVICES)
def test_disruption_budget_keeps_a_replica(rendered: list[Manifest], name: str) -> None:
    spec = find(rendered, "PodDisruptionBudget", f"belfry-{name}")["spec"]
    assert spec.get("maxUnavailable") == 1 or spec.get("minAvailable", 0) >= 1


# --- identity, config and secrets ---------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_service_account_has_an_iam_role(rendered: list[Manifest], name: str) -> None:
    account = pod_spec(deployment(rendered, name))["serviceAccountName"]
    annotations = find(rendered, "ServiceAccount", account)["metadata"]["annotations"]
    assert re.fullmatch(
        r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", annotations["eks.amazonaws.com/role-arn"]
    )


def test_overlay_replaces_every_placeholder_role(overlay: list[Manifest]) -> None:
    for account in of_kind(overlay, "ServiceAccount"):
        assert "REPLACE-ME" not in account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]


def env_sources(
    objects: list[Manifest], workload: Manifest, *, secret_optional: bool = False
) -> list[Manifest]:
    """The ConfigMaps and Secrets a container's envFrom names; the base has no Secret."""
    sources = []
    for source in container(workload)["envFrom"]:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key not in source:
                continue
            if kind == "Secret" and secret_optional and not of_kind(objects, "Secret"):
                continue
            sources.append(find(objects, kind, source[key]["name"]))
    return sources


@pytest.mark.parametrize("name", SERVICES)
def test_env_from_a_config_map_and_a_secret(
    base: list[Manifest], overlay: list[Manifest], name: str
) -> None:
    assert {s["kind"] for s in env_sources(overlay, deployment(overlay, name))} == {
        "ConfigMap",
        "Secret",
    }
    # The base references the Secret by name and leaves creating it to the operator.
    refs = [
        s["secretRef"]["name"]
        for s in container(deployment(base, name))["envFrom"]
        if "secretRef" in s
    ]
    assert refs == ["belfry-secrets"]
    assert not of_kind(base, "Secret")


def test_example_secrets_are_placeholders() -> None:
    values = read_env_file(OVERLAY / "secrets.env")
    assert values
    for key, value in values.items():
        assert PLACEHOLDER in value, f"{key} in secrets.env is not a {PLACEHOLDER} placeholder"


def test_secrets_are_not_in_the_config_map(overlay: list[Manifest]) -> None:
    classes = settings_classes()
    secret_names = {"AMQP_URL", "BELFRY_AMQP_URL"}  # the broker URL carries a password
    for settings_type in classes.values():
        names = env_names(settings_type)
        secrets = secret_fields(settings_type)
        secret_names |= {env for env, field in names.items() if field in secrets}
    for config_map in of_kind(overlay, "ConfigMap"):
        leaked = set(decoded_data(config_map)) & secret_names
        assert not leaked, f"secrets in ConfigMap {config_map['metadata']['name']}: {leaked}"


@pytest.mark.parametrize("name", SERVICES)
def test_every_variable_is_a_setting(rendered: list[Manifest], name: str) -> None:
    workload = deployment(rendered, name)
    classes = settings_classes()
    own = set(env_names(classes[name]))
    any_service = set().union(*(env_names(c) for c in classes.values()))
    # Shared ConfigMap/Secret: a key some service reads (others ignore it).
    for source in env_sources(rendered, workload, secret_optional=True):
        unknown = set(decoded_data(source)) - any_service
        assert not unknown, f"{source['metadata']['name']}: not settings: {unknown}"
    unknown = {e["name"] for e in container(workload)["env"]} - own
    assert not unknown, f"{name}: not settings: {unknown}"


def pod_settings(
    objects: list[Manifest], name: str, monkeypatch: pytest.MonkeyPatch
) -> BelfrySettings:
    """The service's settings as its pod would read them (ConfigMap, Secret, env)."""
    settings_type = settings_classes()[name]
    for variable in env_names(settings_type):
        monkeypatch.delenv(variable, raising=False)
    workload = deployment(objects, name)
    environment: dict[str, str] = {}
    for source in env_sources(objects, workload):
        environment.update(decoded_data(source))
    for variable in container(workload)["env"]:
        environment[variable["name"]] = variable.get("value", f"<{variable['name']} from the pod>")
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return settings_type()


@pytest.mark.parametrize("name", SERVICES)
def test_settings_load_from_the_pod_environment(
    overlay: list[Manifest], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = pod_settings(overlay, name, monkeypatch)
    assert settings.host == ALL_INTERFACES
    assert settings.port == container_port(deployment(overlay, name), "http")
    assert settings.instance_id == "<BELFRY_INSTANCE_ID from the pod>"
    assert settings.amqp_url.startswith("amqps://"), "TLS to an existing broker"
    assert settings.aws_endpoint_url is None
    assert settings.chime_endpoint_url is None
    assert settings.auth_mode == "cognito"
    assert settings.cognito_user_pool_id
    assert settings.cognito_client_ids
    assert settings.log_format == "json"


def test_chat_gets_its_own_app_instance_and_bucket(
    overlay: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = settings_classes()["chat"].model_fields
    settings: Any = pod_settings(overlay, "chat", monkeypatch)
    # Without an ARN chat lists AppInstances and may create one; S3 names are global.
    assert re.fullmatch(
        r"arn:aws:chime:[\w-]+:\d{12}:app-instance/.+", settings.chat_app_instance_arn
    )
    assert settings.chat_attachments_bucket != fields["chat_attachments_bucket"].default


# --- ingress and the optional ServiceMonitors -----------------------------------------------


def test_ingress_routes_each_prefix_to_its_service(overlay: list[Manifest]) -> None:
    (ingress,) = of_kind(overlay, "Ingress")
    routes = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = find(overlay, "Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
            routes[path["path"]] = backend["name"]
    assert routes == {prefix: f"belfry-{name}" for name, prefix in PREFIXES.items()}


def test_service_monitors_select_the_services(overlay: list[Manifest]) -> None:
    monitors = kustomize(SERVICEMONITOR_COMPONENT)
    assert {m["kind"] for m in monitors} == {"ServiceMonitor"}
    services = of_kind(overlay, "Service")
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [s for s in services if selects(selector, s["metadata"]["labels"])]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
    assert len(monitors) == len(SERVICES)


@pytest.mark.usefixtures("no_network")
def test_service_monitor_is_a_crd_outside_the_bundled_schemas() -> None:
    (monitor, *_) = kustomize(SERVICEMONITOR_COMPONENT)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(monitor, KUBERNETES_VERSION, strict=True)


# --- the renderer: the real kustomize ----------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_real_kustomize_renders(tmp_path: Path) -> None:
    """Features the former hand-written renderer refused: only the real tool gets these."""
    write(
        tmp_path / "app.yaml",
        """apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
        - {name: c, image: app:local, envFrom: [{secretRef: {name: sec}}]}
""",
    )
    write(
        tmp_path / "kustomization.yaml",
        """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [app.yaml]
commonAnnotations: {belfry.example/owner: team}
labels: [{pairs: {tier: web}, includeSelectors: true}]
replicas: [{name: app, count: 3}]
secretGenerator: [{name: sec, literals: [LONG=%s]}]
"""
        % ("x" * 100),
    )
    objects = kustomize(tmp_path)
    app = find(objects, "Deployment", "app")
    assert app["metadata"]["annotations"] == {"belfry.example/owner": "team"}
    assert app["spec"]["replicas"] == 3
    assert app["spec"]["selector"]["matchLabels"] == {"app": "app", "tier": "web"}
    assert app["spec"]["template"]["metadata"]["labels"] == {"app": "app", "tier": "web"}
    # kustomize's own name hash, followed by the reference; `data` is base64 (wrapped).
    (secret,) = of_kind(objects, "Secret")
    assert re.fullmatch(r"sec-[a-z0-9]{10}", secret["metadata"]["name"])
    assert container(app)["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert secret["data"]["LONG"] != "x" * 100
    assert decoded_data(secret) == {"LONG": "x" * 100}


def test_a_broken_kustomization_raises(tmp_path: Path) -> None:
    write(tmp_path / "kustomization.yaml", "resources: [missing.yaml]\n")
    with pytest.raises(KustomizeError, match=r"(?s)exited with \d+:.*missing\.yaml"):
        kustomize(tmp_path)


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("", "skip")])
def test_without_kustomize_ci_fails_and_elsewhere_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected, match="neither `kubectl` nor `kustomize` is on PATH"):
        kustomize(tmp_path)
