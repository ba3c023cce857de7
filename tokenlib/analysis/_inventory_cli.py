"""``tokenlib inventory ...`` subcommands: generate, validate, summary, bundle.

``register(subparsers)`` adds them to an existing argparse parser (the ``tokenlib`` console
script); ``main(argv)`` runs them standalone (``python -m tokenlib.analysis.inventory``).
Exit codes: 0 success / valid, 1 invalid inventory, 2 usage or file error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tokenlib.analysis import _docs
from tokenlib.analysis import schema as S
from tokenlib.analysis._synth import MAX_FLOWS, MIN_FLOWS
from tokenlib.analysis.inventory import (
    DEFAULT_FLOWS,
    DEFAULT_PROFILE,
    DEFAULT_SEED,
    PROFILES,
    InventoryError,
    atomic_write_bytes,
    generate_inventory,
    load_inventory,
    provenance,
    summary,
    table_bytes,
    write_inventory,
)

__all__ = ["bundle_files", "main", "register"]


def _n_flows(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not MIN_FLOWS <= value <= MAX_FLOWS:
        raise argparse.ArgumentTypeError(f"must be between {MIN_FLOWS} and {MAX_FLOWS}")
    return value


def project_data_dir() -> Path:
    """``data/`` next to the package in a source checkout (may not exist yet)."""
    return Path(__file__).resolve().parents[2] / "data"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``inventory`` command (with its subcommands) to ``subparsers``."""
    inv = subparsers.add_parser(
        "inventory",
        help="generate, validate and summarise OAuth flow inventories",
        description="Generate, validate and summarise OAuth flow inventories (see data/README.md).",
    )
    sub = inv.add_subparsers(dest="inventory_command", metavar="{generate,validate,summary,bundle}")
    sub.required = True

    gen = sub.add_parser(
        "generate", help="write a synthetic inventory (flows, services, authorization servers)"
    )
    gen.add_argument("--profile", choices=sorted(PROFILES), default=DEFAULT_PROFILE)
    gen.add_argument("--flows", type=_n_flows, default=DEFAULT_FLOWS, help="number of flows")
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED)
    gen.add_argument("--out", type=Path, required=True, help="output directory")
    gen.add_argument("--format", choices=("csv", "parquet"), default="csv")
    gen.set_defaults(func=_cmd_generate)

    val = sub.add_parser("validate", help="validate an inventory file (exit 0 valid, 1 invalid)")
    val.add_argument("file", help="flows file (.csv, .csv.gz, .parquet) or 'default'")
    val.add_argument("--services", type=Path, default=None, help="services file")
    val.add_argument("--json", action="store_true", help="machine-readable report")
    val.set_defaults(func=_cmd_validate)

    summ = sub.add_parser("summary", help="counts by client kind, client path and binding")
    summ.add_argument("file", help="flows file or 'default'")
    summ.add_argument("--services", type=Path, default=None)
    summ.add_argument("--json", action="store_true")
    summ.set_defaults(func=_cmd_summary)

    bun = sub.add_parser("bundle", help="regenerate the bundled data/ files and docs")
    bun.add_argument("--profile", choices=sorted(PROFILES), default=DEFAULT_PROFILE)
    bun.add_argument("--flows", type=_n_flows, default=DEFAULT_FLOWS)
    bun.add_argument("--seed", type=int, default=DEFAULT_SEED)
    bun.add_argument("--out", type=Path, default=None, help="data directory (default: data/)")
    bun.add_argument("--check", action="store_true", help="exit 1 if any file would change")
    bun.set_defaults(func=_cmd_bundle)
    parser: argparse.ArgumentParser = inv
    return parser


def _print(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _cmd_generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() in (".csv", ".parquet", ".gz") or out.is_file():
        sys.stderr.write(
            f"error: --out {out} must be a directory: flows.{args.format}, "
            f"services.{args.format} and authorization_servers.{args.format} are written "
            "into it\n"
        )
        return 2
    inv = generate_inventory(args.profile, args.flows, seed=args.seed)
    try:
        flows, services = write_inventory(inv, out, fmt=args.format)
    except OSError as exc:
        sys.stderr.write(f"error: cannot write the inventory to {out}: {exc.strerror or exc}\n")
        return 2
    servers = flows.with_name(f"authorization_servers.{args.format}")
    _print(
        f"wrote {len(inv.flows)} flows to {flows}, {len(inv.services)} services to {services} "
        f"and {len(inv.authorization_servers)} authorization servers to {servers}"
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        inv = load_inventory(args.file, services=args.services, on_error="drop")
    except InventoryError as exc:
        if args.json:
            payload = {"ok": False, "problems": [asdict(p) for p in exc.problems]}
            _print(json.dumps(payload, indent=2))
        else:
            _print(str(exc))
        return 1
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    report = inv.report
    assert report is not None
    if args.json:
        _print(json.dumps(report.to_dict(), indent=2))
    else:
        status = "valid" if report.ok else "INVALID"
        _print(f"{status}: {report}")
    return 0 if report.ok else 1


def _cmd_summary(args: argparse.Namespace) -> int:
    try:
        inv = load_inventory(args.file, services=args.services)
    except InventoryError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    data = summary(inv)
    if args.json:
        _print(json.dumps(data, indent=2))
        return 0
    lines = [
        f"{data['source']}: {data['n_flows']} flows, {data['n_clients']} clients, "
        f"{data['n_services']} services"
    ]
    for key, title in (
        ("by_client_kind", "client kind"),
        ("by_client_path", "client path"),
        ("by_binding", "binding"),
        ("by_environment", "environment"),
        ("by_authorization_server", "authorization server"),
    ):
        lines.append(f"{title}:")
        total = max(data["n_flows"], 1)
        lines.extend(
            f"  {name:<20} {count:>9}  {100 * count / total:5.1f}%"
            for name, count in data[key].items()
        )
    lines.append(
        f"binding enforced (non-bearer flows): {100 * data['binding_enforced_share']:.1f}%"
    )
    lines.append(f"paths with a TLS-terminating hop: {100 * data['terminating_path_share']:.1f}%")
    _print("\n".join(lines))
    return 0


def bundle_files(
    profile: str = DEFAULT_PROFILE,
    n_flows: int = DEFAULT_FLOWS,
    seed: int = DEFAULT_SEED,
    *,
    data_dir: Path | None = None,
) -> dict[str, bytes]:
    """Contents of the generated files under ``data/`` (relative path -> bytes)."""
    from tokenlib.analysis.reference import load_reference

    root = data_dir or project_data_dir()
    inv = generate_inventory(profile, n_flows, seed=seed)
    prov = provenance(profile, n_flows, seed)
    reference = {}
    for name in S.REFERENCE_TABLES:
        if (root / "reference" / f"{name}.csv").is_file():
            reference[name] = load_reference(name, path=root / "reference" / f"{name}.csv")
    models = {
        name: _docs.read_header(root / "reference" / f"{name}.csv")
        for name in S.MODEL_REFERENCE_TABLES
        if (root / "reference" / f"{name}.csv").is_file()
    }
    readme = _docs.render_readme(
        prov,
        len(inv.flows),
        len(inv.services),
        reference,
        n_authorization_servers=len(inv.authorization_servers),
    )
    return {
        "flows.csv": table_bytes(inv.flows),
        "services.csv": table_bytes(inv.services),
        "authorization_servers.csv": table_bytes(inv.authorization_servers),
        "README.md": readme.encode("utf-8"),
        "datapackage.json": _docs.render_datapackage(prov, models).encode("utf-8"),
    }


def _cmd_bundle(args: argparse.Namespace) -> int:
    root = args.out or project_data_dir()
    files = bundle_files(args.profile, args.flows, args.seed, data_dir=root)
    changed = [
        name
        for name, data in files.items()
        if not (root / name).is_file() or (root / name).read_bytes() != data
    ]
    if args.check:
        for name in changed:
            _print(f"would change: {root / name}")
        if not changed:
            _print(f"{root}: up to date")
        return 1 if changed else 0
    for name in changed:
        atomic_write_bytes(root / name, files[name])
        _print(f"wrote {root / name}")
    if not changed:
        _print(f"{root}: up to date")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m tokenlib.analysis.inventory <command> ...``."""
    parser = argparse.ArgumentParser(prog="python -m tokenlib.analysis.inventory")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] != "inventory":
        args_list = ["inventory", *args_list]
    args = parser.parse_args(args_list)
    return int(args.func(args))
