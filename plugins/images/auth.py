"""Registry credentials and authentication challenges.

Credentials come from `hyperctl login` (our own file, mode 0600, under the
state root) and then from Docker's `config.json` (`$DOCKER_CONFIG` or
`~/.docker`), so a machine already logged in with Docker needs nothing more.
Credential helpers (`credsStore`, `credHelpers`) are not consulted.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hypercontainer.errors import UserError

from .fsutil import atomic_write, locked
from .reference import DOCKER_HUB, DOCKER_HUB_ALIASES

DOCKER_HUB_KEY = "https://index.docker.io/v1/"  # how Docker names Hub in config.json


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password in a log or traceback
        return f"Credentials(username={self.username!r})"


def registry_key(name: str) -> str:
    """`https://index.docker.io/v1/` and `docker.io` name the same registry."""
    name = re.sub(r"^[a-z]+://", "", name.strip()).split("/", 1)[0]
    return DOCKER_HUB if name in DOCKER_HUB_ALIASES else name


class CredentialStore:
    """Our own credentials file plus, read-only, Docker's."""

    def __init__(self, path: Path, docker_config: Path | None = None) -> None:
        self.path = path
        self.docker_config = docker_config or docker_config_path()

    def get(self, registry: str) -> Credentials | None:
        key = registry_key(registry)
        for source in (self.path, self.docker_config):
            found = _read_auths(source).get(key)
            if found:
                return found
        return None

    def save(self, registry: str, credentials: Credentials) -> None:
        with locked(self.path.with_suffix(".lock"), exclusive=True):
            data = _load(self.path)
            auths = data.setdefault("auths", {})
            token = f"{credentials.username}:{credentials.password}".encode()
            auths[registry_key(registry)] = {"auth": base64.b64encode(token).decode()}
            atomic_write(self.path, json.dumps(data, indent=2).encode(), mode=0o600)

    def remove(self, registry: str) -> bool:
        """Forget every entry of ours naming `registry` (under any of its spellings:
        `docker.io`, `https://index.docker.io/v1/`, `http://host:port`); False if none."""
        key = registry_key(registry)
        if not self.path.exists():  # never logged in: leave no lock file behind either
            return False
        with locked(self.path.with_suffix(".lock"), exclusive=True):
            data = _load(self.path)
            auths = data.get("auths")
            if not isinstance(auths, dict):
                return False
            names = [name for name in auths if registry_key(name) == key]
            if not names:
                return False
            for name in names:
                del auths[name]
            atomic_write(self.path, json.dumps(data, indent=2).encode(), mode=0o600)
            return True

    def in_docker_config(self, registry: str) -> bool:
        """Whether Docker's config.json (which we only read) holds credentials for it."""
        return registry_key(registry) in _read_auths(self.docker_config)


def docker_config_path() -> Path:
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker/config.json"


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UserError(f"credentials file {path}: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"credentials file {path}: not a JSON object")
    return data


def _read_auths(path: Path) -> dict[str, Credentials]:
    auths = _load(path).get("auths")
    if not isinstance(auths, dict):
        return {}
    found: dict[str, Credentials] = {}
    for key, entry in auths.items():
        credentials = _decode(entry) if isinstance(entry, dict) else None
        if credentials:
            found.setdefault(registry_key(key), credentials)
    return found


def _decode(entry: dict) -> Credentials | None:
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, colon, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Credentials(user, password) if colon else None
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"])
    return None


# -- WWW-Authenticate ---------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict, hash=False)


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*(?:{_QUOTED}|({_TOKEN}))\s*(?:,|$)")
_SCHEME = re.compile(rf"\s*,?\s*({_TOKEN})(?:\s+|$)")


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="...",service="...",scope="..."` (possibly several) -> challenges."""
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        scheme = _SCHEME.match(header, position)
        if not scheme:
            break
        position = scheme.end()
        params: dict[str, str] = {}
        while (param := _PARAM.match(header, position)) is not None:
            quoted, bare = param.group(2), param.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            params[param.group(1).lower()] = value
            position = param.end()
        challenges.append(Challenge(scheme.group(1).lower(), params))
    return challenges
