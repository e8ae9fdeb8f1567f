"""YAML read and written the way gost's yaml.v3 does it, on top of PyYAML.

Reading: YAML 1.2 core scalars, as yaml.v3 resolves values that land in metadata maps: only
true/false are booleans (`yes`, `on` stay strings), no sexagesimal numbers (`1:20` stays a string),
no timestamps; a key defined twice in one mapping is an error (yaml.v3: "already defined").
Writing: block style, 2-space indent with sequences indented under their key, strings quoted with
double quotes only when YAML needs it, multi-line strings as literal blocks, no line wrapping,
dict keys emitted in the order given.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from gostx.config.numbers import parse_int

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


MAX_FLOW_DEPTH = 256  # PyYAML's scanner takes time quadratic in the flow depth: 20000 '[' would take seconds


class GoYAMLLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars, duplicate-key errors, and flow collections ([ {)
    nested at most MAX_FLOW_DEPTH deep (deeper block nesting ends in a RecursionError the loader
    reports)."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_FLOW_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"nested too deeply (more than {MAX_FLOW_DEPTH} levels)",
                                            self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: PyYAML reports it below
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {key!r} already defined", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


GoYAMLLoader.yaml_implicit_resolvers = {}
GoYAMLLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
GoYAMLLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
GoYAMLLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
GoYAMLLoader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
GoYAMLLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


def _construct_int(loader: GoYAMLLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    try:
        if text.startswith("0o"):
            return parse_int(text[2:], 8)
        return parse_int(text, 16) if text.startswith("0x") else parse_int(text)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None


def _construct_float(loader: GoYAMLLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


GoYAMLLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
GoYAMLLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def load_yaml(text: str) -> Any:
    """Parse one YAML document (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=GoYAMLLoader)


class _GoEmitterMixin:
    def choose_scalar_style(self) -> str:
        style = super().choose_scalar_style()  # type: ignore[misc]  # a mixin: the Emitter it joins has the method
        return '"' if style == "'" else style


class GoYAMLDumper(_GoEmitterMixin, yaml.SafeDumper):
    """SafeDumper that writes in yaml.v3's layout (see the module docstring)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: GoYAMLDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


def _represent_dict(dumper: GoYAMLDumper, data: dict[Any, Any]) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items())


GoYAMLDumper.add_representer(str, _represent_str)
GoYAMLDumper.add_representer(dict, _represent_dict)


def dump_yaml(tree: Any) -> str:
    return yaml.dump(tree, Dumper=GoYAMLDumper, indent=2, default_flow_style=False, sort_keys=False,
                     allow_unicode=True, width=1 << 30)
