"""Configuration: typed dataclasses per section, one precedence chain: defaults < YAML file < `--set a.b=c`.

The resolved configuration is printed by `--dry-run` and stored in every stage manifest. YAML holds
parameter values only: no import paths, no code.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from pathlib import Path
from typing import Any, TypeVar

import yaml

from curate.errors import ConfigError

T = TypeVar("T")


def is_int(value: Any) -> bool:
    """An integer setting's value (YAML's `true` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite numeric setting's value (not a bool, NaN or infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_yaml(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        payload = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return payload


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`section.key=value` strings; values are parsed as YAML scalars (so 0.8 is a float, true a bool)."""
    result = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        *sections, leaf = key.strip().split(".")
        node = result
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {section} is not a section")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: cannot parse value: {exc}") from exc
    return result


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    return apply_overrides(load_yaml(path), overrides or [])


def section(config: dict[str, Any], name: str, cls: type[T], origin: str = "configuration") -> T:
    """Build dataclass `cls` from `config[name]`, rejecting unknown keys and wrong types by name."""
    values = config.get(name) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: section {name!r} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{origin}: unknown field(s) {unknown_keys(unknown, list(fields), name + '.')}")
    try:
        instance = cls(**values)
    except ConfigError as exc:  # the class's own range checks (__post_init__) name the field
        raise ConfigError(f"{origin}: {exc}") from None
    except (TypeError, ValueError) as exc:
        # A class that validates itself (__post_init__) meets the mistyped value first: name the field.
        _check_types(values, cls, name, origin)
        raise ConfigError(f"{origin}: {name}: {exc}") from None
    _check_types({field_name: getattr(instance, field_name) for field_name in fields}, cls, name, origin)
    return instance


def unknown_keys(unknown: list[str], valid: list[str], prefix: str = "") -> str:
    """`prefix.key (did you mean prefix.close_key?)` for each unknown key, then the valid keys."""
    named = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
        named.append(f"{prefix}{key}" + (f" (did you mean {prefix}{close[0]}?)" if close else ""))
    return f"{', '.join(named)}; valid: {', '.join(sorted(valid))}"


def _check_types(values: dict[str, Any], cls: type, name: str, origin: str) -> None:
    defaults = cls() if _has_defaults(cls) else None
    for field_name, value in values.items():
        default = getattr(defaults, field_name, None)
        if default is not None and value is not None and not _compatible(value, default):
            raise ConfigError(
                f"{origin}: {name}.{field_name} must be {type(default).__name__}, got {value!r} ({type(value).__name__})"
            )


def _has_defaults(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    )


def _compatible(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, type(default))


def as_dict(instance: Any) -> dict[str, Any]:
    return dataclasses.asdict(instance)
