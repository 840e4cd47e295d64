"""Every error Beckon raises on purpose, in one tree.

    BeckonError
    ├── InvalidInput            bad data from outside; names the field and what is accepted
    │   ├── InvalidEvent        a ClickEvent that does not parse or validate
    │   ├── InvalidRules        a rules file (or rules message) that does not validate
    │   └── InvalidCapacity     a capacity record that does not validate
    ├── ConfigError             a setting that cannot work (names the BECKON_ variable)
    ├── BrokerError             the local Kafka broker could not be set up, started or reached
    └── ProcessFailed           a process of a run split by visitor died or raised

Third-party errors are wrapped with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations


class BeckonError(Exception):
    """Root of every error Beckon raises on purpose."""


class InvalidInput(BeckonError, ValueError):
    """Input from outside that Beckon refuses.

    ``problems`` holds one ``(field_path, message)`` pair per fault, so callers (the
    collector's 400 body, the DLQ's headers) can report them without parsing text.
    """

    def __init__(self, problems: list[tuple[str, str]], *, prefix: str = "") -> None:
        self.problems = problems
        text = "; ".join(f"{path}: {msg}" if path else msg for path, msg in problems)
        super().__init__(f"{prefix}{text}" if prefix else text)

    @property
    def field(self) -> str:
        """The path of the first field at fault ('' when the whole input is at fault)."""
        return self.problems[0][0] if self.problems else ""


class InvalidEvent(InvalidInput):
    """A ClickEvent that does not parse or validate."""


class InvalidRules(InvalidInput):
    """A rules file or rules message that does not validate; rules in force stay in force."""


class InvalidCapacity(InvalidInput):
    """A capacity record (``beckon.capacity``, ``backtest --capacity``) that does not validate."""


class ConfigError(BeckonError):
    """A setting that cannot work; the message names the BECKON_ variable."""


class BrokerError(BeckonError):
    """The local Kafka broker could not be installed, started, stopped or reached."""


class ProcessFailed(BeckonError):
    """A forked process of a run split by visitor (``streams.split``) died or raised; the
    message says which run and how."""
