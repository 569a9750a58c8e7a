"""How every process starts: one settings object from argv + env, logging configured once, one exit-code table.

A process module defines a settings class (a :class:`ProcessSettings` with its own ``env_prefix``) and::

    def main(argv: Sequence[str] | None = None) -> int:
        return run_process(MySettings, argv, body, prog="kube-sentiment mine", description="...")

:func:`settings_parser` generates the flags from the settings fields (``--model-uri`` for ``model_uri``; nested
settings such as ``TrainSettings.data`` are flattened like their environment variables), with each field's
docstring, default and environment variable(s) as help. Flags override environment variables, which override the
defaults. Every value is validated by pydantic, so a bad value is a bad setting (exit 78) whether it came from a
flag or the environment; a command line that cannot be parsed at all is a usage error (exit 2).

:func:`run_process` parses, builds the settings, configures logging, runs the body with stdout reserved for its
result, and maps errors to :class:`~model.errors.ExitCode`: a ``KubeSentimentError`` exits with its own code (one
log line), anything else with 1 (logged with its traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.errors import ConfigError, ExitCode, KubeSentimentError

log = logging.getLogger("kube_sentiment")

S = TypeVar("S", bound="ProcessSettings")


class ProcessSettings(BaseSettings):
    """Base of the settings object of one process: attribute docstrings become the ``--help`` text, unknown
    environment variables are ignored, fields with an alias (``MLFLOW_TRACKING_URI``) are settable by name too.
    Subclasses set ``model_config = SettingsConfigDict(env_prefix="KS_<PROCESS>_")``."""

    model_config = SettingsConfigDict(extra="ignore", use_attribute_docstrings=True, populate_by_name=True)

    log_level: str = "INFO"
    """Root log level."""
    json_logs: bool | None = None
    """JSON log lines (default: when stderr is not a terminal)."""


class SettingsGroup(BaseSettings):
    """Base of a group of settings nested in a :class:`ProcessSettings` (same conventions, no log fields)."""

    model_config = SettingsConfigDict(extra="ignore", use_attribute_docstrings=True, populate_by_name=True)


@dataclass(frozen=True)
class _Flag:
    """One settings field as a command-line flag."""

    path: tuple[str, ...]  # field names from the process settings down to the field
    dest: str
    field: FieldInfo
    settings_cls: type[BaseSettings]


def flag_name(field_name: str) -> str:
    """``model_uri`` -> ``--model-uri``."""
    return "--" + field_name.replace("_", "-")


def env_names(settings_cls: type[BaseSettings], name: str, field: FieldInfo) -> list[str]:
    """The environment variables a field is read from."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias]
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return [f"{prefix}{name}".upper()]


def _nested_settings(annotation: Any) -> type[BaseSettings] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseSettings) else None


def _flags(settings_cls: type[BaseSettings], path: tuple[str, ...] = ()) -> Iterator[_Flag]:
    for name, field in settings_cls.model_fields.items():
        nested = _nested_settings(field.annotation)
        if nested is not None:
            yield from _flags(nested, (*path, name))
        else:
            yield _Flag((*path, name), name, field, settings_cls)


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _help(flag: _Flag) -> str:
    """Docstring, accepted values, default and environment variables of a field (``%`` escaped for argparse)."""
    annotation = _unwrap_optional(flag.field.annotation)
    parts = [" ".join((flag.field.description or "").replace("``", "").split())]
    if typing.get_origin(annotation) is typing.Literal:
        parts.append("One of: " + ", ".join(str(a) for a in typing.get_args(annotation)) + ".")
    default = flag.field.default
    if default is not PydanticUndefined and default is not None and default != "":
        shown = " ".join(str(d) for d in default) if isinstance(default, tuple) else str(default)
        parts.append(f"[default: {shown}]")
    parts.append(f"[env: {', '.join(env_names(flag.settings_cls, flag.dest, flag.field))}]")
    return " ".join(p for p in parts if p).replace("%", "%%")


def settings_parser(
    settings_cls: type[BaseSettings],
    *,
    prog: str,
    description: str,
    parents: Sequence[argparse.ArgumentParser] = (),
    skip: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with one flag per settings field (``skip``: fields a parent parser already offers).

    Booleans are ``--flag`` / ``--no-flag``; tuples take several values (``--labels a b c``); every other value is
    handed to pydantic as text, so that validation (and its exit code 78) is the same for flags and env vars.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description, parents=list(parents), allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    taken = set(skip)
    group = parser.add_argument_group("settings (flags override environment variables)")
    common = set(ProcessSettings.model_fields)  # log settings last: the process's own settings come first
    for flag in sorted(_flags(settings_cls), key=lambda f: f.dest in common):
        if flag.dest in taken:
            continue
        annotation = _unwrap_optional(flag.field.annotation)
        kwargs: dict[str, Any] = {"dest": flag.dest, "default": None, "help": _help(flag)}
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(annotation) is tuple:
            kwargs |= {"nargs": "+", "metavar": "VALUE"}
        else:
            kwargs["metavar"] = flag.dest.upper()
        group.add_argument(flag_name(flag.dest), **kwargs)
    return parser


def _given(args: argparse.Namespace, dest: str) -> Any:
    return getattr(args, dest, None)


def _build(settings_cls: type[S], args: argparse.Namespace, path: tuple[str, ...] = ()) -> S:
    values: dict[str, Any] = {}
    for name, field in settings_cls.model_fields.items():
        nested = _nested_settings(field.annotation)
        if nested is not None:
            sub = {f.dest for f in _flags(nested)}
            if any(_given(args, dest) is not None for dest in sub):
                values[name] = _build(nested, args, (*path, name))  # type: ignore[type-var]
        elif _given(args, name) is not None:
            values[name] = _given(args, name)
    return settings_cls(**values)


def _classes(settings_cls: type[BaseSettings]) -> Iterator[type[BaseSettings]]:
    yield settings_cls
    for field in settings_cls.model_fields.values():
        nested = _nested_settings(field.annotation)
        if nested is not None:
            yield from _classes(nested)


def describe_validation_error(error: ValidationError, settings_cls: type[BaseSettings]) -> str:
    """One clause per bad setting: its flag and environment variable, the value given and what is wrong."""
    owner = next((c for c in _classes(settings_cls) if c.__name__ == error.title), settings_cls)
    problems = []
    for err in error.errors():
        loc = err.get("loc", ())
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        name = str(loc[0]) if loc else ""
        field = owner.model_fields.get(name)
        if field is None:
            problems.append(message)
            continue
        value = err.get("input")
        where = f"{flag_name(name)} / {' / '.join(env_names(owner, name, field))}"
        problems.append(f"{where} = {value!r}: {message}")
    return "; ".join(problems)


def settings_from_args(settings_cls: type[S], args: argparse.Namespace) -> S:
    """The settings object: flags given in ``args`` over env vars over defaults. ``ConfigError`` (exit 78)
    naming each bad setting when they do not validate."""
    try:
        return _build(settings_cls, args)
    except ValidationError as e:
        raise ConfigError(f"invalid setting: {describe_validation_error(e, settings_cls)}") from e


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """``parser.parse_args(argv)``, or the exit code argparse wanted (0 after ``--help``, 2 on a usage error)."""
    try:
        return parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else ExitCode.USAGE


@dataclass(frozen=True)
class Outcome:
    """What a process body returns when it has a result to print: the exit code and the result (a JSON-able
    object, printed as indented JSON on stdout — the only thing a process prints there)."""

    exit_code: int
    result: Any = None


def run_process(
    settings_cls: type[S],
    argv: Sequence[str] | None,
    body: Callable[[S, argparse.Namespace], int | Outcome],
    *,
    parser: argparse.ArgumentParser,
) -> int:
    """Parse ``argv``, build the settings, configure logging, run ``body``; return the process exit code."""
    from model.logs import captured_output, configure_logging, json_wanted

    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    try:
        settings = settings_from_args(settings_cls, args)
    except ConfigError as e:
        configure_logging(getattr(args, "log_level", None) or "INFO", getattr(args, "json_logs", None))
        log.error("%s", e, extra={"error": type(e).__name__, "exit_code": int(e.exit_code)})
        return e.exit_code
    configure_logging(settings.log_level, settings.json_logs)
    with captured_output(json_wanted(settings.json_logs)) as stdout:
        try:
            outcome = body(settings, args)
        except KubeSentimentError as e:
            log.error("%s", e, extra={"error": type(e).__name__, "exit_code": int(e.exit_code)})
            return e.exit_code
        except Exception as e:  # the last line of defence: log the traceback, exit 1
            log.exception("internal error: %s: %s", type(e).__name__, e, extra={"exit_code": int(ExitCode.ERROR)})
            return ExitCode.ERROR
        if isinstance(outcome, Outcome):
            if outcome.result is not None:
                stdout.write(json.dumps(outcome.result, indent=2, default=str) + "\n")
                stdout.flush()
            return outcome.exit_code
        return outcome
