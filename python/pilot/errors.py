"""PilotError: the daemon's machine-readable code, its message and a hint saying what to do."""

from __future__ import annotations

from ._contract import ERROR_CODES


class PilotError(Exception):
    """An error with one of the daemon's codes (``ERROR_CODES``), e.g. ``NOT_TRUSTED``, ``NO_DAEMON``."""

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        # A code this version does not know still reaches the caller as sent (a newer daemon).
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" + (f" ({self.hint})" if self.hint else "")

    def __repr__(self) -> str:
        return f"PilotError({self.code!r}, {self.message!r}, {self.hint!r})"

    def to_json(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.hint is not None:
            out["hint"] = self.hint
        return out

    @classmethod
    def from_json(cls, e: dict) -> "PilotError":
        return cls(str(e.get("code", "INTERNAL")), str(e.get("message", "")), e.get("hint"))


def reset_error() -> PilotError:
    return PilotError("CONNECTION_RESET", "the stream was reset", "the peer went away or the daemon closed the stream")


__all__ = ["PilotError", "ERROR_CODES", "reset_error"]
