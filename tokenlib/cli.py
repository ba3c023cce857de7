"""The ``tokenlib`` command line: keys, access tokens, DPoP proofs, thumbprints, the lab.

Thin wrappers over the library, for prototypes and for debugging a deployment::

    tokenlib keys generate --alg ES256 --out client.pem     # key 0600, public JWK printed
    tokenlib token issue --key as.pem --iss https://as.example --sub alice \\
        --client-id app --aud https://api.example --dpop-key client.pem
    tokenlib token inspect TOKEN --jwks https://as.example/jwks --issuer ... --audience ...
    tokenlib proof create --key client.pem --htm GET --htu https://api.example/r
    tokenlib proof verify PROOF --htm GET --htu https://api.example/r --explain
    tokenlib thumbprint client.pem                           # RFC 7638 jkt or x5t#S256
    tokenlib lab run --out lab.csv                           # the live TLS lab (lab extra)

Exit codes: 0 success; 1 a token or proof did not verify (or lab outcomes differ from the
expected ones); 2 a usage or input error (bad argument, unreadable file). Every command
takes ``--json`` for machine-readable output on stdout; errors go to stderr as one line.
Nothing secret is printed unless asked for (``keys generate --show-private``); an issued
token or created proof is the command's output and is printed only on stdout.

Only the standard library and the core are imported at start-up, so ``tokenlib keys
generate`` works with the core dependencies alone; the lab, inventory and report commands
import their extras when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tokenlib import __version__
from tokenlib._atomic import atomic_write_bytes
from tokenlib.errors import InvalidToken, TokenError
from tokenlib.jwk import (
    ALGORITHMS,
    PrivateKey,
    default_alg_for_key,
    generate_key,
    jwk_thumbprint,
    load_private_key,
    public_jwk,
    write_private_key,
)

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_USAGE: Final = 2

_PROG: Final = "tokenlib"
_MAX_INPUT: Final = 1 << 20  # 1 MiB: JWKS documents, certificates, tokens
_URL_TIMEOUT: Final = 10.0
_GENERATABLE: Final = ("ES256", "ES384", "ES512", "EdDSA", "Ed25519", "PS256", "RS256")

Handler = Callable[[argparse.Namespace], int]


class CLIError(Exception):
    """A usage or input problem: reported on one stderr line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``tokenlib proof verify: error: ...``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


# -- small helpers ---------------------------------------------------------------------------


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _stderr(message: str) -> None:
    print(f"{_PROG}: {message}", file=sys.stderr)


def _read_arg(value: str, what: str) -> str:
    """A token/proof argument: the value itself, or ``-`` for one item on stdin."""
    text = sys.stdin.read(_MAX_INPUT + 1) if value == "-" else value
    if len(text) > _MAX_INPUT:
        raise CLIError(f"the {what} is larger than {_MAX_INPUT} bytes")
    text = text.strip()
    if not text:
        raise CLIError(f"the {what} is empty")
    return text


def _read_file(path: str, what: str) -> bytes:
    """Bytes of ``path`` (``-`` = stdin), bounded, with a one-line error."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(_MAX_INPUT + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(_MAX_INPUT + 1)
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    if len(data) > _MAX_INPUT:
        raise CLIError(f"the {what} {path!r} is larger than {_MAX_INPUT} bytes")
    return data


def _load_key(path: str) -> PrivateKey:
    data = _read_file(path, "key file")
    try:
        return load_private_key(data)
    except (ValueError, TypeError) as exc:
        # cryptography's messages never contain key material; keep only the first line.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CLIError(f"{path!r} is not a usable PEM private key: {reason}") from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"the {what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CLIError(f"the {what} is not a JSON object")
    return obj


def _iso(value: object) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _binding_of(claims: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(binding name, confirmation members) from a token's ``cnf`` (RFC 8705 §3.1, RFC 9449 §6)."""
    cnf = claims.get("cnf")
    members: dict[str, str] = {}
    if isinstance(cnf, Mapping):
        for name in ("jkt", "x5t#S256"):
            value = cnf.get(name)
            if isinstance(value, str):
                members[name] = value
    if "jkt" in members and "x5t#S256" in members:
        return "dpop+mtls", members
    if "jkt" in members:
        return "dpop", members
    if "x5t#S256" in members:
        return "mtls", members
    return "bearer", members


def _error_record(exc: TokenError) -> dict[str, object]:
    return {
        "valid": False,
        "error": exc.error,
        "error_type": type(exc).__name__,
        "description": exc.description,
        "status": exc.status_code,
        "check": exc.check,
        "details": exc.details,
    }


# -- thumbprints -----------------------------------------------------------------------------


def _cert_from_bytes(data: bytes) -> x509.Certificate | None:
    """A PEM or DER certificate, or ``None`` when ``data`` is something else (a key)."""
    if b"-----BEGIN CERTIFICATE-----" not in data and data[:1] != b"\x30":
        return None
    from tokenlib.mtls import load_certificate

    try:
        return load_certificate(data)
    except ValueError:
        if b"-----BEGIN CERTIFICATE-----" in data:
            raise
        return None


def _x5t_s256(cert: x509.Certificate) -> str:
    from tokenlib.mtls import cert_thumbprint

    return cert_thumbprint(cert)


def _key_thumbprint_from_pem(data: bytes, path: str) -> str:
    if b"PRIVATE KEY-----" in data:
        try:
            return jwk_thumbprint(load_private_key(data))
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{path!r} is not a usable private key: {exc}") from None
    try:
        pub = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{path!r} is not a usable PEM public key: {exc}") from None
    if not isinstance(pub, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise CLIError(f"{path!r} holds an unsupported key type {type(pub).__name__}")
    try:
        return jwk_thumbprint(pub)
    except ValueError as exc:
        raise CLIError(f"{path!r}: {exc}") from None


def _thumbprint_of(path: str) -> tuple[str, str]:
    """(kind, thumbprint) of a JWK / JWKS / PEM key (RFC 7638) or a certificate (RFC 8705)."""
    data = _read_file(path, "file")
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):
        obj = _json_object(data, f"JWK in {path!r}")
        if "keys" in obj:
            keys = obj["keys"]
            if not isinstance(keys, list) or len(keys) != 1 or not isinstance(keys[0], dict):
                raise CLIError(f"{path!r} is a JWK set; give a file with exactly one key")
            obj = keys[0]
        try:
            return "jwk", jwk_thumbprint(obj)
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{path!r} is not a usable JWK: {exc}") from None
    try:
        cert = _cert_from_bytes(data)
    except ValueError as exc:
        raise CLIError(f"{path!r} is not a valid certificate: {exc}") from None
    if cert is not None:
        return "certificate", _x5t_s256(cert)
    if b"-----BEGIN" in data:
        return "jwk", _key_thumbprint_from_pem(data, path)
    raise CLIError(f"{path!r} is neither a JWK, a PEM key nor a PEM/DER certificate")


def _cmd_thumbprint(args: argparse.Namespace) -> int:
    kind, value = _thumbprint_of(args.file)
    member = "jkt" if kind == "jwk" else "x5t#S256"
    if args.json:
        _print_json({"kind": kind, "thumbprint": value, "cnf": {member: value}})
    else:
        print(value if args.quiet else f"{member}: {value}")
    return EXIT_OK


# -- keys ------------------------------------------------------------------------------------


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CLIError(f"{str(out)!r} exists; pass --force to replace it")
    if not out.parent.is_dir():
        raise CLIError(f"directory {str(out.parent)!r} does not exist")
    key = generate_key(args.alg)
    write_private_key(out, key)
    jwk: dict[str, str] = dict(public_jwk(key))
    thumbprint = jwk_thumbprint(key)
    jwk.update({"alg": args.alg, "use": "sig", "kid": args.kid or thumbprint})
    if args.public_out:
        doc = {"keys": [jwk]} if args.jwks else jwk
        atomic_write_bytes(Path(args.public_out), (json.dumps(doc, indent=2) + "\n").encode())
    private_pem: str | None = None
    if args.show_private:
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
    if args.json:
        record: dict[str, object] = {
            "private_key_file": str(out),
            "mode": "0600",
            "alg": args.alg,
            "kid": jwk["kid"],
            "jkt": thumbprint,
            "public_jwk": jwk,
            "public_key_file": args.public_out,
        }
        if private_pem is not None:
            record["private_key_pem"] = private_pem
        _print_json(record)
    else:
        print(f"wrote private key {out} (mode 0600); jkt {thumbprint}", file=sys.stderr)
        print(json.dumps(jwk, indent=2))
        if private_pem is not None:
            print(private_pem, end="")
    return EXIT_OK


# -- tokens ----------------------------------------------------------------------------------


def _jkt_from_args(args: argparse.Namespace) -> str | None:
    if args.jkt:
        return str(args.jkt)
    if args.dpop_key:
        return _thumbprint_of(args.dpop_key)[1]
    return None


def _x5t_from_args(args: argparse.Namespace) -> str | None:
    if args.x5t:
        return str(args.x5t)
    if args.cert:
        data = _read_file(args.cert, "certificate")
        try:
            cert = _cert_from_bytes(data)
        except ValueError as exc:
            raise CLIError(f"{args.cert!r} is not a valid certificate: {exc}") from None
        if cert is None:
            raise CLIError(f"{args.cert!r} is not a PEM or DER certificate")
        return _x5t_s256(cert)
    return None


def _cmd_token_issue(args: argparse.Namespace) -> int:
    from tokenlib.bearer import Issuer

    key = _load_key(args.key)
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
    binding = "dpop+mtls" if jkt and x5t else "dpop" if jkt else "mtls" if x5t else "bearer"
    if args.json:
        _print_json(
            {
                "access_token": token,
                "token_type": "DPoP" if jkt else "Bearer",
                "expires_in": args.lifetime,
                "binding": binding,
                "cnf": {k: v for k, v in (("jkt", jkt), ("x5t#S256", x5t)) if v},
            }
        )
    else:
        print(token)
    return EXIT_OK


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
            data: bytes = response.read(_MAX_INPUT + 1)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot fetch the JWKS from {url!r}: {exc}") from None
    if len(data) > _MAX_INPUT:
        raise CLIError(f"the JWKS at {url!r} is larger than {_MAX_INPUT} bytes")
    return data


def _load_jwks(source: str, *, cafile: str | None) -> dict[str, Any]:
    if source.startswith(("https://", "http://")):
        data = _fetch_jwks(source, cafile=cafile)
    else:
        data = _read_file(source, "JWKS file")
    doc = _json_object(data, f"JWKS {source!r}")
    if "keys" not in doc and "kty" in doc:
        doc = {"keys": [doc]}
    if not isinstance(doc.get("keys"), list):
        raise CLIError(f"{source!r} is neither a JWK set nor a JWK")
    return doc


def _cmd_token_inspect(args: argparse.Namespace) -> int:
    from tokenlib import _jws

    token = _read_arg(args.token, "token")
    try:
        parsed = _jws.parse(token, error=InvalidToken, what="access token")
    except TokenError as exc:
        return _report_invalid(args, exc, extra={})
    binding, cnf = _binding_of(parsed.payload)
    now = args.now
    record: dict[str, Any] = {
        "header": parsed.header,
        "claims": parsed.payload,
        "binding": binding,
        "cnf": cnf,
        "issued_at": _iso(parsed.payload.get("iat")),
        "expires_at": _iso(parsed.payload.get("exp")),
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
            return _report_invalid(args, exc, extra=record)
        except ValueError as exc:  # a broken JWKS is the operator's input
            raise CLIError(f"the JWKS {args.jwks!r} is unusable: {exc}") from None
        record["verified"] = True
        record["binding"] = verified.binding
    if args.json:
        _print_json(record)
        return EXIT_OK
    lines = [
        f"binding : {record['binding']}" + "".join(f"  ({k} {v})" for k, v in cnf.items()),
        f"issued  : {record['issued_at']}",
        f"expires : {record['expires_at']}",
        "header  : " + json.dumps(parsed.header, sort_keys=True),
        "claims  :",
        json.dumps(parsed.payload, indent=2, sort_keys=True),
    ]
    if record["verified"]:
        lines.append(f"verified: signature, issuer, audience and lifetime OK ({args.jwks})")
    else:
        lines.append("verified: no (pass --jwks, --issuer and --audience to verify)")
    print("\n".join(lines))
    return EXIT_OK


def _report_invalid(args: argparse.Namespace, exc: TokenError, *, extra: Mapping[str, Any]) -> int:
    """Print a verification failure (JSON record or one stderr line plus explain view)."""
    if args.json:
        record = dict(extra)
        record.update(_error_record(exc))
        record["verified"] = False
        _print_json(record)
    else:
        _stderr(f"{exc.error}: {exc.description}")
        if getattr(args, "explain", True):
            print(exc.explain())
    return EXIT_INVALID


# -- DPoP proofs -----------------------------------------------------------------------------


def _cmd_proof_create(args: argparse.Namespace) -> int:
    from tokenlib.dpop import create_proof

    key = _load_key(args.key)
    access_token = _read_arg(args.access_token, "access token") if args.access_token else None
    try:
        proof = create_proof(
            key,
            args.htm,
            args.htu,
            access_token=access_token,
            nonce=args.nonce,
            now=args.now,
            jti=args.jti,
            alg=args.alg,
        )
    except (ValueError, TypeError) as exc:
        raise CLIError(f"cannot create the proof: {exc}") from None
    if args.json:
        from tokenlib import _jws

        parsed = _jws.parse(proof, what="DPoP proof")
        _print_json(
            {
                "proof": proof,
                "jkt": jwk_thumbprint(key),
                "header": parsed.header,
                "claims": parsed.payload,
            }
        )
    else:
        print(proof)
    return EXIT_OK


def _cmd_proof_verify(args: argparse.Namespace) -> int:
    from tokenlib.dpop import DPoPPolicy, verify_proof

    if args.proof == "-" and args.access_token == "-":  # noqa: S105 (stdin marker)
        raise CLIError("only one of PROOF and --access-token can be read from stdin")
    proof = _read_arg(args.proof, "proof")
    access_token = _read_arg(args.access_token, "access token") if args.access_token else None
    policy = {"rfc": DPoPPolicy.rfc, "fapi2": DPoPPolicy.fapi2, "lenient": DPoPPolicy.lenient}[
        args.policy
    ]()
    try:
        result = verify_proof(
            proof,
            htm=args.htm,
            htu=args.htu,
            access_token=access_token,
            nonce=args.nonce,
            now=args.now,
            policy=policy,
            expected_jkt=args.jkt,
        )
    except TokenError as exc:
        return _report_invalid(args, exc, extra={"policy": args.policy})
    except ValueError as exc:  # e.g. an --htu that is not an absolute http(s) URL
        raise CLIError(f"cannot verify: {exc}") from None
    record = {
        "valid": True,
        "policy": args.policy,
        "jkt": result.jkt,
        "jti": result.jti,
        "iat": result.iat,
        "iat_utc": _iso(result.iat),
        "htm": result.htm,
        "htu": result.htu,
        "alg": result.alg,
        "nonce": result.nonce,
        "ath": result.ath,
    }
    if args.json:
        _print_json(record)
    else:
        print(f"valid DPoP proof ({args.policy} policy)")
        for name in ("jkt", "alg", "htm", "htu", "iat_utc", "jti", "ath", "nonce"):
            if record[name] is not None:
                print(f"  {name:<7} : {record[name]}")
    return EXIT_OK


# -- lab, inventory, report ------------------------------------------------------------------


def _cmd_lab_run(args: argparse.Namespace) -> int:
    import logging

    try:
        from tokenlib.lab.runner import check_outcomes, run_lab
    except ImportError as exc:
        raise CLIError(
            f"the lab needs the 'lab' and 'analysis' extras ({exc.name} missing)"
        ) from None
    # The lab injects Client-Cert on purpose; the RS's warning about it is expected here.
    logging.getLogger("tokenlib.integrations.asgi").setLevel(logging.ERROR)
    results = run_lab(out=args.out, seed=args.seed, redis=False if args.no_redis else None)
    mismatches = check_outcomes(results)
    if args.json:
        _print_json(
            {
                "results": json.loads(results.to_json(orient="records")),
                "out": args.out,
                "mismatches": mismatches,
                "lab_seconds": results.attrs.get("lab_seconds"),
                "redis": results.attrs.get("redis"),
            }
        )
    else:
        columns = [
            "replay_cache",
            "binding",
            "proxy_mode",
            "attack",
            "accepted",
            "status",
            "error",
            "flag",
            "latency_ms",
            "added_latency_ms",
        ]
        shown = results[[c for c in columns if c in results.columns]]
        print(shown.astype(object).where(shown.notna(), "").to_string(index=False))
        verdict = "all as expected" if not mismatches else f"{len(mismatches)} unexpected"
        print(
            f"{len(results)} scenarios, {verdict}; lab ran {results.attrs.get('lab_seconds')} s"
            + ("" if results.attrs.get("redis") else " (no shared Redis runs)"),
            file=sys.stderr,
        )
        if args.out:
            print(f"wrote {args.out}", file=sys.stderr)
        for line in mismatches:
            _stderr(f"unexpected outcome: {line}")
    return EXIT_INVALID if mismatches else EXIT_OK


def _add_inventory(sub: argparse._SubParsersAction[_Parser], wanted: bool) -> None:
    """The inventory commands live in ``tokenlib.analysis`` (pandas); import only when asked."""
    if wanted:
        try:
            from tokenlib.analysis import _inventory_cli
        except ImportError as exc:
            raise CLIError(
                f"the inventory commands need the 'analysis' extra ({exc.name} missing)"
            ) from None
        _inventory_cli.register(sub)
        return
    sub.add_parser(
        "inventory",
        help="generate, validate and summarise OAuth flow inventories (analysis extra)",
        add_help=False,
    )


def _run_report(argv: Sequence[str]) -> int:
    """Delegate every argument after ``report`` to ``tokenlib.analysis.report.main``."""
    try:
        from tokenlib.analysis import report
    except ImportError as exc:
        raise CLIError(
            f"the report command needs the 'analysis' and 'notebooks' extras ({exc.name} missing)"
        ) from None
    try:
        code = report.main(list(argv))
    except SystemExit as exc:  # its own argparse: --help or a usage error
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return int(code or 0)


# -- parser ----------------------------------------------------------------------------------


def _common() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable JSON on stdout",
    )
    return common


def _add_now(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--now",
        type=float,
        metavar="EPOCH",
        help="evaluate at this time (epoch seconds) instead of the system clock",
    )


def build_parser(argv: Sequence[str] = ()) -> _Parser:
    """The argument parser (``argv`` decides whether the inventory commands are imported)."""
    common = _common()
    parser = _Parser(
        prog=_PROG,
        description="Issue, inspect and verify bearer, mTLS-bound and DPoP-bound access tokens.",
        epilog="Exit codes: 0 ok, 1 verification failed or invalid, 2 usage or input error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # keys
    keys = sub.add_parser("keys", help="generate signing keys", parents=[common])
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    gen = keys_sub.add_parser(
        "generate",
        parents=[common],
        help="generate a private key (written 0600) and print its public JWK",
        description="Generate a private key, write it as PKCS#8 PEM with mode 0600 "
        "(atomically), and print the public JWK. Nothing secret is printed "
        "unless --show-private is given.",
    )
    gen.add_argument("--alg", choices=_GENERATABLE, default="ES256", help="default: ES256")
    gen.add_argument("--out", required=True, metavar="PATH", help="private key file (PEM)")
    gen.add_argument("--public-out", metavar="PATH", help="also write the public JWK here")
    gen.add_argument("--jwks", action="store_true", help="write --public-out as a JWK set")
    gen.add_argument("--kid", help="key id (default: the RFC 7638 thumbprint)")
    gen.add_argument("--force", action="store_true", help="replace an existing --out file")
    gen.add_argument(
        "--show-private", action="store_true", help="also print the private key PEM (secret!)"
    )
    gen.set_defaults(func=_cmd_keys_generate)

    # token
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
    _add_now(issue)
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
    inspect.add_argument("--leeway", type=int, default=0, help="clock skew allowed, seconds")
    inspect.add_argument("--cafile", help="CA bundle for an https JWKS URL")
    _add_now(inspect)
    inspect.set_defaults(func=_cmd_token_inspect, explain=True)

    # proof
    proof = sub.add_parser("proof", help="create and verify DPoP proofs", parents=[common])
    proof_sub = proof.add_subparsers(dest="proof_command", metavar="ACTION", required=True)
    create = proof_sub.add_parser(
        "create",
        parents=[common],
        help="create a DPoP proof JWT (RFC 9449 §4.2)",
    )
    create.add_argument("--key", required=True, metavar="PEM", help="the client's DPoP key")
    create.add_argument("--htm", required=True, help="HTTP method, e.g. GET")
    create.add_argument("--htu", required=True, help="target URI without query/fragment")
    create.add_argument("--access-token", metavar="TOKEN", help="adds ath (- reads stdin)")
    create.add_argument("--nonce", help="server-provided DPoP nonce")
    create.add_argument("--alg", choices=ALGORITHMS, help="default: natural alg of the key")
    create.add_argument("--jti", help="proof id (default: random)")
    _add_now(create)
    create.set_defaults(func=_cmd_proof_create)

    verify = proof_sub.add_parser(
        "verify",
        parents=[common],
        help="verify a DPoP proof (RFC 9449 §4.3) and explain a failure",
        description="Verify a DPoP proof against the request it should belong to. Exit 1 "
        "if it fails; --explain prints the values that were compared.",
    )
    verify.add_argument("proof", metavar="PROOF", help="the proof, or - to read stdin")
    verify.add_argument("--htm", required=True, help="the request's HTTP method")
    verify.add_argument("--htu", required=True, help="the request's URI")
    verify.add_argument("--access-token", metavar="TOKEN", help="check ath (- reads stdin)")
    verify.add_argument("--nonce", help="the nonce the server expects")
    verify.add_argument("--jkt", help="expected key thumbprint (the token's cnf.jkt)")
    verify.add_argument(
        "--policy", choices=("rfc", "fapi2", "lenient"), default="rfc", help="default: rfc"
    )
    verify.add_argument("--explain", action="store_true", help="show what was compared")
    _add_now(verify)
    verify.set_defaults(func=_cmd_proof_verify)

    # thumbprint
    thumb = sub.add_parser(
        "thumbprint",
        parents=[common],
        help="RFC 7638 thumbprint of a JWK/PEM key, or x5t#S256 of a certificate",
    )
    thumb.add_argument("file", metavar="FILE", help="JWK (JSON), PEM key, PEM/DER certificate, -")
    thumb.add_argument("-q", "--quiet", action="store_true", help="print only the value")
    thumb.set_defaults(func=_cmd_thumbprint)

    # lab
    lab = sub.add_parser("lab", help="the live TLS lab on loopback (lab extra)", parents=[common])
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    run = lab_sub.add_parser(
        "run",
        parents=[common],
        help="run every binding x proxy mode x attack scenario over real HTTPS",
        description="Start the lab AS, two resource servers and a reverse proxy in each "
        "mode on 127.0.0.1 with throwaway certificates, send the scenario requests and "
        "print accepted/rejected per scenario. Exit 1 if an outcome differs from the "
        "expected one.",
    )
    run.add_argument("--out", metavar="CSV", help="write the results as CSV (atomically)")
    run.add_argument("--seed", type=int, default=0, help="seed for scenario order")
    run.add_argument("--no-redis", action="store_true", help="skip the shared Redis cache runs")
    run.set_defaults(func=_cmd_lab_run)

    want_inventory = bool(argv) and argv[0] == "inventory"
    _add_inventory(sub, want_inventory)

    report = sub.add_parser(
        "report",
        help="execute the notebooks and render reports/ (analysis + notebooks extras)",
        add_help=False,
    )
    report.add_argument("rest", nargs=argparse.REMAINDER)  # main() hands these over unparsed
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list[:1] == ["report"]:
            return _run_report(args_list[1:])
        parser = build_parser(args_list)
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        handler: Handler = args.func
        return handler(args)
    except CLIError as exc:
        _stderr(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _stderr("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `tokenlib token inspect ... | head`: not an error
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
