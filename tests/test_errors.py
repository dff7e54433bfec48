"""How problems are told: one line whatever the exception held."""

from __future__ import annotations

from sltsearch.errors import one_line


def test_one_line_tells_any_exception_in_one_line() -> None:
    err = RuntimeError("shape   mismatch\n  in layer conv1\n")
    assert one_line(err) == "RuntimeError: shape mismatch in layer conv1"
    assert one_line(err, first_line=True) == "RuntimeError: shape mismatch"
    assert one_line(err, limit=5) == "RuntimeError: shape"
    assert one_line(ValueError("bad value"), bare=(ValueError,)) == "bad value"
    assert one_line(KeyError()) == "KeyError"
