"""Storage URLs carry passwords; nothing sltsearch prints or writes may show one.

A PostgreSQL password can also stay out of the URL altogether: libpq reads ``PGPASSWORD`` or
``~/.pgpass`` at connect time (``postgresql://user@host/db``).

A password with an unencoded ``@`` or a space is ambiguous: a driver reads the host from inside it
(``user:pa@ss@host`` connects to host ``ss@host``) and prints that fragment in its errors, where no masking
can recognise it. `check_url` refuses such a URL before any driver sees it, and `mask_url` masks everything
up to the last ``@`` before the host, so even such a URL is never shown.
"""

from __future__ import annotations

import re

from sltsearch.errors import UserError

# scheme://user:password@host -> scheme://user:***@host (also inside longer text such as driver errors); the
# password runs to the LAST "@" on the line that is followed by a host, so "@" and spaces in it are masked too
_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<secret>.*)(?=@[^@\s/]*(?:[/?\s'\"]|$))")
_QUERY_PASSWORD = re.compile(r"(?i)(?P<head>[?&]password=)(?P<secret>[^&\s]+)")


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    text = _PASSWORD.sub(lambda m: m.group("head") + "***", text)
    return _QUERY_PASSWORD.sub(lambda m: m.group("head") + "***", text)


def check_url(url: str, what: str = "search.storage") -> None:
    """Refuse a storage URL whose password holds an unencoded ``@`` or whose text holds whitespace; the message
    never repeats the URL's password."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return
    before_query = rest.split("?", 1)[0]
    userinfo, at, _ = before_query.rpartition("@")
    if any(ch.isspace() for ch in url) or (at and "@" in userinfo):
        raise UserError(
            f"{what}: the {scheme[:20]}:// URL holds a space or an unencoded '@' (the host would be read from inside "
            "the password); percent-encode them ('@' -> %40, space -> %20), or leave the password out of the URL and "
            "set PGPASSWORD"
        )
