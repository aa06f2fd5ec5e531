"""Keep credentials out of everything a run writes: run.json, the manifest, the review page, log lines.

Storage options reach fsspec as a free-form dict (s3fs `key`/`secret`/`token`, gcsfs `token`, adlfs
`account_key`/`sas_token`, nested `client_kwargs`), so secrets are recognised by the name of their key and
the keys themselves are kept: a reader of run.json still sees *which* options a run used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "***"

#: Words that make an option secret when they appear as a word of its name (`aws_secret_access_key`,
#: `sas_token`, `client_secret`, `password`); `key` alone is the S3 access key id, also treated as secret.
_SECRET_WORDS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "passwd",
        "pwd",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "signature",
        "sas",
        "private",
        "session",
        "cookie",
        "apikey",
        "passphrase",
    }
)
_WORD = re.compile(r"[a-z0-9]+")
#: user:password@ in a URL (an endpoint written with credentials).
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s]+@")
#: Secrets shorter than this are not scrubbed out of free text: `pwd: "a"` would blank every letter a.
_MIN_SCRUB_LEN = 4


def is_secret_name(name: str) -> bool:
    """True for option names that hold credentials, matched word by word (`max_keys` is not `key`)."""
    lowered = name.lower()
    words = set(_WORD.findall(lowered))
    return bool(words & _SECRET_WORDS) or any(
        w in lowered for w in ("secret", "token", "password", "credential")
    )


def redact_url(text: str) -> str:
    """`https://user:pass@host/` → `https://***@host/`."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + REDACTED + "@", text)


def redact(value: Any) -> Any:
    """A copy of a config or options tree with secret values replaced by ***, keys and structure kept.

    A secret-named option holding a flag or nothing (`anon: false`, `token: null`) stays as it is: it
    reveals no credential, and it tells a reader how the run authenticated.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if is_secret_name(str(key)) and not (item is None or isinstance(item, bool)):
                out[key] = REDACTED
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_url(value)
    return value


def secret_values(value: Any) -> set[str]:
    """Every secret string in an options tree, for scrubbing free text (messages, log lines)."""
    found: set[str] = set()

    def visit(node: Any, secret: bool) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                visit(item, secret or is_secret_name(str(key)))
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item, secret)
        elif isinstance(node, (str, bytes)) and secret:
            text = node.decode(errors="replace") if isinstance(node, bytes) else node
            if len(text) >= _MIN_SCRUB_LEN:
                found.add(text)
        elif isinstance(node, str):
            found.update(m.group(0)[len(m.group("scheme")) : -1] for m in _URL_USERINFO.finditer(node))

    visit(value, False)
    return found


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Free text with every known secret and URL credential replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return redact_url(text)


class ScrubSecrets(logging.Filter):
    """A logging filter that removes known secrets from every record it sees (attach to a handler).

    URL credentials (`scheme://user:pass@`) are scrubbed even when no secret is known; a traceback is
    formatted and scrubbed here too, since an error text from a store may quote a credential.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Scrub these too; never fewer: a record from an earlier run may still be on its way."""
        self.secrets.update(s for s in secrets if len(s) >= _MIN_SCRUB_LEN)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        return True


def scrub_handlers(secrets: Iterable[str] = (), logger: logging.Logger | None = None) -> None:
    """Every handler of `logger` (the root by default) scrubs `secrets` from now on, in this process.

    Filters on a logger skip the records of its child loggers; filters on handlers see them all. With no
    handler configured Python writes WARNING records through `logging.lastResort`: that one is covered.
    """
    target = logger or logging.getLogger()
    handlers = list(target.handlers) or [logging.lastResort]
    for handler in handlers:
        if handler is None:
            continue
        present = [f for f in handler.filters if isinstance(f, ScrubSecrets)]
        if present:
            present[0].add(secrets)
        else:
            handler.addFilter(ScrubSecrets(secrets))
