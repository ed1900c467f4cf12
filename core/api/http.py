"""A small HTTP/1.1 server on a unix socket, with JSON, line streams and upgrades.

Three kinds of route: "json" (a request, one JSON answer), "lines" (a JSON
object per line until the handler's iterator ends; the connection closes),
and "upgrade" (after `101 Switching Protocols` the connection carries the
framed stream protocol both ways: attach and exec).
"""

from __future__ import annotations

import json
import math
import os
import re
import socketserver
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, overload
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ValidationError

from ..diskspace import is_disk_full, unattributed
from ..errors import Conflict, HyperError, NoSpace, NotFound, UserError
from ..log import get_logger
from ..validation import one_line

log = get_logger()

MAX_JSON_BODY = 64 << 20  # a pod file with inlined files is at most a few MB
MAX_QUERY_NUMBER = 1e9  # seconds or entries; also keeps timeouts within what threads accept


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: Any
    handler: BaseHTTPRequestHandler
    _body: bytes | None = None

    def content_length(self) -> int:
        text = (self.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit()):  # a negative length would read to EOF
            raise UserError(f"Content-Length {text[:20]!r} is not a number of bytes")
        return int(text)

    def body(self) -> bytes:
        if self._body is None:
            length = self.content_length()
            if length > MAX_JSON_BODY:
                raise UserError(f"request body larger than {MAX_JSON_BODY} bytes")
            self._body = self.handler.rfile.read(length) if length else b""
        return self._body

    def model(self, model: type[BaseModel]) -> Any:
        raw = self.body() or b"{}"
        try:
            return model.model_validate_json(raw)
        except ValidationError as e:
            raise UserError(one_line(e)) from None

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true", "yes")

    @overload
    def number(self, name: str, default: float) -> float: ...

    @overload
    def number(self, name: str, default: None = None) -> float | None: ...

    def number(self, name: str, default: float | None = None) -> float | None:
        """A count or a number of seconds: NaN, infinities, negatives and an empty
        value (`?t=`: which number was meant?) are refused; absent, the default."""
        value = self.query.get(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not 0 <= number <= MAX_QUERY_NUMBER:
            raise UserError(
                f"query parameter {name}: {value[:20]!r} is not a number "
                f"from 0 to {MAX_QUERY_NUMBER:g}"
            )
        return number

    def time(self, name: str) -> datetime | None:
        """An ISO 8601 time (UTC unless it says otherwise); absent, None."""
        value = self.query.get(name)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise UserError(
                f"query parameter {name}: {value[:40]!r} is not a time like 2026-01-02T15:04:05Z"
            ) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Route:
    method: str
    template: str
    handler: Callable[..., Any]
    summary: str
    kind: str = "json"  # json | lines | upgrade | raw
    body: type[BaseModel] | None = None
    answer: Any = None  # a pydantic model (or list[model]) for the OpenAPI document
    query: dict[str, str] = field(default_factory=dict)  # name -> description
    pattern: re.Pattern = field(init=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        self.pattern = re.compile(f"^{regex}$")


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, summary: str, **kwargs) -> Callable:
        def register(handler: Callable) -> Callable:
            self.routes.append(Route(method, template, handler, summary, **kwargs))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found:
                if route.method == method:
                    return route, {k: unquote(v) for k, v in found.groupdict().items()}
                allowed = True
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}")
        raise NotFound(f"no API endpoint {path}")


class MethodNotAllowed(UserError):
    pass


def status_of(error: Exception) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, MethodNotAllowed):
        return 405
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, UserError):
        return 400
    if isinstance(error, NoSpace):
        return 507  # Insufficient Storage
    return 500


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hyperd"
    router: Router  # set on the subclass the server makes

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http", request=format % args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_GET

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            route, params = self.router.match(self.command, url.path)
            request = Request(self.command, url.path, params, query, self.headers, self)
            if route.kind == "upgrade":
                return self._upgrade(route, request)
            result = route.handler(request)
            if route.kind == "lines":
                return self._lines(result)
            if route.kind == "raw":
                return self._raw(result)
            self._json(200, result)
        except (BrokenPipeError, ConnectionResetError):  # the client left before the answer
            log.debug("client went away before its answer", path=self.path)
            self.close_connection = True
        except HyperError as e:
            self._error(e)
        except Exception as e:  # noqa: BLE001 - a bug must not kill the daemon
            if is_disk_full(e):  # not a bug: the host's disk, even if no store said it
                return self._error(unattributed(e))
            self._internal_error(e)
            self._error(e)

    def _internal_error(self, error: Exception) -> None:
        log.error(
            "internal error", path=self.path, error=str(error), traceback=traceback.format_exc()
        )

    def _warn_if_full(self, error: Exception) -> None:
        if isinstance(error, NoSpace):  # the host's operator has to act: in hyperd's log too
            log.warning("no space left", path=self.path, error=str(error))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors http.server finds itself (a bad request line, too many headers): JSON too."""
        text = message or self.responses.get(code, ("error",))[0]
        self.close_connection = True
        self._json(code, {"error": text.splitlines()[0] if text else f"HTTP {code}"})

    def _error(self, error: Exception) -> None:
        self._warn_if_full(error)
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if not isinstance(error, HyperError):
            message = f"internal error: {message}"
        # The body may not have been read: this connection cannot be reused.
        self.close_connection = True
        self._json(status_of(error), {"error": message})

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(_plain(value)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _lines(self, items: Iterator[Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for item in items:
                self.wfile.write(json.dumps(_plain(item)).encode() + b"\n")
                self.wfile.flush()
        except HyperError as e:  # an error after the headers: the last line says it
            self._last_line(e)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # noqa: BLE001 - a bug: said in the stream, never a 2nd answer
            if is_disk_full(e):  # not a bug: the host's disk, even if no store said it
                self._last_line(unattributed(e))
            else:
                self._internal_error(e)
                self.wfile.write(json.dumps({"error": f"internal error: {e}"}).encode() + b"\n")
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    def _last_line(self, error: HyperError) -> None:
        self._warn_if_full(error)
        self.wfile.write(json.dumps({"error": str(error)}).encode() + b"\n")

    def _raw(self, chunks: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except HyperError as e:  # after the headers there is no way to say it: cut
            log.warning("raw stream cut", path=self.path, error=str(e))
        except Exception as e:  # noqa: BLE001 - a bug after the headers: the stream is cut
            self._internal_error(e)

    def _upgrade(self, route: Route, request: Request) -> None:
        """Validate first (errors are plain JSON answers), then switch protocols."""
        start = route.handler(request)  # returns a callable taking the connection
        request.body()  # read even if unused: what follows it is the stream's first frame
        self.send_response(101)
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "hc-stream")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        start(self.connection, self.rfile)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, path: str, router: Router, group: int | None = None) -> None:
        handler = type("RoutedHandler", (Handler,), {"router": router})
        if os.path.exists(path):
            os.unlink(path)
        old = os.umask(0o177)  # the socket is created 0600: no window where others connect
        try:
            super().__init__(path, handler)
        finally:
            os.umask(old)
        if group is not None:
            os.chown(path, -1, group)
            os.chmod(path, 0o660)

    def get_request(self):
        connection, _ = self.socket.accept()
        return connection, ("hyperctl", 0)
