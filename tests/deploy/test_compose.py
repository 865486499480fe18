"""docker-compose.yml, checked the way `docker compose config` and a first `up` would."""

from __future__ import annotations

import contextlib
import http.server
import importlib
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from string import Template
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.settings import BelfrySettings
from tests.deploy.manifests import (
    ALL_INTERFACES,
    PREFIXES,
    REPO,
    SERVICES,
    compose_environment,
    env_names,
    load_compose,
    parse_duration_seconds,
    settings_classes,
)

STAND_INS = ("rabbitmq", "moto", "chime")
OUR_STAND_INS = ("moto", "chime")
PROXY_TEMPLATES = REPO / "deploy" / "compose" / "proxy"
ENV_OUTSIDE_SETTINGS: set[str] = set()  # every variable a Belfry container gets is a setting


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def healthcheck_url(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    (url,) = re.findall(r"urlopen\('([^']+)'", test[3])
    return str(url)


def command_flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(mapping).rsplit(":", 1)[1].split("/")[0]) for mapping in service["ports"]}


def test_all_services_present(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {*STAND_INS, *SERVICES, "proxy"}


def image_of(service: dict[str, Any]) -> tuple[str, str]:
    return service["image"], repr(service["build"])


def test_services_run_the_production_image_and_stand_ins_the_local_one(
    services: dict[str, dict[str, Any]],
) -> None:
    production = {image_of(services[name]) for name in SERVICES}
    local = {image_of(services[name]) for name in OUR_STAND_INS}
    assert len(production) == 1, production
    assert len(local) == 1, local
    assert production != local
    assert {services[name]["build"]["target"] for name in SERVICES} == {"runtime"}
    assert {services[name]["build"]["target"] for name in OUR_STAND_INS} == {"local"}
    assert services["rooms"]["image"] != services["moto"]["image"]  # never one tag for both
    dockerfile = (REPO / services["rooms"]["build"]["context"] / "Dockerfile").read_text()
    for name in (*SERVICES, *OUR_STAND_INS):
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
        assert re.search(rf"^FROM .+ AS {build['target']}$", dockerfile, re.M), build["target"]


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_its_module_and_listens_where_it_is_checked(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    env = compose_environment(service)
    assert service["command"] == [f"services.{name}"]
    assert env["BELFRY_HOST"] == ALL_INTERFACES
    port = int(env["BELFRY_PORT"])
    # One origin: a service is reached through the proxy, never on a host port of its own.
    assert "ports" not in service
    url = urlsplit(healthcheck_url(service))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", port, "/readyz")


@pytest.mark.parametrize("name", SERVICES)
def test_service_waits_for_healthy_stand_ins_and_stops_gracefully(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    depends_on = service["depends_on"]
    for stand_in in STAND_INS:
        assert depends_on[stand_in] == {"condition": "service_healthy"}, stand_in
        assert "healthcheck" in services[stand_in], f"{stand_in} can never become healthy"
    # uvicorn drains for up to 30 s; compose's default of 10 s would SIGKILL it.
    assert service["stop_signal"] == "SIGTERM"
    assert parse_duration_seconds(service["stop_grace_period"]) >= 30
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]


def test_rabbitmq_with_management_ui_and_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    rabbitmq = services["rabbitmq"]
    assert rabbitmq["image"].startswith("rabbitmq:3.13-management")
    assert rabbitmq["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    assert {5672, 15672} <= container_ports(rabbitmq)


@pytest.mark.parametrize(
    ("name", "module", "health_path"),
    [("moto", "emulators.aws", "/moto-api/"), ("chime", "emulators.chime", "/_emulator/health")],
)
def test_stand_in_listens_where_it_is_checked_and_published(
    services: dict[str, dict[str, Any]], name: str, module: str, health_path: str
) -> None:
    service = services[name]
    command = service["command"]
    assert command[0] == module
    assert command_flag(command, "--host") == ALL_INTERFACES
    port = int(command_flag(command, "--port"))
    assert container_ports(service) == {port}
    url = urlsplit(healthcheck_url(service))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", port, health_path)


@pytest.mark.parametrize("module", ["emulators.aws", "emulators.chime"])
def test_stand_in_commands_use_flags_their_cli_accepts(
    services: dict[str, dict[str, Any]],
    module: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (command,) = [s["command"] for s in services.values() if s.get("command", [""])[0] == module]
    main = importlib.import_module(f"{module}.__main__").main
    # emulators.aws reads sys.argv, emulators.chime takes argv; both print usage and exit.
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    arguments = [["--help"]] if module == "emulators.chime" else []
    with pytest.raises(SystemExit) as exit_info:
        main(*arguments)
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for flag in (part for part in command if part.startswith("--")):
        assert flag in usage, f"{module} has no {flag}"


def test_endpoints_point_at_the_stand_ins(services: dict[str, dict[str, Any]]) -> None:
    rabbit_env = compose_environment(services["rabbitmq"])
    moto_port = int(command_flag(services["moto"]["command"], "--port"))
    chime_port = int(command_flag(services["chime"]["command"], "--port"))
    for name in SERVICES:
        env = compose_environment(services[name])
        amqp = urlsplit(env["AMQP_URL"])
        assert amqp.scheme == "amqp"
        assert (amqp.hostname, amqp.port) == ("rabbitmq", 5672)
        assert amqp.username == rabbit_env["RABBITMQ_DEFAULT_USER"]
        assert amqp.password == rabbit_env["RABBITMQ_DEFAULT_PASS"]
        assert amqp.path.lstrip("/") == rabbit_env["RABBITMQ_DEFAULT_VHOST"]
        aws = urlsplit(env["BELFRY_AWS_ENDPOINT_URL"])
        assert (aws.scheme, aws.hostname, aws.port) == ("http", "moto", moto_port)
        chime = urlsplit(env["BELFRY_CHIME_ENDPOINT_URL"])
        assert (chime.scheme, chime.hostname, chime.port) == ("http", "chime", chime_port)


def test_every_variable_is_a_setting_of_its_service(services: dict[str, dict[str, Any]]) -> None:
    classes = settings_classes()
    for name in SERVICES:
        known = set(env_names(classes[name])) | ENV_OUTSIDE_SETTINGS
        unknown = set(compose_environment(services[name])) - known
        assert not unknown, f"{name}: not settings of {classes[name].__name__}: {unknown}"


@pytest.mark.parametrize("name", SERVICES)
def test_settings_load_from_the_compose_environment(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_type = settings_classes()[name]
    for variable in env_names(settings_type):
        monkeypatch.delenv(variable, raising=False)
    env = compose_environment(services[name])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = settings_type()
    assert settings.host == ALL_INTERFACES
    assert settings.port == int(env["BELFRY_PORT"])
    assert settings.amqp_url.startswith("amqp://")
    assert settings.aws_endpoint_url
    assert settings.chime_endpoint_url
    assert settings.auth_mode == "local"
    assert settings.log_format == "json"


def test_shared_settings_are_the_same_in_every_service(
    services: dict[str, dict[str, Any]],
) -> None:
    values: dict[str, set[str]] = {}
    for name in SERVICES:
        for key, value in compose_environment(services[name]).items():
            values.setdefault(key, set()).add(value)
    # e.g. a token minted for one service must be accepted by the others.
    for key in ("AMQP_URL", "BELFRY_AUTH_LOCAL_SECRET", "BELFRY_TABLE_PREFIX", "BELFRY_AWS_REGION"):
        assert len(values[key]) == 1, f"{key} differs between services: {values[key]}"


@contextlib.contextmanager
def answering(status: int) -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_python_health_check_fails_on_503(
    services: dict[str, dict[str, Any]], status: int, healthy: bool
) -> None:
    code = services["rooms"]["healthcheck"]["test"][3]
    with answering(status) as port:
        local = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", code)
        result = subprocess.run(
            [sys.executable, "-c", local], capture_output=True, timeout=10, check=False
        )
    assert (result.returncode == 0) is healthy, result.stderr.decode()


# --- the one origin: the proxy ----------------------------------------------------------


def rendered_proxy_config(proxy: dict[str, Any]) -> str:
    """The template with the proxy's environment, as the nginx image's envsubst does."""
    (template,) = PROXY_TEMPLATES.glob("*.template")
    return Template(template.read_text()).safe_substitute(compose_environment(proxy))


def locations(config: str) -> dict[str, str]:
    """`location [=] <path> { ... }` bodies by `<path>` or `= <path>` (the template
    indents them by four spaces and nests no blocks in them)."""
    found = re.findall(r"^    location\s+(=\s+)?(\S+)\s*\{(.*?)^    \}", config, re.M | re.S)
    return {("= " if exact else "") + path: body for exact, path, body in found}


def upstream_of(body: str) -> str:
    (target,) = re.findall(r"set \$belfry_upstream http://([^;]+);", body)
    assert "proxy_pass $belfry_upstream;" in body
    return str(target)


def test_the_proxy_is_the_one_origin_on_the_host(services: dict[str, dict[str, Any]]) -> None:
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:1.27")
    assert proxy["ports"] == ["127.0.0.1:8080:8080"]  # PROXY_PORT's default
    assert "${PROXY_PORT:-8080}" in (REPO / "docker-compose.yml").read_text()
    env = compose_environment(proxy)
    assert container_ports(proxy) == {int(env["PROXY_LISTEN"])}
    for name in SERVICES:
        assert proxy["depends_on"][name] == {"condition": "service_healthy"}, name
    test = proxy["healthcheck"]["test"]
    assert test[:2] == ["CMD", "wget"]
    url = urlsplit(test[-1])
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", int(env["PROXY_LISTEN"]), "/healthz")
    assert "return 200" in locations(rendered_proxy_config(proxy))["= /healthz"]


def test_the_proxy_template_is_mounted_and_every_variable_is_set(
    services: dict[str, dict[str, Any]],
) -> None:
    proxy = services["proxy"]
    mounts = dict(volume.rsplit(":", 1)[0].split(":", 1) for volume in proxy["volumes"])
    assert mounts["./deploy/compose/proxy"] == "/etc/nginx/templates"
    assert all(volume.endswith(":ro") for volume in proxy["volumes"])
    env = compose_environment(proxy)
    console = [host for host, inside in mounts.items() if inside == env["CONSOLE_DIR"]]
    assert console == ["./services/platform/console"]
    assert (REPO / console[0] / "index.html").is_file()
    config = rendered_proxy_config(proxy)
    assert "${" not in config, re.findall(r"\$\{[^}]+\}", config)


@pytest.mark.parametrize("name", SERVICES)
def test_the_proxy_routes_each_prefix_to_its_service(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    routes = locations(rendered_proxy_config(services["proxy"]))
    port = compose_environment(services[name])["BELFRY_PORT"]
    # No URI in proxy_pass: the path goes unchanged, the service serves its own prefix.
    assert upstream_of(routes[PREFIXES[name]]) == f"{name}:{port}"
    assert upstream_of(routes[f"= /openapi/{name}.json"]) == f"{name}:{port}/openapi.json"


def test_the_proxy_serves_the_shared_routes_and_the_console(
    services: dict[str, dict[str, Any]],
) -> None:
    routes = locations(rendered_proxy_config(services["proxy"]))
    for path in ("= /auth/config", "= /asyncapi.yaml"):
        assert upstream_of(routes[path]).split(":")[0] in SERVICES, path
    assert "return 307 /console/;" in routes["= /"]
    assert "alias /usr/share/nginx/belfry-console/;" in routes["/console/"]
    assert "return 404" in routes["/"]  # anything else: Belfry's JSON 404


def test_the_proxy_upgrades_websockets_and_allows_belfrys_bodies(
    services: dict[str, dict[str, Any]],
) -> None:
    config = rendered_proxy_config(services["proxy"])
    assert "proxy_http_version 1.1;" in config
    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "proxy_set_header Connection $belfry_connection;" in config
    assert re.search(r"map \$http_upgrade \$belfry_connection \{\s*default upgrade;", config)
    notifications = locations(config)["/notifications"]
    (read_timeout,) = re.findall(r"proxy_read_timeout (\d+)h;", notifications)
    assert int(read_timeout) >= 1
    (body,) = re.findall(r"client_max_body_size (\d+)m;", config)
    assert int(body) * 1024 * 1024 >= BelfrySettings().http_max_upload_bytes
    (headers,) = re.findall(r"large_client_header_buffers \d+ (\d+)k;", config)
    assert int(headers) * 1024 >= BelfrySettings().http_max_header_bytes
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Correlation-ID"):
        assert f"proxy_set_header {header} " in config, header


def test_presigned_urls_name_motos_published_port(services: dict[str, dict[str, Any]]) -> None:
    env = compose_environment(services["chat"])
    public = urlsplit(env["BELFRY_CHAT_S3_PUBLIC_ENDPOINT_URL"])
    (published,) = services["moto"]["ports"]
    host_ip, host_port, _ = str(published).split(":")
    assert (public.scheme, public.hostname, public.port) == ("http", host_ip, int(host_port))
    text = (REPO / "docker-compose.yml").read_text()
    assert "BELFRY_CHAT_S3_PUBLIC_ENDPOINT_URL: http://127.0.0.1:${MOTO_PORT:-5000}" in text
