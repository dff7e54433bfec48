"""Storage URLs carry passwords; nothing sltsearch prints or writes may show one.

A PostgreSQL password can also stay out of the URL altogether: libpq reads ``PGPASSWORD`` or
``~/.pgpass`` at connect time (``postgresql://user@host/db``).
"""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host (also inside longer text such as driver errors)
_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<secret>\S+?)(?=@[^@\s/]*(?:[/?\s]|$))")
_QUERY_PASSWORD = re.compile(r"(?i)(?P<head>[?&]password=)(?P<secret>[^&\s]+)")


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    text = _PASSWORD.sub(lambda m: m.group("head") + "***", text)
    return _QUERY_PASSWORD.sub(lambda m: m.group("head") + "***", text)
