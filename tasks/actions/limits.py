"""Limits on the free-form JSON of a task (a webhook's `data`), as plain
functions: the API and the dashboard check a new task with them (through the
payload model), and the executor checks a stored payload with the same ones,
without pydantic.

What they keep out is JSON that cannot be sent or shown: nesting deeper than
the serialisers go (the JSON encoder and pydantic give up past a few hundred
levels, Python's recursion limit past ~1000), strings that are not Unicode
(a lone surrogate cannot be encoded as UTF-8: the body, the task's pages),
integers that other languages' parsers cannot read, and Python values that
are not JSON at all. The walk is iterative: a payload ten thousand levels
deep is refused, not a RecursionError.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 64
MAX_KEY_CHARS = 256
MAX_STRING_CHARS = 65536
# Signed 64-bit: what most receivers (Go, Java, databases) parse an integer into.
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
# For messages: a path into the value like data.items[3]."odd key".
_SHOWN_KEY_CHARS = 40


def is_unicode(text: str) -> bool:
    """Whether text is valid Unicode: no lone surrogate, so it can be encoded
    as UTF-8 (a JSON body, an HTML page)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_problem(value: Any, *, root: str = "data", allow_nan: bool = False) -> str | None:
    """Why `value` (parsed JSON) breaks the limits, or None. The message names
    where, as a path from `root`. allow_nan=True leaves NaN and Infinity,
    which are not JSON, to a caller that reports them itself."""
    # (value, path, depth): depth counts the arrays and objects around value.
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return f"{root} is nested more than {MAX_DEPTH} levels deep"
            if isinstance(item, list):
                stack.extend((v, (*path, i), depth + 1) for i, v in enumerate(item))
                continue
            for key, v in item.items():
                if problem := _key_problem(key, root, path):
                    return problem
                stack.append((v, (*path, key), depth + 1))
        elif isinstance(item, str):
            if len(item) > MAX_STRING_CHARS:
                return (
                    f"a string at {_path(root, path)} has {len(item)} characters; "
                    f"the limit is {MAX_STRING_CHARS}"
                )
            if not is_unicode(item):
                return f"a string at {_path(root, path)} is not valid Unicode (a lone surrogate)"
        elif isinstance(item, float):
            if not (allow_nan or math.isfinite(item)):
                return (
                    f"the number at {_path(root, path)} is NaN or infinite, which JSON cannot hold"
                )
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                return (
                    f"the integer at {_path(root, path)} is out of range; integers must be "
                    "between -2**63 and 2**63-1 (send larger numbers as strings)"
                )
        else:
            return f"the value at {_path(root, path)} is not JSON ({type(item).__name__})"
    return None


def _key_problem(key: Any, root: str, path: tuple) -> str | None:
    if not isinstance(key, str):
        return f"an object key at {_path(root, path)} is not a string"
    if len(key) > MAX_KEY_CHARS:
        return (
            f"an object key at {_path(root, path)} has {len(key)} characters; "
            f"the limit is {MAX_KEY_CHARS}"
        )
    if not is_unicode(key):
        return f"an object key at {_path(root, path)} is not valid Unicode (a lone surrogate)"
    return None


def _path(root: str, path: tuple) -> str:
    """A readable, ASCII-safe path: root.key[0]."odd key"."""
    shown = root
    for part in path:
        if isinstance(part, int):
            shown += f"[{part}]"
        elif part.isascii() and part.isidentifier():
            shown += f".{part[:_SHOWN_KEY_CHARS]}"
        else:
            # ascii() escapes what could not be shown (or encoded): \ud800.
            shown += "." + ascii(part[:_SHOWN_KEY_CHARS])
    return shown
