"""Why a registry could not be reached, in the user's words.

requests and urllib3 describe a failure as a chain of wrapped exceptions whose
text reads like `HTTPConnectionPool(host=..., port=1): Max retries exceeded
with url: ... (Caused by NewConnectionError(...))`. The user needs the cause at
the bottom of that chain ("connection refused"), never the wrapping.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator

import requests
import urllib3

MAX_CHAIN = 12  # wrappers are a few levels deep; a cycle must not loop for ever


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and everything it wraps: urllib3's `reason`, exception arguments,
    `__cause__` and `__context__`, outermost first."""
    seen: set[int] = set()
    pending = [error]
    while pending and len(seen) < MAX_CHAIN:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        wrapped = [reason] if isinstance(reason, BaseException) else []
        wrapped += [a for a in current.args if isinstance(a, BaseException)]
        wrapped += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending.extend(wrapped)


def explain(error: BaseException, connect_timeout: float, read_timeout: float) -> str:
    """A few words for what went wrong talking to a server, e.g. "connection refused"."""
    chain = list(causes(error))

    def found(*kinds: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kinds)), None)

    if certificate := found(ssl.SSLCertVerificationError):
        detail = getattr(certificate, "verify_message", "") or "verification failed"
        return f"its TLS certificate is not trusted ({detail})"
    if tls := found(ssl.SSLError):
        reason = (getattr(tls, "reason", None) or "").replace("_", " ").lower()
        hint = ": does it speak plain HTTP?" if reason == "wrong version number" else ""
        return f"TLS handshake failed ({reason or 'no reason given'}){hint}"
    if found(socket.gaierror, urllib3.exceptions.NameResolutionError):
        return "its host name does not resolve"
    if found(ConnectionRefusedError):
        return "connection refused"
    if found(requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {connect_timeout:g} s"
    if found(requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError):
        return f"no answer within {read_timeout:g} s"
    if found(
        ConnectionResetError,
        BrokenPipeError,
        http.client.IncompleteRead,
        urllib3.exceptions.ProtocolError,
        requests.exceptions.ChunkedEncodingError,
    ):
        return "the connection was cut"
    system = next((e for e in reversed(chain) if isinstance(e, OSError) and e.strerror), None)
    if system is not None:
        return str(system.strerror).lower()
    if found(requests.exceptions.InvalidURL, requests.exceptions.MissingSchema):
        return "invalid address"
    return "the connection failed"
