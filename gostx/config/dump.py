"""`-O yaml|json`: print a Config as gost prints its own (go-gost/x `config.Write`).

- Keys are gost's; empty fields are left out (`omitempty`) except those gost always prints
  (names, types, `addr`, the selector's three fields, `forwarder.nodes`, `chain.hops`, `services`).
- Struct fields keep gost's declaration order; map keys (metadata) are sorted: yaml.v3's natural
  order for YAML, byte order for JSON.
- YAML (any format but "json"): yaml.v3 layout, 2-space indent, durations as Go text ("30s").
- JSON: 2-space indent, durations as nanosecond integers, `<`, `>`, `&` escaped as Go does,
  an empty `services` printed as null, integral floats without ".0".
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from gostx.config.convert import is_always, is_duration, is_empty, yaml_key
from gostx.config.duration import parse_go_duration
from gostx.config.model import Config
from gostx.config.yamlio import dump_yaml


def dump_config(cfg: Config, fmt: str) -> str:
    """The text `gost -O <fmt>` prints for `cfg` (ends with a newline)."""
    if fmt == "json":
        tree = _tree(cfg, json_mode=True)
        text = json.dumps(tree, indent=2, ensure_ascii=False)
        for raw, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                             ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
            text = text.replace(raw, escaped)
        return text + "\n"
    return dump_yaml(_tree(cfg, json_mode=False))


def _tree(obj: Any, json_mode: bool) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if not is_always(f) and is_empty(value, f):
                continue
            key = yaml_key(f)
            if is_duration(f):
                out[key] = _duration(value, json_mode)
            elif json_mode and is_always(f) and value == []:
                out[key] = None  # a nil Go slice
            else:
                out[key] = _tree(value, json_mode)
        return out
    if isinstance(obj, list):
        return [_tree(v, json_mode) for v in obj]
    if isinstance(obj, dict):
        keys = sorted((str(k) for k in obj), key=str if json_mode else natural_key)
        by_str = {str(k): v for k, v in obj.items()}
        return {k: _tree(by_str[k], json_mode) for k in keys}
    if json_mode and isinstance(obj, float) and math.isfinite(obj) and obj.is_integer() and abs(obj) < 1e21:
        return int(obj)
    return obj


def _duration(text: str, json_mode: bool) -> Any:
    ns = parse_go_duration(text) if text else 0
    if json_mode:
        return ns
    return text or "0s"


def natural_key(key: str) -> list[tuple[int, int, str]]:
    """A sort key that orders strings like yaml.v3 orders map keys: runs of digits compare as
    numbers, and within a word a non-letter sorts before a letter ("a.b" < "ab", "a2" < "a10")."""
    parts: list[tuple[int, int, str]] = []
    i = 0
    while i < len(key):
        ch = key[i]
        if "0" <= ch <= "9":
            j = i
            while j < len(key) and "0" <= key[j] <= "9":
                j += 1
            run = key[i:j]
            number = run.lstrip("0")  # compared as a number without int(): a run may have 5000 digits
            parts.append((1, len(number), f"{number}\0{run}"))
            i = j
        elif ch.isalpha():
            parts.append((2, ord(ch), ch))
            i += 1
        else:
            parts.append((0, ord(ch), ch))
            i += 1
    return parts
