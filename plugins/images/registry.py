"""A client for one registry speaking the OCI distribution API.

It finds the registry's scheme with the `/v2/` ping (HTTPS, verified; an
insecure or loopback registry is tried with unverified HTTPS and then plain
HTTP, as Docker does), answers `401` challenges with basic auth or a bearer
token fetched from the challenge's realm (scope `pull`, or `pull,push` for a
push), and hands out manifests and blob streams; `request()` is the same
machinery for the push protocol (push.py). Verifying what comes back is the
caller's job. Failures are told in the user's terms: which registry, and why.
"""

from __future__ import annotations

import base64
import ipaddress
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import requests
import urllib3
from hypercontainer.errors import NotFound, UserError
from hypercontainer.log import get_logger

from . import digests, manifest, neterrors
from .auth import Challenge, Credentials, CredentialStore, parse_challenges
from .reference import DOCKER_HUB, Reference, host_of, is_loopback

DOCKER_HUB_API = "registry-1.docker.io"
TIMEOUT = (15, 120)  # connect, read (seconds)
CHUNK = 1 << 20

log = get_logger()


def is_insecure(registry: str, insecure: Iterable[str]) -> bool:
    """Configured as insecure (by name, host or CIDR), or a loopback registry."""
    if is_loopback(registry):
        return True
    host = host_of(registry)
    for entry in insecure:
        if entry in (registry, host):
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


class RegistryClient:
    def __init__(
        self, registry: str, credentials: CredentialStore, insecure: Iterable[str] = ()
    ) -> None:
        self.registry = registry
        self.api_host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self.credentials = credentials
        self.insecure = is_insecure(registry, insecure)
        if self.insecure:
            # Unverified HTTPS is what the user asked for (or loopback): no warning per request.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "hypercontainer"
        self._base: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], str] = {}
        self._lock = threading.Lock()
        self.log = log.bind(registry=registry)

    # -- public surface ------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        """scheme://host the registry answered on, once it was reached."""
        return self._base

    def get_manifest(self, ref: Reference, target: str | None = None) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest, its digest verified."""
        target = target or ref.target
        separator = "@" if ":" in target else ":"
        response = self._get(
            ref,
            f"manifests/{target}",
            f"image {ref.name}{separator}{target}",
            headers={"Accept": ", ".join(manifest.ACCEPTED + manifest.SCHEMA1)},
            stream=True,
        )
        with response:
            body = self._read_limited(response, manifest.MAX_MANIFEST_SIZE, "manifest")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if target.startswith(("sha256:", "sha512:")):
            digests.verify_bytes(body, target, f"manifest {ref.name}@{target}")
            return body, content_type, target
        actual = digests.of_bytes(body)
        announced = response.headers.get("Docker-Content-Digest", "")
        if announced.startswith("sha256:") and announced != actual:
            raise UserError(
                f"manifest {ref}: digest mismatch (registry says {announced}, content is {actual})"
            )
        return body, content_type, actual

    def blob_chunks(self, ref: Reference, digest: str) -> Iterator[bytes]:
        """A blob's bytes as they arrive; the caller verifies them."""
        response = self._get(ref, f"blobs/{digest}", f"blob {digest} of {ref.name}", stream=True)
        with response:
            try:
                # Raw bytes: a Content-Encoding must not be undone before hashing.
                yield from response.raw.stream(CHUNK, decode_content=False)
            except (urllib3.exceptions.HTTPError, OSError) as e:
                raise UserError(
                    f"blob {digests.short(digest)} of {ref.name}: download failed: "
                    f"{self._explain(e)}"
                ) from None

    def login(self, credentials: Credentials) -> None:
        """Refuse `credentials` unless the registry accepts them."""
        response = self._ping()
        if response.status_code == 200:
            return  # the registry asks for no authentication at all
        challenge = self._challenge
        if challenge and challenge.scheme == "bearer":
            try:
                self._fetch_token(challenge, scopes=(), credentials=credentials)
            except UserError as e:
                raise UserError(f"login to {self.registry} failed: {e}") from None
            return
        check = self._send("GET", f"{self._base}/v2/", {"Authorization": _basic(credentials)})
        if check.status_code != 200:
            raise UserError(f"login to {self.registry} failed: {_reason(check)}")

    # -- requests, authentication -------------------------------------------

    def request(
        self,
        method: str,
        ref: Reference,
        path: str,
        *,
        push: bool = False,
        mount_from: str | None = None,
        body: Callable[[], Any] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs,
    ) -> requests.Response:
        """One authenticated request about `ref`'s repository, whatever its status but 401.

        `path` is below `/v2/<repository>/`, or a URL the registry handed out (an upload's
        Location). `body()` makes the request body afresh for each attempt (a token may
        have to be renewed and the request sent again).
        """
        if self._base is None:
            self._ping()
        url = self._url(ref, path)
        scopes = [f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"]
        if mount_from:
            scopes.append(f"repository:{mount_from}:pull")
        # Credentials go to the registry only, never to a host it sends us on to.
        ours = urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(self._base).netloc
        for attempt in range(2):
            sent = dict(headers or {})
            authorization = self._authorization(tuple(scopes), renew=attempt > 0) if ours else None
            if authorization:
                sent["Authorization"] = authorization
            data = body() if body else None
            response = self._send(method, url, sent, data=data, **kwargs)
            if response.status_code != 401:
                return response
            self._remember_challenge(response)
            response.close()
        raise self._denied(ref, response, push)

    def refused(self, ref: Reference, response: requests.Response, what: str) -> UserError:
        """The error for an answer the protocol does not allow at this point."""
        if response.status_code == 404:
            return NotFound(f"{what} not found ({_reason(response)})")
        if response.status_code == 403:
            return self._denied(ref, response, push=False)
        return UserError(f"{what}: registry {self.registry} answered {_reason(response)}")

    def _denied(self, ref: Reference, response: requests.Response, push: bool) -> UserError:
        action = "push to " if push else ""
        return UserError(
            f"{action}{ref.name}: access denied by {self.registry} "
            f"({_reason(response)}); {self._login_hint()}"
        )

    def _login_hint(self) -> str:
        if self.credentials.get(self.registry):
            return f"the credentials stored for {self.registry} are not allowed that"
        return f"try `hyperctl login {self.registry}`"

    def _url(self, ref: Reference, path: str) -> str:
        """`path` as a URL (the registry has been reached: its base is known)."""
        if path.startswith(("http://", "https://")):
            return path
        base = self._base or ""
        if path.startswith("/"):  # a Location relative to the registry
            return urllib.parse.urljoin(base, path)
        return f"{base}/v2/{ref.repository}/{path}"

    def _get(self, ref: Reference, path: str, what: str, **kwargs) -> requests.Response:
        response = self.request("GET", ref, path, **kwargs)
        if response.status_code != 200:
            with response:
                raise self.refused(ref, response, what)
        return response

    def _send(self, method: str, url: str, headers: dict[str, str], **kwargs) -> requests.Response:
        try:
            return self.session.request(
                method, url, headers=headers, timeout=TIMEOUT, verify=not self.insecure, **kwargs
            )
        except requests.RequestException as e:
            raise UserError(f"registry {self.registry} failed: {self._explain(e)}") from None

    def _explain(self, error: BaseException) -> str:
        return neterrors.explain(error, *TIMEOUT)

    def _read_limited(self, response: requests.Response, limit: int, what: str) -> bytes:
        try:
            body = response.raw.read(limit + 1, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise UserError(f"{what} from {self.registry}: {self._explain(e)}") from None
        if len(body) > limit:
            raise UserError(f"{what} larger than {limit} bytes")
        return body

    def _ping(self) -> requests.Response:
        """Find a scheme that answers `/v2/`; remember its challenge if any."""
        schemes = ["https", "http"] if self.insecure else ["https"]
        failure = ""
        for scheme in schemes:
            base = f"{scheme}://{self.api_host}"
            try:
                response = self.session.get(
                    f"{base}/v2/", timeout=TIMEOUT, verify=not self.insecure
                )
            except requests.RequestException as e:
                failure = self._explain(e)
                continue
            if response.status_code in (200, 401):
                self._base = base
                self._remember_challenge(response)
                self.log.debug("registry found", base=base, status=response.status_code)
                return response
            failure = f"{base}/v2/ answered {_reason(response)}"
            response.close()
        # Which address, when it is not the registry's name (docker.io is registry-1.docker.io).
        where = f" ({self.api_host})" if self.api_host != self.registry else ""
        raise UserError(f"cannot reach registry {self.registry}{where}: {failure}")

    def _remember_challenge(self, response: requests.Response) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        found = [c for c in parse_challenges(header) if c.scheme in ("bearer", "basic")]
        if found:
            self._challenge = found[0]

    def _authorization(self, scopes: tuple[str, ...], renew: bool) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        credentials = self.credentials.get(self.registry)
        if challenge.scheme == "basic":
            return _basic(credentials) if credentials else None
        with self._lock:
            if renew or scopes not in self._tokens:
                self._tokens[scopes] = self._fetch_token(challenge, scopes, credentials)
            return f"Bearer {self._tokens[scopes]}"

    def _fetch_token(
        self, challenge: Challenge, scopes: tuple[str, ...], credentials: Credentials | None
    ) -> str:
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise UserError(f"registry {self.registry} names an invalid token realm {realm!r}")
        params: dict[str, Any] = {"service": challenge.params.get("service", "")}
        if scopes:
            params["scope"] = list(scopes)  # one `scope=` parameter each
        headers = {"Authorization": _basic(credentials)} if credentials else {}
        try:
            response = self.session.get(
                realm, params=params, headers=headers, timeout=TIMEOUT, verify=not self.insecure
            )
        except requests.RequestException as e:
            where = urllib.parse.urlsplit(realm).netloc
            raise UserError(
                f"cannot reach the token server of {self.registry} ({where}): {self._explain(e)}"
            ) from None
        if response.status_code != 200:
            raise UserError(f"token server of {self.registry} refused: {_reason(response)}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise UserError(f"token server of {self.registry} sent no token")
        return token


def _basic(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _reason(response: requests.Response) -> str:
    """The status and the registry's first error message, on one line."""
    detail = ""
    try:
        errors = response.json().get("errors") or []
        if errors and isinstance(errors[0], dict):
            detail = f": {errors[0].get('code', '')} {errors[0].get('message', '')}".rstrip()
    except (ValueError, AttributeError):
        pass
    return _oneline(f"{response.status_code} {response.reason}{detail}")


def _oneline(value: object) -> str:
    return " ".join(str(value).split())[:300]
