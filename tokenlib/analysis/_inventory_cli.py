"""``tokenlib inventory ...`` subcommands: generate, import, observe, validate, summary, bundle.

``register(subparsers)`` adds them to an existing argparse parser (the ``tokenlib`` console
script); ``main(argv)`` runs them standalone (``python -m tokenlib.analysis.inventory``).
Exit codes: 0 success / valid, 1 invalid inventory, 2 usage or input error.
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
from tokenlib.analysis.provenance import PROVENANCE_FILE, synthetic_provenance

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
    sub = inv.add_subparsers(
        dest="inventory_command", metavar="{generate,import,observe,validate,summary,bundle}"
    )
    sub.required = True

    gen = sub.add_parser(
        "generate", help="write a synthetic inventory (flows, services, authorization servers)"
    )
    gen.add_argument("--profile", choices=sorted(PROFILES), default=DEFAULT_PROFILE)
    gen.add_argument("--flows", type=_n_flows, default=DEFAULT_FLOWS, help="number of flows")
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED)
    gen.add_argument("--out", type=Path, required=True, help="output directory")
    gen.add_argument("--format", choices=("csv", "parquet"), default="csv")
    gen.add_argument("--json", action="store_true", help="print what was written as JSON")
    gen.set_defaults(func=_cmd_generate)

    from tokenlib.analysis.importers import SOURCES as IMPORT_SOURCES

    imp = sub.add_parser(
        "import",
        help="build an inventory from identity-provider client registrations",
        description=(
            "Build an inventory from identity-provider exports (see data/IMPORTERS.md): "
            "writes flows.csv, services.csv, authorization_servers.csv, provenance.csv and "
            "conflicts.csv into --out. Exit 0 written, 2 bad input."
        ),
    )
    imp.add_argument("source", choices=IMPORT_SOURCES, help="what the files are")
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE", help="export JSON file(s)")
    imp.add_argument("--out", type=Path, required=True, help="output directory")
    imp.add_argument(
        "--overlay",
        type=Path,
        default=None,
        help="CSV/JSON of declared values (hops, key storage, ...)",
    )
    imp.add_argument(
        "--as-id", default=None, help="authorization-server id to use (default from the export)"
    )
    imp.add_argument("--json", action="store_true", help="machine-readable summary and findings")
    imp.set_defaults(func=_cmd_import)

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
    bun.add_argument("--json", action="store_true", help="the changed files as JSON")
    bun.set_defaults(func=_cmd_bundle)

    from tokenlib.analysis._observe_cli import add_observe_parser

    add_observe_parser(sub)
    parser: argparse.ArgumentParser = inv
    return parser


def _print(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _out_is_file(out: Path) -> bool:
    return out.suffix.lower() in (".csv", ".parquet", ".gz") or out.is_file()


def _cmd_generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if _out_is_file(out):
        sys.stderr.write(
            f"error: --out {out} must be a directory: flows.{args.format}, "
            f"services.{args.format} and authorization_servers.{args.format} are written "
            "into it\n"
        )
        return 2
    inv = generate_inventory(args.profile, args.flows, seed=args.seed)
    try:
        flows, services = write_inventory(
            inv, out, fmt=args.format, provenance=synthetic_provenance(inv.source)
        )
        prov = out / PROVENANCE_FILE
    except OSError as exc:
        sys.stderr.write(f"error: cannot write the inventory to {out}: {exc.strerror or exc}\n")
        return 2
    servers = flows.with_name(f"authorization_servers.{args.format}")
    if args.json:
        payload = {
            "source": inv.source,
            "synthetic": True,
            "n_flows": len(inv.flows),
            "n_services": len(inv.services),
            "n_authorization_servers": len(inv.authorization_servers),
            "files": {
                "flows": str(flows),
                "services": str(services),
                "authorization_servers": str(servers),
                "provenance": str(prov),
            },
        }
        _print(json.dumps(payload, indent=2))
        return 0
    _print(
        f"wrote {len(inv.flows)} flows to {flows}, {len(inv.services)} services to {services} "
        f"and {len(inv.authorization_servers)} authorization servers to {servers} "
        f"(synthetic: marked so in {prov.name})"
    )
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from tokenlib.analysis.importers import OUTPUT_FILES, import_files, write_import
    from tokenlib.analysis.provenance import summarise_provenance

    out = Path(args.out)
    if _out_is_file(out):
        sys.stderr.write(
            f"error: --out {out} must be a directory: {', '.join(OUTPUT_FILES)} are written "
            "into it\n"
        )
        return 2
    try:
        result = import_files(args.source, args.files, overlay=args.overlay, as_id=args.as_id)
    except InventoryError as exc:
        if args.json:
            payload = {"ok": False, "problems": [asdict(p) for p in exc.problems]}
            _print(json.dumps(payload, indent=2))
        else:
            sys.stderr.write(f"error: {exc}\n")
        return 2
    inv = result.inventory
    if len(inv.flows) == 0:
        skipped = sum(1 for f in result.findings if f.kind == "skipped_client")
        message = (
            f"no OAuth client flows found in {len(args.files)} {args.source} file(s) "
            f"({skipped} client(s) skipped); nothing written"
        )
        if args.json:
            payload = {"ok": False, "error": message, **result.to_dict()}
            _print(json.dumps(payload, indent=2))
        else:
            sys.stderr.write(f"error: {message}\n")
        return 2
    try:
        written = write_import(result, out)
    except OSError as exc:
        sys.stderr.write(f"error: cannot write the inventory to {out}: {exc.strerror or exc}\n")
        return 2
    if args.json:
        payload = {"ok": True, "out": str(out), **result.to_dict()}
        payload["written"] = {name: str(path) for name, path in written.items()}
        _print(json.dumps(payload, indent=2))
        return 0
    prov = summarise_provenance(inv, result.provenance)
    kinds: dict[str, int] = {}
    for f in result.findings:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    lines = [
        f"wrote {len(inv.flows)} flows ({inv.flows['client_id'].nunique()} clients), "
        f"{len(inv.services)} services and {len(inv.authorization_servers)} authorization "
        f"server(s) to {out}",
        "bindings: "
        + ", ".join(f"{k} {v}" for k, v in inv.flows["binding"].astype(str).value_counts().items()),
        f"provenance ({PROVENANCE_FILE}): "
        + ", ".join(
            f"{100 * prov.share(s):.0f}% {s}"
            for s in ("registered", "declared", "observed", "assumed")
            if prov.counts.get(s)
        ),
    ]
    if kinds:
        lines.append(
            "findings (conflicts.csv): " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        )
    if kinds.get("invalid_row"):
        lines.append(
            f"warning: {kinds['invalid_row']} row(s) failed validation and were left out; see "
            "conflicts.csv (kind invalid_row)"
        )
    if kinds.get("conflict"):
        lines.append(
            f"warning: {kinds['conflict']} conflicting value(s) between sources; see "
            "conflicts.csv (kind conflict)"
        )
    _print("\n".join(lines))
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
    from tokenlib.analysis.importers._docs import render_importers_md

    prov_frame = synthetic_provenance(inv.source)
    return {
        "flows.csv": table_bytes(inv.flows),
        "services.csv": table_bytes(inv.services),
        "authorization_servers.csv": table_bytes(inv.authorization_servers),
        "README.md": readme.encode("utf-8"),
        "datapackage.json": _docs.render_datapackage(prov, models).encode("utf-8"),
        PROVENANCE_FILE: table_bytes(prov_frame),
        "IMPORTERS.md": render_importers_md().encode("utf-8"),
    }


def _cmd_bundle(args: argparse.Namespace) -> int:
    root = args.out or project_data_dir()
    files = bundle_files(args.profile, args.flows, args.seed, data_dir=root)
    changed = [
        name
        for name, data in files.items()
        if not (root / name).is_file() or (root / name).read_bytes() != data
    ]
    if not args.check:
        for name in changed:
            atomic_write_bytes(root / name, files[name])
    if getattr(args, "json", False):
        key = "would_change" if args.check else "written"
        print(json.dumps({"data_dir": str(root), key: sorted(changed)}, indent=2))
    else:
        for name in changed:
            _print(f"would change: {root / name}" if args.check else f"wrote {root / name}")
        if not changed:
            _print(f"{root}: up to date")
    return 1 if (args.check and changed) else 0


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
