"""What the experiment scripts' command lines share."""

from __future__ import annotations

import argparse
import math
import re

_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
_COUNT = re.compile(r"^([+-]?(?:\d[\d_]*)?(?:\.\d*)?(?:e[+-]?\d+)?)([kmg]?)$", re.IGNORECASE)


def count(text: str) -> int:
    """An integer written as ``500000``, ``500_000``, ``5e5``, ``500k`` or ``0.5M``.

    The value must be a whole number (``1.5`` and ``1.2345k`` are refused).
    """
    match = _COUNT.match(text.strip())
    number, suffix = (match.group(1), match.group(2).lower()) if match else ("", "")
    try:
        value = float(number.replace("_", "")) * _SUFFIX[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"invalid count {text!r} (not a whole number)")
    return int(value)


count.__name__ = "int"  # argparse names the type in its messages ("invalid int value")
