"""The production image holds the production lock and `shared` + `services` only: no
moto, no waitress, no `emulators` package, no dev tools (Dockerfile, target `runtime`).

So the services must not need any of those. Each test runs Python in a subprocess in
which every module that only the local or dev packages provide cannot be imported
(`sys.modules[name] = None`), the way the image's virtualenv lacks them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from tests.deploy.manifests import PROD_LOCK, REPO, read_lock
from tests.support import free_port

# In the venv and in the image, but no project's import.
_INSTALLERS = {"pip", "setuptools"}
# services modules that are local tools by nature, with why; each must really need a
# package the image lacks (the first test checks), so this list cannot go stale.
LOCAL_ONLY = {
    # `make demo` ends a meeting through the Chime SDK emulator's control API.
    "services.platform.demo": "emulators",
    "services.platform.demo_client": "emulators",
}

_BLOCK = """
import json, sys
for name in json.loads(sys.argv[1]):
    if name not in sys.modules:  # what site imported at start-up stays
        sys.modules[name] = None
try:
    import moto
except ImportError:
    pass
else:
    raise SystemExit("the block does not work: moto imported")
"""

_IMPORT_ALL = """
import importlib, pkgutil, traceback
import shared, services
failed = {}
for package in (shared, services):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed[info.name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failed))
"""

_RUN_PLATFORM = """
import runpy
sys.argv = ["services.platform"]
runpy.run_module("services.platform", run_name="__main__", alter_sys=True)
"""


def not_in_production() -> list[str]:
    """Top-level module names provided only by distributions the production lock does
    not install (what this venv has beyond it), and Belfry's `emulators`."""
    production = set(read_lock(PROD_LOCK)) | _INSTALLERS | {"belfry"}
    blocked = {"emulators"}
    for module, distributions in importlib.metadata.packages_distributions().items():
        if not {canonicalize_name(d) for d in distributions} & production:
            blocked.add(module)
    return sorted(blocked)


def run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + code, json.dumps(not_in_production())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_block_covers_the_local_and_dev_packages() -> None:
    blocked = set(not_in_production())
    for module in ("moto", "waitress", "werkzeug", "emulators", "pytest", "jsonpath_ng"):
        assert module in blocked, module
    for module in ("fastapi", "aiobotocore", "boto3", "botocore", "uvicorn", "aio_pika"):
        assert module not in blocked, module


def test_every_production_module_imports_without_them() -> None:
    result = run_blocked(_IMPORT_ALL)
    assert result.returncode == 0, result.stderr
    failed: dict[str, str] = json.loads(result.stdout.splitlines()[-1])
    unexpected = {name: error for name, error in failed.items() if name not in LOCAL_ONLY}
    assert not unexpected, "these need a package the production image lacks:\n" + "\n".join(
        f"  {name}: {error}" for name, error in unexpected.items()
    )
    for name, package in LOCAL_ONLY.items():
        assert name in failed, f"{name} imports in production: drop it from LOCAL_ONLY"
        assert package in failed[name], failed[name]


@pytest.mark.slow
def test_the_platform_serves_without_them(
    moto_url: str, chime_url: str, tmp_path: Path, test_id: str
) -> None:
    """The image's default command (`services.platform` with the embedding turned off,
    as the runtime stage sets it) against configured endpoints: nothing of moto or the
    emulators on its way."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BELFRY_", "AMQP_"))}
    env |= {
        "BELFRY_PLATFORM_EMBED_AWS": "false",
        "BELFRY_PLATFORM_EMBED_CHIME": "false",
        "BELFRY_AWS_ENDPOINT_URL": moto_url,
        "BELFRY_CHIME_ENDPOINT_URL": chime_url,
        "BELFRY_HOST": "127.0.0.1",
        "BELFRY_PORT": str(port),
        "BELFRY_TABLE_PREFIX": test_id,
        "BELFRY_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "platform.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _BLOCK + _RUN_PLATFORM, json.dumps(not_in_production())],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"exited {process.returncode}:\n{log.read_text()}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"/readyz not 200 in 60 s:\n{log.read_text()}"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output = log.read_text()
    assert f"DynamoDB+S3  {moto_url} (configured)" in output, output
    assert f"Chime SDK    {chime_url} (configured)" in output, output
