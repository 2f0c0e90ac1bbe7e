"""Configuration: one frozen dataclass per pipeline stage, composed into `Config`.

Every number of the paper (PAPER.md) is a field here; the profiles in `profiles/*.yaml` set them.
Values come from a profile (a name or a YAML file) and then from `--set section.key=value`
overrides. Unknown keys, wrong types and values outside the allowed set raise `InputError` naming
the key and what is allowed.

- `sections.py`: the section dataclasses (`DataConfig`, `GanConfig`, ...) and their validation
- `compose.py`: `Config` (all sections, `section_hash`, `replace`) and building it from dicts
- `load.py`: profiles, reading YAML files safely, `--set` parsing, saving the resolved config
"""

# every name of the former one-file config.py, underscore helpers included, imports from here
from ganaug.config.compose import (
    DEFAULT_PROFILE,
    HASH_QUIET_DEFAULTS,
    PROFILES,
    Config,
    config_from_dict,
)
from ganaug.config.compose import _build_section as _build_section
from ganaug.config.compose import _coerce as _coerce
from ganaug.config.load import (
    MAX_YAML_BYTES,
    MAX_YAML_NODES,
    config_to_yaml,
    load_config,
    parse_set,
    profile_dict,
    save_config,
)
from ganaug.config.load import _expanded_nodes as _expanded_nodes
from ganaug.config.load import _plain as _plain
from ganaug.config.load import _read_yaml as _read_yaml
from ganaug.config.sections import (
    AugmentConfig,
    ClassifyConfig,
    DataConfig,
    ExperimentConfig,
    FidelityConfig,
    GanConfig,
    RuntimeConfig,
    SelectConfig,
)
from ganaug.config.sections import _check as _check
from ganaug.config.sections import _check_seeds as _check_seeds

__all__ = [
    "DEFAULT_PROFILE",
    "HASH_QUIET_DEFAULTS",
    "MAX_YAML_BYTES",
    "MAX_YAML_NODES",
    "PROFILES",
    "AugmentConfig",
    "ClassifyConfig",
    "Config",
    "DataConfig",
    "ExperimentConfig",
    "FidelityConfig",
    "GanConfig",
    "RuntimeConfig",
    "SelectConfig",
    "config_from_dict",
    "config_to_yaml",
    "load_config",
    "parse_set",
    "profile_dict",
    "save_config",
]
