"""``tokenlib proof create`` and ``tokenlib proof verify``: DPoP proofs (RFC 9449 §4)."""

from __future__ import annotations

import argparse
import re
from typing import Final

from tokenlib._htu import normalize_server_url
from tokenlib.cli._input import add_now, load_key, read_arg
from tokenlib.cli._output import (
    EXIT_OK,
    CLIError,
    CLIParser,
    Subparsers,
    emit_json,
    escape,
    iso_utc,
    out,
    report_invalid,
    table,
)
from tokenlib.errors import TokenError
from tokenlib.jwk import ALGORITHMS, jwk_thumbprint

__all__ = ["STANDARD_METHODS", "check_htm", "check_htu", "register"]

#: RFC 9110 §9.3 methods and PATCH (RFC 5789): the names a lower-case ``--htm`` is a typo of.
STANDARD_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_TOKEN: Final = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # RFC 9110 §5.6.2 token


def check_htm(value: str) -> str:
    """``--htm`` as given, refusing what cannot be meant: a method is a case-sensitive
    token (RFC 9110 §9.1) and a proof's ``htm`` must equal the request method exactly
    (RFC 9449 §4.3 check 7), so ``get`` would make (or expect) a proof no server accepts."""
    if _TOKEN.match(value) is None:
        raise CLIError(f"--htm {value!r} is not an HTTP method token (RFC 9110 §9.1)")
    upper = value.upper()
    if value != upper and upper in STANDARD_METHODS:
        raise CLIError(
            f"--htm {value!r}: HTTP methods are case-sensitive (RFC 9110 §9.1) and a DPoP "
            f"proof's htm must match the request method exactly (RFC 9449 §4.3); "
            f"did you mean --htm {upper}?"
        )
    return value


def check_htu(value: str) -> str:
    """``--htu`` as its RFC 9449 §4.3 comparison form, or a usage error naming the problem
    (the same for ``create`` and ``verify``: a malformed URI is the operator's input)."""
    try:
        return normalize_server_url(value)
    except ValueError as exc:
        raise CLIError(f"--htu {value!r} is not an absolute http(s) URI: {exc}") from None


def _cmd_proof_create(args: argparse.Namespace) -> int:
    from tokenlib.dpop import create_proof

    check_htm(args.htm)
    check_htu(args.htu)
    key = load_key(args.key)
    access_token = read_arg(args.access_token, "access token") if args.access_token else None
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
        emit_json(
            {
                "proof": proof,
                "jkt": jwk_thumbprint(key),
                "header": parsed.header,
                "claims": parsed.payload,
            }
        )
    else:
        out(escape(proof))
    return EXIT_OK


def _cmd_proof_verify(args: argparse.Namespace) -> int:
    from tokenlib.dpop import DPoPPolicy, verify_proof

    if args.proof == "-" and args.access_token == "-":  # noqa: S105 (stdin marker)
        raise CLIError("only one of PROOF and --access-token can be read from stdin")
    check_htm(args.htm)
    check_htu(args.htu)
    proof = read_arg(args.proof, "proof")
    access_token = read_arg(args.access_token, "access token") if args.access_token else None
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
        return report_invalid(
            exc, as_json=args.json, explain=args.explain, extra={"policy": args.policy}
        )
    except ValueError as exc:  # an argument the checks above let through
        raise CLIError(f"cannot verify: {exc}") from None
    record = {
        "valid": True,
        "policy": args.policy,
        "jkt": result.jkt,
        "jti": result.jti,
        "iat": result.iat,
        "iat_utc": iso_utc(result.iat),
        "htm": result.htm,
        "htu": result.htu,
        "alg": result.alg,
        "nonce": result.nonce,
        "ath": result.ath,
    }
    if args.json:
        emit_json(record)
    else:
        out(f"valid DPoP proof ({escape(args.policy)} policy)")
        names = ("jkt", "alg", "htm", "htu", "iat_utc", "jti", "ath", "nonce")
        out("\n".join(table(((n, record[n]) for n in names), indent="  ")))
    return EXIT_OK


def register(sub: Subparsers[CLIParser], common: CLIParser) -> None:
    """Add ``proof create`` and ``proof verify`` to the top-level sub-commands."""
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
    add_now(create)
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
    add_now(verify)
    verify.set_defaults(func=_cmd_proof_verify)
