"""``tokenlib token issue`` and ``tokenlib token inspect``: RFC 9068 JWT access tokens,
bearer or bound to a DPoP key (``cnf.jkt``, RFC 9449 §6) or a client certificate
(``cnf.x5t#S256``, RFC 8705 §3.1)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

from tokenlib.binding import CNF_MEMBERS, Binding
from tokenlib.cli._input import (
    MAX_INPUT,
    add_now,
    cert_from_bytes,
    json_object,
    load_key,
    non_negative_seconds,
    read_arg,
    read_file,
)
from tokenlib.cli._output import (
    EXIT_OK,
    CLIError,
    CLIParser,
    Subparsers,
    duration,
    emit_json,
    escape,
    iso_utc,
    out,
    report_invalid,
    stderr,
)
from tokenlib.cli.thumbprint import thumbprint_of, x5t_s256
from tokenlib.errors import InvalidToken, TokenError
from tokenlib.jwk import ALGORITHMS, default_alg_for_key, jwk_thumbprint

__all__ = ["binding_of", "register"]

_URL_TIMEOUT: Final = 10.0


def binding_of(claims: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(binding name, confirmation members) from a token's ``cnf`` (RFC 8705 §3.1, RFC 9449 §6).

    The name is a :class:`tokenlib.binding.Binding` value (``bearer``, ``dpop``, ``mtls``,
    ``dpop+mtls``). This reads an unverified token, so every string member counts; the
    strict parse is :meth:`tokenlib.binding.Confirmation.parse`."""
    cnf = claims.get("cnf")
    members: dict[str, str] = {}
    if isinstance(cnf, Mapping):
        for name in CNF_MEMBERS:
            value = cnf.get(name)
            if isinstance(value, str):
                members[name] = value
    binding = Binding.of(jkt=members.get("jkt"), x5t_s256=members.get("x5t#S256"))
    return binding.value, members


# -- issue -----------------------------------------------------------------------------------


def _jkt_from_args(args: argparse.Namespace) -> str | None:
    if args.jkt:
        return str(args.jkt)
    if args.dpop_key:
        return thumbprint_of(args.dpop_key)[1]
    return None


def _x5t_from_args(args: argparse.Namespace) -> str | None:
    if args.x5t:
        return str(args.x5t)
    if args.cert:
        data = read_file(args.cert, "certificate")
        try:
            cert = cert_from_bytes(data)
        except ValueError as exc:
            raise CLIError(f"{args.cert!r} is not a valid certificate: {exc}") from None
        if cert is None:
            raise CLIError(f"{args.cert!r} is not a PEM or DER certificate")
        return x5t_s256(cert)
    return None


def _cmd_token_issue(args: argparse.Namespace) -> int:
    from tokenlib.bearer import Issuer

    key = load_key(args.key)
    alg = args.alg or default_alg_for_key(key)
    if args.lifetime <= 0:
        raise CLIError("--lifetime must be a positive number of seconds")
    jkt = _jkt_from_args(args)
    x5t = _x5t_from_args(args)
    try:
        issuer = Issuer(
            args.iss, key, lifetime=args.lifetime, alg=alg, kid=args.kid or jwk_thumbprint(key)
        )
        audience: str | list[str] = args.aud[0] if len(args.aud) == 1 else list(args.aud)
        token = issuer.issue(
            subject=args.sub,
            client_id=args.client_id,
            audience=audience,
            scope=args.scope,
            jkt=jkt,
            x5t_s256=x5t,
            now=args.now,
            jti=args.jti,
        )
    except (ValueError, TypeError) as exc:
        raise CLIError(f"cannot issue the token: {exc}") from None
    binding = Binding.of(jkt=jkt or None, x5t_s256=x5t or None).value
    if args.json:
        emit_json(
            {
                "access_token": token,
                "token_type": "DPoP" if jkt else "Bearer",
                "expires_in": args.lifetime,
                "binding": binding,
                "cnf": {k: v for k, v in (("jkt", jkt), ("x5t#S256", x5t)) if v},
            }
        )
    else:
        out(escape(token))
    return EXIT_OK


# -- inspect ---------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fetch_jwks(url: str, *, cafile: str | None) -> bytes:
    """GET a JWKS over https (or http on loopback), with a timeout and a size bound."""
    import ssl

    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if not (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))):
        raise CLIError(f"refusing to fetch a JWKS from {url!r}: use https (http only on loopback)")
    context = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(  # noqa: S310 (scheme checked above)
            request, timeout=_URL_TIMEOUT, context=context
        ) as response:
            data: bytes = response.read(MAX_INPUT + 1)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot fetch the JWKS from {url!r}: {exc}") from None
    if len(data) > MAX_INPUT:
        raise CLIError(f"the JWKS at {url!r} is larger than {MAX_INPUT} bytes")
    return data


def _load_jwks(source: str, *, cafile: str | None) -> dict[str, Any]:
    if source.startswith(("https://", "http://")):
        data = _fetch_jwks(source, cafile=cafile)
    else:
        data = read_file(source, "JWKS file")
    doc = json_object(data, f"JWKS {source!r}")
    if "keys" not in doc and "kty" in doc:
        doc = {"keys": [doc]}
    if not isinstance(doc.get("keys"), list):
        raise CLIError(f"{source!r} is neither a JWK set nor a JWK")
    return doc


def _numeric_date(value: object) -> float | None:
    """A claim's NumericDate (RFC 7519 §2: a finite JSON number), else ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def _time_status(claims: Mapping[str, Any], now: float, leeway: float) -> dict[str, Any]:
    """Whether the token is current at ``now`` (RFC 7519 §4.1.4, §4.1.5), from its claims
    alone: shown even when nothing was verified, so a decoded expired token says so."""
    exp, nbf = _numeric_date(claims.get("exp")), _numeric_date(claims.get("nbf"))
    expired = None if exp is None else now >= exp + leeway
    early = None if nbf is None else nbf > now + leeway
    return {
        "evaluated_at": iso_utc(math.floor(now)),
        "expired": expired,
        "not_yet_valid": early,
        "expires_in": None if exp is None else round(exp - now, 3),
    }


def _cmd_token_inspect(args: argparse.Namespace) -> int:
    from tokenlib import _jws

    token = read_arg(args.token, "token")
    try:
        parsed = _jws.parse(token, error=InvalidToken, what="access token")
    except TokenError as exc:
        return report_invalid(exc, as_json=args.json, explain=True)
    binding, cnf = binding_of(parsed.payload)
    now = time.time() if args.now is None else args.now
    status = _time_status(parsed.payload, now, args.leeway)
    record: dict[str, Any] = {
        "header": parsed.header,
        "claims": parsed.payload,
        "binding": binding,
        "cnf": cnf,
        "issued_at": iso_utc(parsed.payload.get("iat")),
        "expires_at": iso_utc(parsed.payload.get("exp")),
        **status,
        "verified": None,
    }
    if args.jwks:
        if not args.issuer or not args.audience:
            raise CLIError("--jwks needs --issuer and --audience (what the token must match)")
        from tokenlib.bearer import verify_access_token

        jwks = _load_jwks(args.jwks, cafile=args.cafile)
        try:
            verified = verify_access_token(
                token,
                issuer=args.issuer,
                audience=args.audience,
                jwks=jwks,
                leeway=args.leeway,
                now=now,
            )
        except TokenError as exc:
            return report_invalid(exc, as_json=args.json, explain=True, extra=record)
        except ValueError as exc:  # a broken JWKS is the operator's input
            raise CLIError(f"the JWKS {args.jwks!r} is unusable: {exc}") from None
        record["verified"] = True
        record["binding"] = verified.binding.value
    if args.json:
        emit_json(record)
        return EXIT_OK
    expires = f"expires : {record['expires_at']}"
    if status["expired"]:
        expires += f"  EXPIRED {duration(status['expires_in'])} ago (at {status['evaluated_at']})"
        stderr(
            f"warning: the token expired at {record['expires_at']}, "
            f"{duration(status['expires_in'])} before {status['evaluated_at']} "
            "(decoded, not verified)"
        )
    elif status["expires_in"] is not None:
        expires += f"  (in {duration(status['expires_in'])})"
    lines = [
        f"binding : {escape(record['binding'])}"
        + "".join(f"  ({escape(k)} {escape(v)})" for k, v in cnf.items()),
        f"issued  : {record['issued_at']}",
        expires,
    ]
    if status["not_yet_valid"]:
        lines.append(f"nbf     : NOT YET VALID until {iso_utc(parsed.payload.get('nbf'))}")
        stderr("warning: the token is not valid yet (nbf is in the future; decoded, not verified)")
    lines += [
        # ensure_ascii: every control and non-ASCII character is a \uXXXX escape.
        "header  : " + json.dumps(parsed.header, sort_keys=True, ensure_ascii=True),
        "claims  :",
        json.dumps(parsed.payload, indent=2, sort_keys=True, ensure_ascii=True),
    ]
    if record["verified"]:
        lines.append(f"verified: signature, issuer, audience and lifetime OK ({escape(args.jwks)})")
    else:
        lines.append("verified: no (pass --jwks, --issuer and --audience to verify)")
    out("\n".join(lines))
    return EXIT_OK


def register(sub: Subparsers[CLIParser], common: CLIParser) -> None:
    """Add ``token issue`` and ``token inspect`` to the top-level sub-commands."""
    token = sub.add_parser("token", help="issue and inspect access tokens", parents=[common])
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    issue = token_sub.add_parser(
        "issue",
        parents=[common],
        help="issue an RFC 9068 JWT access token (bearer, DPoP- or certificate-bound)",
        description="Sign an RFC 9068 access token with a private key file. Bind it to a "
        "DPoP key (cnf.jkt, RFC 9449 §6) with --jkt/--dpop-key or to a client certificate "
        "(cnf.x5t#S256, RFC 8705 §3.1) with --x5t/--cert. The token is printed on stdout.",
    )
    issue.add_argument("--key", required=True, metavar="PEM", help="the issuer's signing key")
    issue.add_argument("--iss", required=True, help="issuer identifier (URL)")
    issue.add_argument("--sub", required=True, help="subject")
    issue.add_argument("--client-id", required=True, help="client_id claim")
    issue.add_argument("--aud", required=True, action="append", help="audience (repeatable)")
    issue.add_argument("--scope", help="space-separated scopes")
    issue.add_argument("--lifetime", type=int, default=300, help="seconds (default: 300)")
    issue.add_argument("--alg", choices=ALGORITHMS, help="default: natural alg of the key")
    issue.add_argument("--kid", help="key id header (default: the key's RFC 7638 thumbprint)")
    issue.add_argument("--jti", help="token id (default: random)")
    dpop = issue.add_mutually_exclusive_group()
    dpop.add_argument("--jkt", help="bind to this DPoP key thumbprint (cnf.jkt)")
    dpop.add_argument("--dpop-key", metavar="FILE", help="bind to this key (PEM or JWK)")
    mtls = issue.add_mutually_exclusive_group()
    mtls.add_argument("--x5t", metavar="X5T_S256", help="bind to this cert thumbprint")
    mtls.add_argument("--cert", metavar="FILE", help="bind to this client certificate")
    add_now(issue)
    issue.set_defaults(func=_cmd_token_issue)

    inspect = token_sub.add_parser(
        "inspect",
        parents=[common],
        help="decode a token, show its binding, optionally verify it",
        description="Decode a JWT access token (header, claims, binding from cnf). With "
        "--jwks (file or URL), --issuer and --audience, verify it per RFC 9068 §4 and "
        "explain a failure. Exit 1 if verification fails.",
    )
    inspect.add_argument("token", metavar="TOKEN", help="the token, or - to read stdin")
    inspect.add_argument("--jwks", metavar="FILE|URL", help="verification keys (JWKS or JWK)")
    inspect.add_argument("--issuer", help="expected iss")
    inspect.add_argument("--audience", help="expected aud (this resource server)")
    inspect.add_argument(
        "--leeway",
        type=non_negative_seconds,
        default=0,
        help="clock skew allowed, seconds (default: 0)",
    )
    inspect.add_argument("--cafile", help="CA bundle for an https JWKS URL")
    add_now(inspect)
    inspect.set_defaults(func=_cmd_token_inspect)
