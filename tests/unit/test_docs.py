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


def _documents() -> list[Path]:
    """What a reader of a clone has: the README and everything under docs/ and deploy/."""
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "deploy").rglob("*.md")),
    ]


def test_the_docs_link_only_to_files_inside_the_repository() -> None:
    wrong: list[str] = []
    for doc in _documents():
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL, or a heading of the same page
            path = (doc.parent / target.split("#")[0]).resolve()
            where = f"{doc.relative_to(ROOT)} -> {target}"
            if not path.is_relative_to(ROOT):
                wrong.append(f"{where} (outside the repository)")
            elif not path.exists():
                wrong.append(f"{where} (missing)")
    assert not wrong, wrong


def test_the_docs_need_nothing_beside_the_repository() -> None:
    """The contract (events, queues, HTTP, errors, settings) is in the clone: no page
    sends the reader to a design document or a folder the repository does not hold."""
    outside = re.compile(r"\.\./(shared|reference|hooks)\b|\bDESIGN\b|DESIGN\.md|STYLE\.md")
    found = [
        f"{doc.relative_to(ROOT)}:{n}: {line.strip()}"
        for doc in _documents()
        for n, line in enumerate(doc.read_text().splitlines(), 1)
        if outside.search(line)
    ]
    assert not found, found


def test_the_events_page_lists_every_field_of_every_event() -> None:
    from shared.events import REGISTRY

    page = (ROOT / "docs" / "events.md").read_text()
    section = page.split("\n## Payloads\n", 1)[-1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\w+) \| (`.*) \|$", section, re.M)}
    for spec in REGISTRY.values():
        assert spec.type_name in rows, f"docs/events.md, Payloads: no row for {spec.type_name}"
        named = re.findall(r"`(\w+)`", rows[spec.type_name])
        assert named == list(spec.model.model_fields), spec.type_name
