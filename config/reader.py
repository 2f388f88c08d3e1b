"""Reading environment variables: every problem is collected, each one line naming its variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlparse


class ConfigError(Exception):
    """Variables are missing or malformed: `problems` holds one line for each, all at once."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class EnvReader:
    """Reads variables, treating empty values as unset. A missing or malformed variable is
    recorded (see `problems`) and read as its default, so one pass finds every problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def problem(self, line: str) -> None:
        """Record a problem; `check` raises them together."""
        self.problems.append(line)

    def check(self) -> None:
        """Raise ConfigError with every problem recorded, if any."""
        if self.problems:
            raise ConfigError(*self.problems)

    def optional(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def required(self, name: str, pattern: re.Pattern[str] | None = None,
                 expected: str = "") -> str:
        """The value, or "" (after recording why) when it is missing or malformed."""
        value = self.optional(name)
        if value is None:
            self.problem(f"{name} is required but not set")
            return ""
        if pattern is not None and not pattern.match(value):
            self.problem(f"{name} is malformed: expected {expected}")
            return ""
        return value

    def url(self, name: str) -> str | None:
        value = self.optional(name)
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            self.problem(f"{name} is malformed: expected an http(s):// URL")
            return None
        return value.rstrip("/")

    def csv(self, name: str, item: re.Pattern[str], expected: str,
            lower: bool = False) -> tuple[str, ...] | None:
        """A comma-separated list whose every item matches `item`, or None when unset."""
        value = self.optional(name)
        if value is None:
            return None
        items = tuple(i.strip().lower() if lower else i.strip() for i in value.split(","))
        items = tuple(i for i in items if i)
        if not items or not all(item.fullmatch(i) for i in items):
            self.problem(f"{name} is malformed: expected {expected}")
            return None
        return items

    def flag(self, name: str) -> bool | None:
        """An on/off switch, or None when unset."""
        value = (self.optional(name) or "").lower()
        if not value:
            return None
        if value not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
            self.problem(f"{name} is malformed: expected on or off")
            return None
        return value in ("on", "true", "1", "yes")

    def number(self, name: str, default: float, minimum: float,
               maximum: float | None = None) -> float:
        """A number within [minimum, maximum], or `default` when unset."""
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.problem(f"{name} is malformed: expected a number")
            return default
        if number != number or number < minimum:  # NaN compares false to everything
            self.problem(f"{name} is malformed: expected at least {minimum:g}")
            return default
        if maximum is not None and number > maximum:
            self.problem(f"{name} is malformed: expected at most {maximum:g}")
            return default
        return number

    def whole(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        """A whole number within [minimum, maximum], or `default` when unset."""
        value = self.optional(name)
        if value is None:
            return default
        if not re.fullmatch(r"[0-9]+", value):
            self.problem(f"{name} is malformed: expected a whole number")
            return default
        number = int(value)
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else \
                f"at least {minimum}"
            self.problem(f"{name} is malformed: expected a whole number {bound}")
            return default
        return number
