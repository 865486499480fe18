"""The shape every service keeps (docs/architecture.md): use cases talk to
ports, only the composition root and the adapters import the adapters, and no
I/O library reaches a use case."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("scheduler", "rooms", "chat", "notifier")
WIRING = {"bootstrap.py", "__main__.py"}
IO_LIBRARIES = ("aio_pika", "aiormq", "aiobotocore", "botocore", "boto3", "types_aiobotocore")


def imports(path: Path, package: str | None = None) -> list[str]:
    """Every module a file imports (relative imports resolved in `package`,
    by default the file's own)."""
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]
    return found


def use_case_modules(service: str) -> list[Path]:
    folder = ROOT / "services" / service
    return [
        p
        for p in sorted(folder.rglob("*.py"))
        if "adapters" not in p.relative_to(folder).parts and p.name not in WIRING
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_only_the_composition_root_imports_the_adapters(service: str) -> None:
    adapters = f"services.{service}.adapters"
    offenders = [
        str(p.relative_to(ROOT))
        for p in use_case_modules(service)
        if any(m == adapters or m.startswith(adapters + ".") for m in imports(p))
    ]
    assert offenders == [], f"these import {adapters}: talk to ports.py instead"


@pytest.mark.parametrize("service", SERVICES)
def test_no_io_library_outside_the_adapters(service: str) -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted({m for m in imports(p) if m.startswith(IO_LIBRARIES)})
        for p in use_case_modules(service)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_adapter_and_io_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from .adapters.dynamo import DynamoRooms\n"
        "from .. import shared\n"
        "import botocore.exceptions\n"
    )
    found = imports(probe, "services.rooms")
    assert "services.rooms.adapters.dynamo" in found
    assert "services.shared" in found
    assert "botocore.exceptions" in found


def test_modules_stay_small() -> None:
    """One job per module: none in services/ or shared/ over 400 lines."""
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines())
        for folder in ("services", "shared")
        for p in (ROOT / folder).rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > 400} == {}
