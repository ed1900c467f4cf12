"""A small HTTP(S) server on 127.0.0.1 for tests: fixed answers by path, requests recorded.

    with WebServer({"/logo.png": b"..."}) as web:          # or tls_dir=... for https
        web.url("/logo.png")                                # http://127.0.0.1:<port>/logo.png
        web.requests                                        # ["/logo.png"], or absolute URIs
                                                            # when it was asked as a proxy
A path mapped to a str redirects there (302). Anything else is a 404.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path
from urllib.parse import urlsplit


class WebServer:
    def __init__(self, answers: dict[str, bytes | str], tls: tuple[Path, Path] | None = None):
        self.answers = answers
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                answer = outer.answers.get(urlsplit(self.path).path)
                if isinstance(answer, str):
                    self.send_response(302)
                    self.send_header("Location", answer)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif answer is None:
                    self.send_error(404, "Not Found")
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> WebServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
