"""`Config`, the sections composed into one, its cache hashes, and building it from nested dicts.

Building checks every value against its field's type hint (strings from `--set` are parsed); an
unknown section or key, or a value of the wrong type, raises `InputError` naming the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ganaug.config.sections import (
    AugmentConfig,
    ClassifyConfig,
    DataConfig,
    ExperimentConfig,
    FidelityConfig,
    GanConfig,
    RuntimeConfig,
    SelectConfig,
    _check,
)

PROFILES = ("smoke", "quick", "standard", "paper")
DEFAULT_PROFILE = "quick"


# keys added after results were cached: at their default they leave every hash as it was, so
# caches made before the key existed stay valid
HASH_QUIET_DEFAULTS = {
    ("gan", "family"): "wgan",
    ("gan", "w_dim"): 0,
    ("gan", "mapping_layers"): 2,
    ("gan", "r1_gamma"): 0.1,
    ("gan", "r1_every"): 16,
    ("gan", "ada_target"): 0.6,
    ("gan", "ada_p"): 0.0,
    ("gan", "ada_interval"): 4,
    ("gan", "ada_kimg"): 100,
    ("gan", "unet_mult"): "1,2,2,2",
    ("gan", "unet_layers"): 1,
    ("gan", "attention_res"): "16",
    ("gan", "timesteps"): 1000,
    ("gan", "noise_schedule"): "cosine",
    ("gan", "prediction"): "v",
    ("gan", "label_dropout"): 0.1,
    ("gan", "sampler"): "ddim",
    ("gan", "sample_steps"): 50,
    ("gan", "guidance"): 0.0,
    ("gan", "eta"): 0.0,
    ("select", "knn_realism_weight"): 1.0,
}


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    profile: str = DEFAULT_PROFILE  # the profile this config was built from (informational)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def section_hash(self, *sections: str) -> str:
        """Short sha256 of the named sections (all when none): the cache key of a result."""
        full = self.to_dict()
        chosen = {s: full[s] for s in (sections or [f.name for f in dataclasses.fields(self)])}
        chosen.pop("profile", None)
        for (section, key), default in HASH_QUIET_DEFAULTS.items():
            if chosen.get(section, {}).get(key, None) == default:  # as before the key existed
                chosen[section] = {k: v for k, v in chosen[section].items() if k != key}
        text = json.dumps(chosen, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **overrides: Any) -> Config:
        """`cfg.replace(classify={"epochs": 3})`: a new Config with some section fields changed."""
        data = self.to_dict()
        for section, values in overrides.items():
            if isinstance(values, dict):
                data[section].update(values)
            else:
                data[section] = values
        return config_from_dict(data)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check one value against a dataclass field's type hint; strings from --set are parsed."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            _check(False, key, value, ", ".join(map(str, choices)))
        return value
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if isinstance(value, str):  # "0,1,2" or "[0, 1, 2]"
            text = value.strip()
            text = text[1:-1] if text[:1] == "[" and text[-1:] == "]" else text
            value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            _check(False, key, value, f"a list of {item.__name__}")
        return tuple(_coerce(key, v, item) for v in value)
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            _check(False, key, value, "true or false")
        return value
    if hint is int:
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                _check(False, key, value, "an integer")
        if isinstance(value, bool) or not isinstance(value, int):
            _check(False, key, value, "an integer")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                _check(False, key, value, "a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _check(False, key, value, "a number")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            _check(False, key, value, "a string")
        return str(value)
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def _build_section(cls: type, name: str, values: Any) -> Any:
    if not isinstance(values, dict):
        _check(False, name, values, "a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            _check(
                False, f"{name}.{key}", value, f"known keys of {name}: {', '.join(sorted(known))}"
            )
        kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a Config from nested dicts (missing keys take their defaults)."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    kwargs: dict[str, Any] = {}
    for name, values in (data or {}).items():
        if name not in sections:
            _check(False, name, values, f"sections: {', '.join(sections)}")
        if name == "profile":
            kwargs[name] = str(values)
            continue
        cls = typing.get_type_hints(Config)[name]
        kwargs[name] = _build_section(cls, name, values)
    return Config(**kwargs)
