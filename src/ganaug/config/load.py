"""Loading a Config: a profile (a name or a YAML file), then `--set section.key=value` overrides;
and saving the resolved config as YAML.

A config file is read with size and alias-expansion limits, so a huge or alias-bombed file is an
`InputError`, as is one that is not a mapping of sections.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ganaug import InputError
from ganaug.config.compose import DEFAULT_PROFILE, PROFILES, Config, config_from_dict

MAX_YAML_BYTES = 1 << 20  # a config file is a few kB; a larger one is not a config
MAX_YAML_NODES = 100_000  # YAML nodes after expanding aliases: the "billion laughs" guard


def _read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping; too large, alias-bombed or malformed files are InputErrors."""
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise InputError(
                f"{path}: {size} bytes, over the {MAX_YAML_BYTES // 2**20} MB a config file may "
                "have; give a profile YAML of sections (data:, gan:, ...)"
            )
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the config file ({err})") from None
    try:
        nodes = _expanded_nodes(yaml.compose(text, Loader=yaml.SafeLoader), MAX_YAML_NODES)
        if nodes > MAX_YAML_NODES:
            raise InputError(
                f"{path}: expands to over {MAX_YAML_NODES} YAML nodes through anchors and "
                "aliases (or an alias inside itself); write the config out without them"
            )
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise InputError(f"{path}: not valid YAML{where}; fix the syntax") from None
    except RecursionError:
        raise InputError(f"{path}: YAML nested too deeply to be a config file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: holds a {type(data).__name__}, but a config file must be a mapping of "
            "sections (data:, gan:, ...)"
        )
    return data


def _expanded_nodes(root: yaml.Node | None, limit: int) -> int:
    """Nodes of a composed YAML document with every alias expanded, counted without expanding
    (an alias is the very node its anchor names), capped at limit + 1; an alias inside its own
    anchor expands without end and counts limit + 1."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            return limit + 1
        open_nodes.add(id(node))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total = min(total + size(child), limit + 1)
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    return 0 if root is None else size(root)


def profile_dict(profile: str) -> dict[str, Any]:
    """The raw mapping of a profile name (smoke, quick, standard, paper) or a YAML file path."""
    if profile in PROFILES:
        text = resources.files("ganaug").joinpath(f"profiles/{profile}.yaml").read_text()
        data = yaml.safe_load(text) or {}
    else:
        path = Path(profile)
        if not path.is_file():
            raise InputError(
                f"--profile {profile!r}: not a profile name ({', '.join(PROFILES)}) nor a YAML file"
            )
        data = _read_yaml(path)
    data.setdefault("profile", profile if profile in PROFILES else Path(profile).stem)
    return data


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, dict[str, str]]:
    """`["gan.width=32", "classify.epochs=3"]` -> {"gan": {"width": "32"}, ...}."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise InputError(f"--set {item!r}: expected section.key=value, e.g. gan.width=32")
        out.setdefault(section, {})[name] = value.strip()
    return out


def load_config(profile: str = DEFAULT_PROFILE, overrides: list[str] | None = None) -> Config:
    """Profile (name or YAML file), then `--set` overrides; validated."""
    data = profile_dict(profile)
    if profile not in PROFILES:  # a bad key in a YAML file: the error names the file
        try:
            config_from_dict(data)
        except InputError as err:
            raise InputError(f"{profile}: {err}") from None
    for section, values in parse_set(overrides or []).items():
        if section not in data or not isinstance(data[section], dict):
            data[section] = {}
        data[section].update(values)
    return config_from_dict(data)


def config_to_yaml(cfg: Config) -> str:
    data = cfg.to_dict()
    return yaml.safe_dump(_plain(data), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save_config(cfg: Config, path: Path) -> None:
    """Write the resolved config as YAML (atomically) so a result can be traced and rerun."""
    from ganaug.runtime import atomic_write_text

    atomic_write_text(Path(path), config_to_yaml(cfg))
