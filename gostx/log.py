"""Logging like gost's (logrus): one JSON object per line by default, or logfmt-like text.

JSON lines carry `level`, `msg`, `time` plus structured fields (service, kind, handler, listener,
local, remote, ...), keys sorted as Go's encoder sorts a map, e.g.
    {"kind":"service","level":"info","msg":"listening on [::]:8080","service":"service-0","time":"..."}
Time layout is gost's `2006-01-02T15:04:05.000Z07:00`. Levels are gost's: trace (below debug), debug,
info, warn (printed "warning" as logrus does), error, fatal.

Code logs through `get_logger(**fields)` / `FieldLogger.bind(**fields)`; per call extra fields go in
`extra={...}` and are merged with the bound ones.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

from gostx.config.model import LogConfig
from gostx.errors import GostError

ROOT_LOGGER = "gostx"
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

# gost level name -> Python level
LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}
# Python level -> the name logrus prints
_NAMES = {TRACE: "trace", logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
          logging.ERROR: "error", logging.CRITICAL: "fatal"}
_FIELDS_ATTR = "gx_fields"


def level_name(levelno: int) -> str:
    return _NAMES.get(levelno) or _NAMES[max((lv for lv in _NAMES if lv <= levelno), default=TRACE)]


def parse_level(name: str) -> int:
    """A gost level name (case-insensitive) -> Python level; '' means info."""
    text = name.strip().lower()
    if not text:
        return logging.INFO
    if text not in LEVELS:
        raise GostError(f"log: unknown level '{name}' (supported: trace, debug, info, warn, error, fatal)")
    return LEVELS[text]


_second_cache: tuple[int, str, str] = (-1, "", "")  # (whole second, its "date.", its zone)


def format_time(created: float) -> str:
    """Go layout 2006-01-02T15:04:05.000Z07:00 in local time ('Z' when the offset is zero). The date,
    time and zone of a whole second are computed once (a busy server logs many lines a second)."""
    global _second_cache
    second = int(created // 1)
    cached_second, head, zone = _second_cache
    if second != cached_second:
        stamp = _dt.datetime.fromtimestamp(second).astimezone()
        offset = stamp.utcoffset() or _dt.timedelta(0)
        if offset == _dt.timedelta(0):
            zone = "Z"
        else:
            minutes = int(offset.total_seconds()) // 60
            sign = "+" if minutes >= 0 else "-"
            zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        head = stamp.strftime("%Y-%m-%dT%H:%M:%S.")
        _second_cache = (second, head, zone)
    millis = min(int((created - second) * 1000), 999)
    return f"{head}{millis:03d}{zone}"


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, _FIELDS_ATTR, None) or {})
    if record.exc_info and record.exc_info[1] is not None and "error" not in fields:
        fields["error"] = str(record.exc_info[1]) or type(record.exc_info[1]).__name__
    return fields


def _jsonable(value: Any) -> Any:
    """Structured fields stay structured (logrus marshals maps and slices as JSON)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
_encode_str: Callable[[str], str] = (getattr(json.encoder, "c_encode_basestring", None)
                                     or json.encoder.py_encode_basestring)
_BOUND_ATTR = "gx_bound"
_SCALARS = (str, int, float, bool, type(None))


def _encode_value(value: Any) -> str:
    if type(value) is str:
        return _encode_str(value)
    return _ENCODER.encode(_jsonable(value))


def _fragment(key: str, value: Any) -> str:
    return f"{_encode_str(key)}:{_encode_value(value)}"


class JSONFormatter(logging.Formatter):
    """logrus JSONFormatter: one object per line, keys sorted, no HTML escaping. A logger's bound
    fields come encoded once (FieldLogger keeps their `"key":value` text); only a line's own fields
    are encoded per line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _record_fields(record)
        bound: Mapping[str, tuple[Any, str]] = getattr(record, _BOUND_ATTR, None) or {}
        parts: dict[str, str] = {}
        for key, value in fields.items():
            known = bound.get(key)
            parts[key] = known[1] if known is not None and known[0] is value else _fragment(str(key), value)
        parts["level"] = _fragment("level", level_name(record.levelno))
        parts["msg"] = _fragment("msg", record.getMessage())
        parts["time"] = _fragment("time", format_time(record.created))
        return "{" + ",".join(parts[key] for key in sorted(parts)) + "}"


def _text_value(value: Any) -> str:
    text = str(value)
    if text and all((c.isascii() and c.isalnum()) or c in "-._/@^+" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """logrus TextFormatter with full timestamps: time="..." level=info msg="..." key=value ..."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"time={_text_value(format_time(record.created))}", f"level={level_name(record.levelno)}",
                 f"msg={_text_value(record.getMessage())}"]
        fields = _record_fields(record)
        parts.extend(f"{k}={_text_value(fields[k])}" for k in sorted(fields))
        return " ".join(parts)


class FieldLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger with bound structured fields; `extra=` on a call adds fields to that line only. Nothing
    is built for a line the level filters out (LoggerAdapter checks the level before process())."""

    _encoded: dict[str, tuple[Any, str]] | None = None

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        fields = dict(self.extra or {})
        fields.update(kwargs.pop("extra", None) or {})
        kwargs["extra"] = {_FIELDS_ATTR: fields, _BOUND_ATTR: self._bound_fragments()}
        return msg, kwargs

    def _bound_fragments(self) -> dict[str, tuple[Any, str]]:
        """The bound scalar fields as (value, `"key":value` JSON), encoded on first use."""
        if self._encoded is None:
            self._encoded = {str(k): (v, _fragment(str(k), v)) for k, v in (self.extra or {}).items()
                             if isinstance(v, _SCALARS)}
        return self._encoded

    def bind(self, **fields: Any) -> FieldLogger:
        return FieldLogger(self.logger, {**(self.extra or {}), **fields})

    def trace(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(TRACE, msg, *args, **kwargs)

    @property
    def fields(self) -> Mapping[str, Any]:
        return dict(self.extra or {})


def get_logger(**fields: Any) -> FieldLogger:
    return FieldLogger(logging.getLogger(ROOT_LOGGER), fields)


def _open_handler(output: str, log: LogConfig | None) -> logging.Handler:
    out = output.strip()
    if out in ("", "stderr"):
        return logging.StreamHandler(sys.stderr)
    if out == "stdout":
        return logging.StreamHandler(sys.stdout)
    if out in ("none", "null"):
        return logging.NullHandler()
    path = os.path.abspath(out)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rotation = log.rotation if log else None
        if rotation is not None and rotation.max_size > 0:
            from logging.handlers import RotatingFileHandler  # imports pickle, queue: only when used

            return RotatingFileHandler(
                path, maxBytes=rotation.max_size * 1024 * 1024, backupCount=max(rotation.max_backups, 1),
                encoding="utf-8")
        return logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as exc:
        raise GostError(f"log: cannot open output {out}: {exc.strerror or exc}") from None


def setup_logging(log: LogConfig | None, level_override: str | None = None,
                  stream: TextIO | None = None) -> FieldLogger:
    """Configure the `gostx` logger from the config's `log:`; `level_override` (-D/-DD) wins.

    `stream`, when given, replaces stderr/stdout output (tests). Returns the root FieldLogger.
    Raises GostError on an unknown level/format or an output file that cannot be opened.
    """
    level = parse_level(level_override if level_override else (log.level if log else ""))
    fmt = (log.format if log else "").strip().lower() or "json"
    if fmt not in ("json", "text"):
        raise GostError(f"log: unknown format '{fmt}' (supported: json, text)")
    output = log.output if log else ""
    handler: logging.Handler
    if stream is not None and output.strip() in ("", "stderr", "stdout"):
        handler = logging.StreamHandler(stream)
    else:
        handler = _open_handler(output, log)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    logger = logging.getLogger(ROOT_LOGGER)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
    logger.setLevel(level)
    # neither formatter prints the source line, thread or process: skip collecting them for every line
    # (the logging HOWTO's "Optimization" section)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logger.propagate = False
    return get_logger()
