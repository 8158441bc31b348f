"""Keeping secrets out of logs and errors: URL userinfo (user:password@) is split off or masked."""

from __future__ import annotations

import re
import urllib.parse


def split_userinfo(url: str) -> tuple[str, str, str]:
    """(`url` without its userinfo, user, password), user and password percent-decoded."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, "", ""
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=hostport))
    return bare, urllib.parse.unquote(user), urllib.parse.unquote(password)


def redact_url(url: str) -> str:
    """`url` safe to log or to show in an error: any userinfo becomes `***@` (the host and path stay
    readable). Text, not parsing, so that it also works on a URL too broken to parse."""
    return re.sub(r"//[^/?#]*@", "//***@", url)
