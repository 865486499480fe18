"""Invalid settings as one line per variable, not a traceback: every entry point
reads its settings with `load_settings` (`make run`, `python -m services.<name>`,
`make token`, `make demo`), which prints

    belfry: invalid setting BELFRY_PORT='abc': Input should be a valid integer, ...

to stderr for each bad variable and exits with code 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, NoReturn, TypeVar

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings, SettingsError

S = TypeVar("S", bound=BaseSettings)


class InvalidSettings(SystemExit):
    """Start-up refused: a setting's value is invalid (exit code 2). The lines of
    `problems` went to stderr, one per bad variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(2)
        self.problems = problems


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None, **values: Any) -> S:
    """`cls(**values)` from the environment, or `InvalidSettings` after printing one
    line per bad variable to stderr (`belfry: invalid setting BELFRY_PORT='abc': ...`):
    what every entry point reads its settings with, so that a typo is not a traceback."""
    settings, problems = _read(cls, os.environ if environ is None else environ, values)
    if settings is None:
        _refuse(problems)
    return settings


def check_settings(*classes: type[BaseSettings]) -> None:
    """Every class readable from the environment, or `InvalidSettings` naming every bad
    variable of all of them once (a process that reads several classes: the platform)."""
    problems: list[str] = []
    for cls in classes:
        for line in _read(cls, os.environ, {})[1]:
            if line not in problems:
                problems.append(line)
    if problems:
        _refuse(problems)


def _refuse(problems: list[str]) -> NoReturn:
    for line in problems:
        print(line, file=sys.stderr)
    sys.stderr.flush()
    raise InvalidSettings(problems)


def _read(
    cls: type[S], env: Mapping[str, str], values: Mapping[str, Any]
) -> tuple[S | None, list[str]]:
    problems: list[str] = []
    hidden: dict[str, str] = {}
    try:
        while True:
            try:
                settings = cls(**values)
            except SettingsError as exc:
                # pydantic-settings stops at the first value that is not JSON: note it,
                # set it aside and read again, so that every bad variable is named.
                problems += settings_problems(cls, exc, env)
                variable = _settings_error_variable(cls, exc, env)
                if variable is None or variable in hidden or variable not in os.environ:
                    return None, problems
                hidden[variable] = os.environ.pop(variable)
                continue
            except ValidationError as exc:
                return None, problems + settings_problems(cls, exc, env)
            return (None, problems) if problems else (settings, [])
    finally:
        os.environ.update(hidden)


def _env_names(cls: type[BaseSettings]) -> dict[str, list[str]]:
    """Every name an error may give a field by (the field, its aliases), mapped to the
    environment variables that set it, in the order pydantic-settings reads them."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    names: dict[str, list[str]] = {}
    for name, field in cls.model_fields.items():
        variables = [f"{prefix}{name}".upper()]
        if isinstance(field.validation_alias, AliasChoices):
            variables = [
                a.upper()
                for a in field.validation_alias.choices
                if isinstance(a, str) and a.upper() == a
            ] or variables
        elif isinstance(field.validation_alias, str):
            variables = [field.validation_alias.upper()]
        for key in (name, *variables):
            names[key] = variables
        if isinstance(field.validation_alias, AliasChoices):
            for alias in field.validation_alias.choices:
                if isinstance(alias, str):
                    names[alias] = variables
    return names


def _which(variables: list[str], environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The variable that set the value (pydantic-settings ignores case), and its text."""
    upper = {k.upper(): v for k, v in environ.items()}
    for variable in variables:
        if variable in upper:
            return variable, upper[variable]
    return variables[0], None


def _field_of(exc: SettingsError) -> str:
    """The field of `error parsing value for field "x" from source "..."`."""
    text = str(exc)
    return text.split('"')[1] if text.count('"') >= 2 else ""


def _settings_error_variable(
    cls: type[BaseSettings], exc: SettingsError, environ: Mapping[str, str]
) -> str | None:
    field = _field_of(exc)
    variables = _env_names(cls).get(field)
    if not variables:
        return None
    for name in environ:
        if name.upper() in variables:
            return name
    return None


def settings_problems(
    cls: type[BaseSettings], exc: ValidationError | SettingsError, environ: Mapping[str, str]
) -> list[str]:
    """One line per bad variable: its name, its value as given, what is wrong."""
    names = _env_names(cls)
    found: dict[str, tuple[str | None, list[str]]] = {}
    if isinstance(exc, SettingsError):
        variable, text = _which(names.get(_field_of(exc), [_field_of(exc).upper()]), environ)
        cause = exc.__cause__
        why = f"not valid JSON ({cause})" if cause else str(exc)
        found[variable] = (text, [why])
    else:
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            head = loc[0] if loc else ""
            variable, text = _which(names.get(head, [head.upper()]), environ)
            message = str(error["msg"]).removeprefix("Value error, ")
            message = message.removeprefix(f"{variable}: ")
            if len(loc) > 1:
                message = f"at {'.'.join(loc[1:])}: {message}"
            seen = found.setdefault(variable, (text, []))[1]
            if message not in seen:
                seen.append(message)
    return [
        f"belfry: invalid setting {variable}"
        + ("" if text is None else f"={text!r}")
        + f": {'; '.join(messages)}"
        for variable, (text, messages) in found.items()
    ]
