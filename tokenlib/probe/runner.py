"""Run the catalogue against a live server and judge each answer.

:func:`probe` (resource-server mode) sends each applicable check of
:data:`~tokenlib.probe.catalogue.RS_CHECKS` once, in catalogue order, with the one token
the user supplies, at a bounded rate (``rate`` requests per second, at most
:data:`MAX_REQUESTS` requests in all), never following a redirect and never sending to any
origin but the target's. :func:`probe_token_endpoint` does the same for the
authorization-server checks at a token endpoint. :func:`plan` returns the requests
without sending anything (``--dry-run``).

Results are frozen dataclasses: :class:`ProbeReport` with one :class:`CheckResult` per
check (``passed`` / ``failed`` / ``not_applicable``, the observed status,
``WWW-Authenticate`` and error code, and a note saying why). Server-provided values are
kept raw here; every renderer in :mod:`tokenlib.probe.report` escapes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

from tokenlib.binding import Binding
from tokenlib.jwk import PrivateKey, jwk_thumbprint, load_private_key
from tokenlib.probe.build import PlannedRequest, RequestBuilder, Unbuildable
from tokenlib.probe.catalogue import AS_CHECKS, RS_CHECKS, Check

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_REQUESTS",
    "CheckResult",
    "Observation",
    "ProbeInputError",
    "ProbeReport",
    "Status",
    "plan",
    "probe",
    "probe_token_endpoint",
]

Status = Literal["passed", "failed", "not_applicable"]
#: Hard ceiling on requests per run (the catalogue needs about 45).
MAX_REQUESTS: Final = 80
MAX_RATE: Final = 50.0
_MAX_BODY: Final = 64 * 1024
_ERROR_PARAM: Final = re.compile(r'error="([^"]*)"')
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: The bindings a probe can exercise (``binding=``): a token bound one way or both.
_PROBED_BINDINGS: Final = (Binding.DPOP, Binding.MTLS, Binding.DPOP_MTLS)


class ProbeInputError(ValueError):
    """The probe cannot run with these inputs (exit 2 in the CLI); the message says which
    input and why."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What the server answered to one request (raw, unescaped)."""

    status: int | None
    www_authenticate: str | None = None
    dpop_nonce: str | None = None
    error: str | None = None
    transport_error: str | None = None
    body: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome. ``observed_status``/``www_authenticate``/``error`` come from
    the server (``None`` when nothing was sent or no HTTP answer came)."""

    check: Check
    status: Status
    note: str = ""
    observed_status: int | None = None
    www_authenticate: str | None = None
    error: str | None = None

    @property
    def id(self) -> str:
        return self.check.id

    @property
    def severity(self) -> str:
        return self.check.severity

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` record of this check (a documented, stable contract)."""
        c = self.check
        return {
            "id": c.id,
            "title": c.title,
            "rfc": c.rfc,
            "severity": c.severity,
            "status": self.status,
            "observed_status": self.observed_status,
            "www_authenticate": self.www_authenticate,
            "error": self.error,
            "note": self.note,
            "sends": c.sends,
            "expects": c.expects,
            "binding": str(c.binding),  # the plain value
        }


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """A probe run: target, mode, binding, timing and one result per catalogue check."""

    target: str
    method: str
    mode: Literal["rs", "as"]
    binding: str
    started_at: str
    seconds: float
    requests_sent: int
    results: tuple[CheckResult, ...]

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def must_failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status == "failed" and r.severity == "must")

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    @property
    def exit_code(self) -> int:
        """1 when a must-level check failed, else 0."""
        return 1 if self.must_failures else 0

    def result(self, check_id: str) -> CheckResult:
        for r in self.results:
            if r.id == check_id:
                return r
        raise KeyError(f"no result for {check_id!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "tokenlib_probe": 1,
            "target": self.target,
            "method": self.method,
            "mode": self.mode,
            "binding": self.binding,
            "started_at": self.started_at,
            "seconds": self.seconds,
            "requests_sent": self.requests_sent,
            "summary": {
                "passed": self.count("passed"),
                "failed": self.count("failed"),
                "not_applicable": self.count("not_applicable"),
                "must_failed": len(self.must_failures),
            },
            "checks": [r.as_dict() for r in self.results],
        }


# -- inputs ----------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ProbeInputError(f"URL {url!r} must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ProbeInputError("the URL must not carry user:password@")
    try:
        port = parts.port
    except ValueError:
        raise ProbeInputError(f"URL {url!r} has an invalid port") from None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def _claims_of(token: str) -> dict[str, Any] | None:
    """The token's payload when it is a JWT (read, not verified: only ``cnf`` is used, to
    choose checks and catch a wrong key early)."""
    import base64

    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _load_key(key: PrivateKey | str | Path | None) -> PrivateKey | None:
    if key is None or not isinstance(key, str | Path):
        return key
    path = Path(key)
    try:
        return load_private_key(path.read_bytes())
    except OSError as exc:
        raise ProbeInputError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise ProbeInputError(f"{path} is not a usable private key: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    method: str
    token: str
    key: PrivateKey | None
    cert_file: Path | None
    cert_key_file: Path | None
    dpop: bool
    mtls: bool
    cert_header: str | None

    @property
    def binding(self) -> str:
        """``dpop``, ``mtls`` or ``dpop+mtls`` (:class:`tokenlib.binding.Binding` values)."""
        flag = "probed"
        return str(
            Binding.of(jkt=flag if self.dpop else None, x5t_s256=flag if self.mtls else None)
        )


def _target(
    url: str,
    *,
    token: str,
    key: PrivateKey | str | Path | None,
    cert: str | Path | None,
    cert_key: str | Path | None,
    method: str,
    binding: str | None,
) -> _Target:
    _origin(url)
    if (
        not isinstance(token, str)
        or not token
        or not token.isascii()
        or any(c.isspace() for c in token)
    ):
        raise ProbeInputError("the token must be one non-empty ASCII string without spaces")
    method = method.upper()
    if not re.fullmatch(r"[A-Z]{1,20}", method):
        raise ProbeInputError(f"--method {method!r} is not an HTTP method such as GET")
    private = _load_key(key)
    claims = _claims_of(token) or {}
    cnf = claims.get("cnf") if isinstance(claims.get("cnf"), dict) else {}
    assert isinstance(cnf, dict)
    jkt, x5t = cnf.get("jkt"), cnf.get("x5t#S256")
    if binding is None:
        dpop = jkt is not None or (not claims and private is not None)
        mtls = x5t is not None or (not claims and cert is not None)
    else:
        if binding not in _PROBED_BINDINGS:
            raise ProbeInputError("binding must be dpop, mtls or dpop+mtls")
        methods = Binding(binding).methods
        dpop, mtls = Binding.DPOP in methods, Binding.MTLS in methods
    if not dpop and not mtls:
        raise ProbeInputError(
            "the token is not sender-constrained (no cnf.jkt or cnf.x5t#S256): nothing to probe"
        )
    if dpop and private is None:
        raise ProbeInputError("a DPoP-bound token needs its DPoP private key (--key)")
    if dpop and private is not None and isinstance(jkt, str) and jwk_thumbprint(private) != jkt:
        raise ProbeInputError("--key does not match the token's cnf.jkt (RFC 9449 §6.1)")
    cert_file = Path(cert) if cert is not None else None
    cert_key_file = Path(cert_key) if cert_key is not None else None
    header = None
    if mtls:
        if cert_file is None or cert_key_file is None:
            raise ProbeInputError("a certificate-bound token needs --cert and --cert-key")
        if _origin(url)[0] != "https":
            raise ProbeInputError("a certificate-bound token can only be probed over https://")
        from tokenlib.mtls import cert_thumbprint, format_client_cert_header, load_certificate

        try:
            certificate = load_certificate(cert_file.read_bytes())
        except OSError as exc:
            raise ProbeInputError(f"cannot read {cert_file}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ProbeInputError(f"{cert_file} is not a PEM certificate: {exc}") from None
        if isinstance(x5t, str) and cert_thumbprint(certificate) != x5t:
            raise ProbeInputError("--cert does not match the token's cnf.x5t#S256 (RFC 8705 §3)")
        header = format_client_cert_header(certificate)
    return _Target(url, method, token, private, cert_file, cert_key_file, dpop, mtls, header)


# -- sending ---------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed client certificate for ``mtls.other_cert`` (0600 key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tokenlib.jwk import write_private_key

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokenlib-probe-other")])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "other.pem", directory / "other.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private_key(key_file, key)
    return cert_file, key_file


class _Sender:
    """Sends planned requests to one origin at a bounded rate, one client per certificate."""

    def __init__(
        self,
        target: _Target,
        *,
        verify: ssl.SSLContext | str | Path | bool,
        rate: float,
        timeout: float,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        stack: contextlib.ExitStack,
    ) -> None:
        self.target = target
        self.origin = _origin(target.url)
        self.verify = verify
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.transport = transport
        self.sleep = sleep
        self.monotonic = monotonic
        self.stack = stack
        self.clients: dict[str, httpx.Client] = {}
        self.sent = 0
        self._next = 0.0

    def _context(self, cert: str) -> ssl.SSLContext | bool:
        if self.origin[0] != "https":
            return False
        if isinstance(self.verify, ssl.SSLContext):
            if cert != "none":
                raise ProbeInputError("give a CA file, not an SSLContext, to probe mTLS")
            return self.verify
        if self.verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.verify is True:
            ctx = ssl.create_default_context()
        else:
            try:
                ctx = ssl.create_default_context(cafile=str(self.verify))
            except (OSError, ssl.SSLError) as exc:
                raise ProbeInputError(f"cannot load the CA file {self.verify}: {exc}") from None
        if cert == "bound":
            assert self.target.cert_file is not None
            assert self.target.cert_key_file is not None
            try:
                ctx.load_cert_chain(self.target.cert_file, self.target.cert_key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ProbeInputError(
                    f"cannot use --cert/--cert-key as a TLS client certificate: {exc}"
                ) from None
        elif cert == "other":
            directory = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
            ctx.load_cert_chain(*_self_signed(directory))
        return ctx

    def _client(self, cert: str) -> httpx.Client:
        import httpx

        if cert not in self.clients:
            self.clients[cert] = self.stack.enter_context(
                httpx.Client(
                    verify=self._context(cert),
                    timeout=self.timeout,
                    follow_redirects=False,
                    transport=self.transport,
                    headers={"User-Agent": "tokenlib-probe"},
                )
            )
        return self.clients[cert]

    def send(self, request: PlannedRequest) -> Observation:
        import httpx

        if _origin(request.url) != self.origin:  # never anything but the given origin
            raise ProbeInputError(f"refusing to send to another origin than {self.target.url}")
        if self.sent >= MAX_REQUESTS:
            raise RuntimeError(f"the probe would exceed {MAX_REQUESTS} requests")
        now = self.monotonic()
        if now < self._next:
            self.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval
        self.sent += 1
        cert = request.client_cert
        if cert == "none" and self.target.mtls and request.check_id.startswith("dpop."):
            cert = "bound"  # a DPoP+mTLS token needs its certificate on every request
        client = self._client(cert)
        try:
            with client.stream(
                request.method,
                request.url,
                headers=list(request.headers),
                content=request.body or None,
            ) as response:
                raw = b""
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) >= _MAX_BODY:
                        break
        except httpx.TransportError as exc:
            return Observation(None, transport_error=f"{type(exc).__name__}: {exc}"[:300])
        return _observe(response, raw[:_MAX_BODY])


def _observe(response: httpx.Response, raw: bytes) -> Observation:
    challenge = ", ".join(response.headers.get_list("www-authenticate")) or None
    nonce = response.headers.get("dpop-nonce")
    body: Mapping[str, Any] | None = None
    error = None
    try:
        parsed = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        body = parsed
        value = parsed.get("error")
        error = value if isinstance(value, str) else None
    if challenge is not None:
        match = _ERROR_PARAM.search(challenge)
        if match is not None:
            error = match.group(1)
    return Observation(response.status_code, challenge, nonce, error, None, body)


# -- judging ---------------------------------------------------------------------------------


def _judge(check: Check, obs: Observation, *, nonce_status: int = 401) -> CheckResult:
    def result(status: Status, note: str) -> CheckResult:
        return CheckResult(check, status, note, obs.status, obs.www_authenticate, obs.error)

    if obs.status is None:
        if check.expect == "reject" and check.binding == Binding.MTLS:
            return result("passed", f"refused during the TLS handshake ({obs.transport_error})")
        return result("failed", f"no HTTP answer: {obs.transport_error}")
    code = obs.status
    if check.expect == "accept":
        if 200 <= code < 300:
            return result("passed", "accepted")
        return result("failed", f"refused with {code} {obs.error or ''}".rstrip())
    if check.expect == "reject":
        if 400 <= code < 500:
            return result("passed", f"refused with {code} {obs.error or ''}".rstrip())
        if 200 <= code < 300:
            return result("failed", f"accepted ({code}): the server did not enforce this")
        return result("failed", f"answered {code}, not a 4xx refusal")
    if check.expect == "unauthorized":
        if code == 401 and obs.www_authenticate:
            return result("passed", "401 with a challenge")
        if code == 401:
            return result("failed", "401 without WWW-Authenticate (RFC 6750 §3)")
        if 200 <= code < 300:
            return result("failed", f"answered {code} without any token: unprotected")
        return result("failed", f"answered {code}, expected 401 with a challenge")
    # nonce_challenge
    problems = []
    if code != nonce_status:
        problems.append(f"status {code}, expected {nonce_status}")
    if obs.error != "use_dpop_nonce":
        problems.append(f"error {obs.error!r}, expected use_dpop_nonce")
    if not obs.dpop_nonce:
        problems.append("no DPoP-Nonce header")
    if problems:
        return result("failed", "; ".join(problems))
    return result("passed", f"{code} use_dpop_nonce with a DPoP-Nonce")


def _na(check: Check, why: str) -> CheckResult:
    return CheckResult(check, "not_applicable", why)


def _is_nonce_demand(obs: Observation) -> bool:
    return obs.error == "use_dpop_nonce" and bool(obs.dpop_nonce) and obs.status in (400, 401)


# -- the resource-server probe ---------------------------------------------------------------


def plan(
    url: str,
    *,
    token: str,
    key: PrivateKey | str | Path | None = None,
    cert: str | Path | None = None,
    cert_key: str | Path | None = None,
    method: str = "GET",
    binding: str | None = None,
) -> list[PlannedRequest]:
    """The requests :func:`probe` would send (nonce retries aside), without sending any."""
    target = _target(
        url, token=token, key=key, cert=cert, cert_key=cert_key, method=method, binding=binding
    )
    builder = RequestBuilder(url, target.method, token, target.key)
    out: list[PlannedRequest] = []
    for check in RS_CHECKS:
        if not _applies(check, target) or check.id in ("dpop.nonce_retry", "dpop.nonce_unknown"):
            continue
        if check.id == "mtls.injected_client_cert":
            assert target.cert_header is not None
            out.append(builder.mtls_injected(check.id, target.cert_header))
            continue
        with contextlib.suppress(Unbuildable):
            out.extend(builder.build(check.id))
    return out


def _applies(check: Check, target: _Target) -> bool:
    return (
        check.binding == "any"
        or (check.binding == Binding.DPOP and target.dpop)
        or (check.binding == Binding.MTLS and target.mtls)
    )


def probe(
    url: str,
    *,
    token: str,
    key: PrivateKey | str | Path | None = None,
    cert: str | Path | None = None,
    cert_key: str | Path | None = None,
    method: str = "GET",
    binding: str | None = None,
    verify: ssl.SSLContext | str | Path | bool = True,
    rate: float = 20.0,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> ProbeReport:
    """Probe the resource server at ``url`` with one sender-constrained ``token``.

    ``key``: the DPoP private key (object or PEM file) for a DPoP-bound token; ``cert`` /
    ``cert_key``: the client certificate and its key (PEM files) for a certificate-bound
    one. ``binding``: ``None`` reads it from the token's ``cnf`` (for an opaque token:
    ``dpop`` with a key, ``mtls`` with a certificate). ``verify``: the CA file that signs
    the server's certificate, ``True`` for the system store, ``False`` to skip server
    verification (lab only). ``rate``: requests per second (at most
    :data:`MAX_RATE`). Raises :class:`ProbeInputError` for unusable inputs; network
    failures become failed checks, never exceptions.
    """
    if not 0 < rate <= MAX_RATE:
        raise ProbeInputError(f"rate must be above 0 and at most {MAX_RATE} requests/s")
    target = _target(
        url, token=token, key=key, cert=cert, cert_key=cert_key, method=method, binding=binding
    )
    started = time.perf_counter()
    started_at = dt.datetime.fromtimestamp(clock(), dt.UTC).isoformat(timespec="seconds")
    results: dict[str, CheckResult] = {}
    with contextlib.ExitStack() as stack:
        sender = _Sender(
            target,
            verify=verify,
            rate=rate,
            timeout=timeout,
            transport=transport,
            sleep=sleep,
            monotonic=time.monotonic,
            stack=stack,
        )
        builder = RequestBuilder(url, target.method, token, target.key, clock=clock)
        _run_rs(target, builder, sender, results)
    ordered = tuple(
        results.get(c.id) or _na(c, f"the token is not {c.binding}-bound") for c in RS_CHECKS
    )
    return ProbeReport(
        target=url,
        method=target.method,
        mode="rs",
        binding=target.binding,
        started_at=started_at,
        seconds=round(time.perf_counter() - started, 3),
        requests_sent=sender.sent,
        results=ordered,
    )


def _checks(binding: Binding) -> Iterator[Check]:
    return (c for c in RS_CHECKS if c.binding == binding)


def _run_rs(
    target: _Target, builder: RequestBuilder, sender: _Sender, results: dict[str, CheckResult]
) -> None:
    def send(request: PlannedRequest) -> Observation:
        obs = sender.send(request)
        if obs.dpop_nonce and target.dpop:
            builder.nonce = obs.dpop_nonce  # RFC 9449 §8.2: the newest nonce wins
        return obs

    def one(check: Check) -> Observation:
        [request] = builder.build(check.id)
        return send(request)

    by_id = {c.id: c for c in RS_CHECKS}
    no_token = by_id["rs.no_token"]
    results[no_token.id] = _judge(no_token, one(no_token))
    if target.dpop:
        _run_dpop(target, builder, by_id, send, one, results)
    if target.mtls:
        valid = by_id["mtls.valid"]
        results[valid.id] = _judge(valid, one(valid))
        for check in _checks(Binding.MTLS):
            if check.id == valid.id:
                continue
            if results[valid.id].status != "passed":
                results[check.id] = _na(check, "the valid mTLS request was refused")
            elif check.id == "mtls.injected_client_cert":
                assert target.cert_header is not None
                obs = send(builder.mtls_injected(check.id, target.cert_header))
                results[check.id] = _judge(check, obs)
            else:
                results[check.id] = _judge(check, one(check))


def _run_dpop(
    target: _Target,
    builder: RequestBuilder,
    by_id: Mapping[str, Check],
    send: Callable[[PlannedRequest], Observation],
    one: Callable[[Check], Observation],
    results: dict[str, CheckResult],
) -> None:
    valid = by_id["dpop.valid"]
    challenge, retry, unknown = (
        by_id["dpop.nonce_challenge"],
        by_id["dpop.nonce_retry"],
        by_id["dpop.nonce_unknown"],
    )
    builder.nonce = None  # the first proof carries no nonce: does the server ask for one?
    first = one(valid)
    if _is_nonce_demand(first):
        results[challenge.id] = _judge(challenge, first)
        second = one(retry)
        results[retry.id] = _judge(retry, second)
        results[valid.id] = _judge(valid, second)
        results[unknown.id] = _judge(unknown, one(unknown))
    else:
        results[valid.id] = _judge(valid, first)
        for check in (challenge, retry, unknown):
            results[check.id] = _na(check, "the server did not ask for a DPoP nonce")
    skip = {valid.id, challenge.id, retry.id, unknown.id}
    for check in _checks(Binding.DPOP):
        if check.id in skip:
            continue
        if results[valid.id].status != "passed":
            results[check.id] = _na(
                check, "the valid DPoP request was refused, so refusals prove nothing"
            )
            continue
        try:
            requests = builder.build(check.id)
        except Unbuildable as exc:
            results[check.id] = _na(check, str(exc))
            continue
        if len(requests) == 2:  # jti_replayed: the first must be accepted
            original = send(requests[0])
            if original.status is None or not 200 <= original.status < 300:
                results[check.id] = _na(check, "the original request was refused")
                continue
        obs = send(requests[-1])
        if check.expect == "accept" and _is_nonce_demand(obs):
            obs = send(builder.build(check.id)[-1])  # the nonce rotated: one retry
        results[check.id] = _judge(check, obs)


# -- the token-endpoint probe ----------------------------------------------------------------


def probe_token_endpoint(
    url: str,
    *,
    refresh_token: str,
    client_id: str,
    key: PrivateKey | str | Path,
    par_url: str | None = None,
    verify: ssl.SSLContext | str | Path | bool = True,
    rate: float = 20.0,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[ProbeReport, str | None]:
    """Probe a token endpoint as a *public* client holding a DPoP-bound refresh token.

    Sends the refresh-token grant (RFC 6749 §6) with a valid proof first (nonce demand
    answered when the server asks), then the malformed variants with the rotated refresh
    token, then the grant with a proof from another key; with ``par_url`` (same origin) a
    pushed authorization request whose ``dpop_jkt`` names another key. Returns the report
    and the newest refresh token the server issued (refresh tokens rotate; keep it).
    """
    if not 0 < rate <= MAX_RATE:
        raise ProbeInputError(f"rate must be above 0 and at most {MAX_RATE} requests/s")
    private = _load_key(key)
    if private is None:
        raise ProbeInputError("the token-endpoint probe needs the DPoP key (--key)")
    if not refresh_token or not client_id:
        raise ProbeInputError("the token-endpoint probe needs --refresh-token and --client-id")
    if par_url is not None and _origin(par_url) != _origin(url):
        raise ProbeInputError("--par-url must have the same origin as the token endpoint")
    target = _Target(url, "POST", refresh_token, private, None, None, True, False, None)
    started = time.perf_counter()
    started_at = dt.datetime.fromtimestamp(clock(), dt.UTC).isoformat(timespec="seconds")
    by_id = {c.id: c for c in AS_CHECKS}
    results: dict[str, CheckResult] = {}
    current = refresh_token
    with contextlib.ExitStack() as stack:
        sender = _Sender(
            target,
            verify=verify,
            rate=rate,
            timeout=timeout,
            transport=transport,
            sleep=sleep,
            monotonic=time.monotonic,
            stack=stack,
        )
        builder = RequestBuilder(url, "POST", refresh_token, private, clock=clock)

        def grant(check_id: str, proof: str, *, to: str = url, form: str = "") -> Observation:
            nonlocal current
            from urllib.parse import urlencode

            body = form or urlencode(
                {"grant_type": "refresh_token", "refresh_token": current, "client_id": client_id}
            )
            request = PlannedRequest(
                check_id,
                "POST",
                to,
                (("Content-Type", "application/x-www-form-urlencoded"), ("DPoP", proof)),
                body=body.encode("ascii"),
            )
            obs = sender.send(request)
            if obs.dpop_nonce:
                builder.nonce = obs.dpop_nonce
            issued = obs.body.get("refresh_token") if obs.body is not None else None
            if obs.status == 200 and isinstance(issued, str) and issued:
                current = issued
            return obs

        def claims(**changes: Any) -> dict[str, Any]:
            return builder.claims(ath=None, **changes)

        valid, nonce_check = by_id["as.refresh_same_key"], by_id["as.nonce_status"]
        first = grant(valid.id, builder.proof(claims=claims()))
        if _is_nonce_demand(first):
            results[nonce_check.id] = _judge(nonce_check, first, nonce_status=400)
            first = grant(valid.id, builder.proof(claims=claims()))
        else:
            results[nonce_check.id] = _na(nonce_check, "the server did not ask for a DPoP nonce")
        results[valid.id] = _as_judge(valid, first)
        variants: dict[str, Callable[[], str]] = {
            "as.dpop_htu_wrong": lambda: builder.proof(
                claims=claims(htu=builder.htu.rstrip("/") + "/tokenlib-probe-other")
            ),
            "as.dpop_htm_wrong": lambda: builder.proof(claims=claims(htm="GET")),
            "as.dpop_malformed": lambda: "not-a-jwt",
            "as.dpop_iat_past": lambda: builder.proof(claims=claims(iat=int(clock()) - 3600)),
            "as.refresh_other_key": lambda: builder.proof(
                header=builder.header(builder._other), claims=claims(), signer=builder._other
            ),
        }
        for check_id, make in variants.items():
            check = by_id[check_id]
            if results[valid.id].status != "passed":
                results[check_id] = _na(check, "the valid refresh request was refused")
                continue
            results[check_id] = _as_judge(check, grant(check_id, make()))
        par = by_id["as.par_dpop_jkt_mismatch"]
        if par_url is None:
            results[par.id] = _na(par, "no --par-url given")
        else:
            from urllib.parse import urlencode

            par_builder = RequestBuilder(par_url, "POST", refresh_token, private, clock=clock)
            par_builder.nonce = builder.nonce
            form = urlencode(
                {
                    "client_id": client_id,
                    "response_type": "code",
                    "dpop_jkt": jwk_thumbprint(builder._other),
                }
            )
            proof = par_builder.proof(claims=par_builder.claims(ath=None))
            obs = grant(par.id, proof, to=par_url, form=form)
            results[par.id] = _as_judge(par, obs, errors=("invalid_request", "invalid_dpop_proof"))
    ordered = tuple(results.get(c.id) or _na(c, "not run") for c in AS_CHECKS)
    report = ProbeReport(
        target=url,
        method="POST",
        mode="as",
        binding=Binding.DPOP.value,
        started_at=started_at,
        seconds=round(time.perf_counter() - started, 3),
        requests_sent=sender.sent,
        results=ordered,
    )
    return report, current


def _as_judge(check: Check, obs: Observation, *, errors: Sequence[str] = ()) -> CheckResult:
    result = _judge(check, obs)
    if check.id == "as.refresh_same_key" and result.status == "passed":
        token_type = obs.body.get("token_type") if obs.body is not None else None
        if not isinstance(token_type, str) or token_type.lower() != "dpop":
            return CheckResult(
                check,
                "failed",
                f"token_type {token_type!r}, expected DPoP (RFC 9449 §5)",
                obs.status,
                obs.www_authenticate,
                obs.error,
            )
    if errors and result.status == "passed" and obs.error not in errors:
        return CheckResult(
            check,
            "failed",
            f"refused with {obs.error!r}, expected one of {', '.join(errors)}",
            obs.status,
            obs.www_authenticate,
            obs.error,
        )
    return result
