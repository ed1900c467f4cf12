"""Fetching a pod file's `files[].uri` over http(s), as hyperctl does before sending it.

The original daemon fetched URIs itself, as root; here hyperctl fetches them
with the user's own network access and inlines the bytes (see specload), so a
pod file cannot make hyperd reach anything. Through the configured proxy and
CA bundle (config `[fetch]`; the environment's http(s)_proxy and no_proxy
otherwise), at most `max_bytes`, redirects only to http(s). Standard library
only: hyperctl must stay light.
"""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .errors import UserError
from .specfields import MAX_FILE_BYTES

SCHEMES = ("http", "https")


@dataclass
class Fetcher:
    proxy: str = ""  # "" : the environment's proxies
    ca_file: str = ""  # "" : the system's trusted certificates
    max_bytes: int = MAX_FILE_BYTES
    timeout: float = 30.0

    def __call__(self, uri: str) -> bytes:
        """The body at `uri`; UserError in the user's terms if there is none."""
        try:
            with self._opener().open(uri, timeout=self.timeout) as answer:
                body = answer.read(self.max_bytes + 1)
        except urllib.error.HTTPError as e:
            raise UserError(
                f"cannot fetch {uri}: the server answered HTTP {e.code} {e.reason}"
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise UserError(f"cannot fetch {uri}: {why(e, self.timeout)}") from None
        if len(body) > self.max_bytes:
            raise UserError(f"cannot fetch {uri}: it is larger than {self.max_bytes} bytes")
        return body

    def _opener(self) -> urllib.request.OpenerDirector:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        proxies = {"http": self.proxy, "https": self.proxy} if self.proxy else None
        return urllib.request.build_opener(
            urllib.request.ProxyHandler(proxies),
            urllib.request.HTTPSHandler(context=context),
            _HttpRedirectsOnly(),
        )


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect to ftp://: only http(s) is followed."""

    def http_error_302(self, req, fp, code, msg, headers):
        target = urljoin(req.full_url, headers.get("location") or headers.get("uri") or "")
        if urlsplit(target).scheme not in SCHEMES:
            raise urllib.error.URLError(f"redirected to {target[:100]}, which is not http(s)")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def why(error: BaseException, timeout: float) -> str:
    """A few words for a failed fetch, e.g. "connection refused"."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted ({reason.verify_message})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({reason.reason or reason})"
    if isinstance(reason, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)
