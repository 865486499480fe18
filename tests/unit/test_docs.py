"""The documents that newcomers read stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "services.platform.configuration"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert (ROOT / "docs" / "configuration.md").read_text() == generated, (
        "docs/configuration.md is stale: "
        "python -m services.platform.configuration > docs/configuration.md"
    )


def test_the_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme
    assert "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def _setting_names() -> set[str]:
    """Every environment variable a settings class reads (prefixed names and aliases)."""
    from pydantic import AliasChoices

    from services.platform.composition import settings_classes

    names: set[str] = set()
    for cls in settings_classes().values():
        for field_name, field in cls.model_fields.items():
            names.add(f"BELFRY_{field_name.upper()}")
            if isinstance(field.validation_alias, AliasChoices):
                names.update(
                    a for a in field.validation_alias.choices if isinstance(a, str) and a.isupper()
                )
    return names


def test_every_setting_the_readme_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\bBELFRY_[A-Z0-9_]*[A-Z0-9]\b", readme))
    # BELFRY_URL is the demo's target, not a setting of any process.
    unknown = named - _setting_names() - {"BELFRY_URL"}
    assert not unknown, f"README.md names settings that do not exist: {sorted(unknown)}"


def test_the_readme_links_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert targets, "the README links to the docs"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
    for command in ("make demo", "make token", "docs/configuration.md", "rabbitmq-server"):
        assert command in readme, command
