"""A real registry for tests: Debian's docker-registry on 127.0.0.1, pushed to with skopeo.

    registry = Registry.start(tmp_path, auth="htpasswd")   # or None, or "token"
    registry.push(layout_dir, "latest", "test/busybox:latest")
    ...
    registry.stop()

Token auth runs a small token issuer in a thread: it checks basic
credentials and signs JWTs (RS256) with a key whose certificate the registry
trusts through `auth.token.rootcertbundle`, as a real deployment does.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3

REGISTRY_BINARY = "docker-registry"
USERNAME = "tester"
PASSWORD = "s3cret-pw"
SERVICE = "hc-test-registry"
ISSUER = "hc-test-issuer"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> int:
    """The first of `count` consecutive host ports free on loopback (for ranges)."""
    while True:
        first = free_port()
        if first + count > 65536:
            continue
        held = []
        try:
            for port in range(first, first + count):
                probe = socket.socket()
                held.append(probe)
                probe.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for probe in held:
                probe.close()


def wait_until_answers(url: str, deadline: float) -> None:
    """Poll with a deadline: a registry has no readiness signal to wait on."""
    while True:
        try:
            with warnings.catch_warnings():  # a self-signed test certificate, on purpose
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                requests.get(url, timeout=2, verify=False)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class Registry:
    address: str  # host:port
    workdir: Path
    process: subprocess.Popen
    auth: str | None = None
    token_server: TokenServer | None = None
    username: str = USERNAME
    password: str = PASSWORD
    tls: bool = False

    @classmethod
    def start(cls, workdir: Path, auth: str | None = None, tls: bool = False) -> Registry:
        if not shutil.which(REGISTRY_BINARY):
            raise RuntimeError("docker-registry is not installed (Debian package docker-registry)")
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config: dict = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(workdir / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        }
        token_server = None
        if auth == "htpasswd":
            htpasswd = workdir / "htpasswd"
            import bcrypt

            hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
            htpasswd.write_text(f"{USERNAME}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "hc-test", "path": str(htpasswd)}}
        elif auth == "token":
            token_server = TokenServer.start(workdir)
            config["auth"] = {
                "token": {
                    "realm": token_server.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(token_server.cert_path),
                }
            }
        elif auth is not None:
            raise ValueError(f"unknown auth {auth!r}")
        if tls:
            cert, key = make_certificate(workdir / "tls", "127.0.0.1")
            config["http"]["tls"] = {"certificate": str(cert), "key": str(key)}
        config_path = workdir / "config.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        log = (workdir / "registry.log").open("wb")
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT
        )
        registry = cls(f"127.0.0.1:{port}", workdir, process, auth, token_server, tls=tls)
        try:
            wait_until_answers(f"{registry.url}/v2/", time.monotonic() + START_TIMEOUT)
        except BaseException:
            registry.stop()
            raise
        return registry

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def push(self, layout: Path, ref_name: str, target: str, all_platforms: bool = False) -> None:
        """skopeo copy oci:<layout>:<ref_name> docker://<registry>/<target>."""
        command = [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"oci:{layout}:{ref_name}",
            f"docker://{self.address}/{target}",
        ]
        if self.auth:
            command[3:3] = ["--dest-creds", f"{self.username}:{self.password}"]
        if all_platforms:
            command[3:3] = ["--all"]
        subprocess.run(command, check=True, capture_output=True, timeout=300)

    def blob_path(self, repository: str, digest: str) -> Path:
        """Where the registry keeps a blob on disk (tests tamper with it)."""
        hex_ = digest.split(":", 1)[1]
        return self.workdir / "data/docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.token_server:
            self.token_server.stop()


# -- the token issuer ---------------------------------------------------------


def make_key_and_certificate(directory: Path, common_name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    try:
        import ipaddress

        san = x509.IPAddress(ipaddress.ip_address(common_name))
    except ValueError:
        san = x509.DNSName(common_name)
    builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return key, cert_path, key_path


def make_certificate(directory: Path, common_name: str) -> tuple[Path, Path]:
    _, cert, key = make_key_and_certificate(directory, common_name)
    return cert, key


def libtrust_key_id(public_key) -> str:
    """The registry's `kid` format: base32 of the SHA-256 of the DER key, in groups of 4."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class TokenServer:
    server: http.server.ThreadingHTTPServer
    key: object
    cert_path: Path
    requests: list[dict] = field(default_factory=list)  # what clients asked for

    @classmethod
    def start(cls, workdir: Path) -> TokenServer:
        key, cert_path, _ = make_key_and_certificate(workdir / "token", ISSUER)
        holder: dict = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                holder["server"].handle_token_request(self)

            def log_message(self, *args) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        token_server = cls(server, key, cert_path)
        holder["server"] = token_server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return token_server

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle_token_request(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(handler.path).query)
        user = _basic_user(handler.headers.get("Authorization", ""))
        self.requests.append(
            {
                "user": user,
                "scope": query.get("scope", []),
                "service": query.get("service", [""])[0],
            }
        )
        if user is False:
            handler.send_response(401)
            handler.end_headers()
            return
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and user:  # anonymous users get no access at all
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        body = json.dumps({"token": self._sign(user or "", access), "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _sign(self, subject: str, access: list[dict]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": libtrust_key_id(self.key.public_key())}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        encoded = [_b64url(json.dumps(part).encode()) for part in (header, claims)]
        signing_input = ".".join(encoded)
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


def _basic_user(header: str) -> str | None | bool:
    """The authenticated user; None when anonymous; False for wrong credentials."""
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return False
    return user if (user, password) == (USERNAME, PASSWORD) else False
