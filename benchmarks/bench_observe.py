"""``tokenlib inventory observe`` over generated Envoy JSON access logs with planted findings.

Target (issue 10): 10 GB of logs (uncompressed; stored as gzip) complete with peak memory under
2 GB and the planted discrepancies reported exactly.

The logs are generated fast: one day's block of lines (background traffic plus the planted
cases) is compressed once per day and its gzip member written ``repeats`` times (a multi-member
gzip file decompresses to the concatenation), spread over ``n_files`` files so DuckDB's two
threads can read in parallel. Every planted count is therefore known exactly: per-block count
x repeats. Background lines vary their path ids so the route normalisation does real work.

``observe`` runs in a child process; wall time and the child's peak RSS
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``, DuckDB included) are recorded.

``python -m benchmarks.bench_observe [--gb 10]`` (default 1 GB; ``--quick`` 0.2 GB) writes
``benchmarks/results/observe.json``.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks._common import machine_info, write_result

TARGET_PEAK_MB = 2048
DAYS = 7
#: background clients per kind (registered and behaving as registered)
N_GOOD = 40
LINE_KEYS = (
    "start_time",
    "method",
    "path",
    "route_name",
    "upstream_cluster",
    "response_code",
    "auth_scheme",
    "dpop_present",
    "client_cert_sha256",
    "client_id",
    "azp",
    "user_agent",
    "bytes_sent",
    "duration",
)
CERT = "5e8b0d0e6a7b4c1f9a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
#: planted presentations per day block: (client, rs, method, path, route_name, scheme, dpop,
#: cert, status, count)
PLANTED: tuple[tuple[str, str, str, str, str, str, bool, bool, int, int], ...] = (
    # registered dpop, sends Bearer: accepted on one route, refused on another
    ("spa-legacy", "orders-api", "GET", "/orders/{n}", "", "Bearer", False, False, 200, 37),
    ("spa-legacy", "orders-api", "GET", "/orders/{n}/items", "", "Bearer", False, False, 401, 11),
    ("spa-legacy", "orders-api", "GET", "/orders/{n}", "", "DPoP", True, False, 200, 50),
    # registered mtls, connects without a certificate; accepted on a named route
    ("batch-nocert", "pay-api", "POST", "/settle", "pay-settle", "Bearer", False, False, 200, 23),
    # not registered at all
    ("shadow-tool", "catalog-api", "GET", "/items/{n}", "", "Bearer", False, False, 200, 19),
    # registered, but not for this resource server
    ("dpop-client-000", "reports-api", "GET", "/reports/{n}", "", "DPoP", True, False, 200, 7),
    # token-like client id: refused, unattributed
    ("eyJhbGciOiJFUzI1NiJ9.e30.sig", "orders-api", "GET", "/x", "", "Bearer", False, False, 401, 3),
)
#: registered, never seen in the logs
DORMANT = ("dormant-svc", "catalog-api", "bearer")


@dataclass(frozen=True)
class Scenario:
    """A generated log set: files, registrations directory and the exact expected findings."""

    logs: tuple[Path, ...]
    registrations: Path
    uncompressed_bytes: int
    compressed_bytes: int
    requests: int
    expected: pd.DataFrame


def _line(
    day: int,
    i: int,
    client: str,
    rs: str,
    method: str,
    path: str,
    route: str,
    scheme: str,
    dpop: bool,
    cert: bool,
    status: int,
) -> str:
    rec = {
        "start_time": f"2026-11-{day + 1:02d}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:"
        f"{i % 60:02d}.{i % 1000:03d}Z",
        "method": method,
        "path": path,
        "route_name": route or None,
        "upstream_cluster": rs,
        "response_code": status,
        "auth_scheme": "DPoP e" if scheme == "DPoP" else scheme,
        "dpop_present": "e" if dpop else None,
        "client_cert_sha256": CERT if cert else None,
        "client_id": client,
        "azp": None,
        "user_agent": "okhttp/4.12.0 tokenlib-bench",
        "bytes_sent": 512 + i % 997,
        "duration": i % 250,
    }
    return json.dumps(rec, separators=(",", ":"))


def _background(rng: random.Random, day: int, n: int) -> list[str]:
    """Registered clients behaving as registered (DPoP, mTLS, Bearer) plus unattributed noise."""
    lines = []
    for i in range(n):
        k = rng.randrange(10)
        c = rng.randrange(N_GOOD)
        ident = rng.randrange(1, 10**9)
        if k < 4:
            args = (f"dpop-client-{c:03d}", "orders-api", "GET", f"/orders/{ident}", "", "DPoP")
            lines.append(_line(day, i, *args, True, False, 200))
        elif k < 6:
            args = (f"mtls-client-{c:03d}", "pay-api", "POST", f"/payments/{ident}", "", "Bearer")
            lines.append(_line(day, i, *args, False, True, 201))
        elif k < 9:
            args = (f"bearer-client-{c:03d}", "catalog-api", "GET", f"/items/{ident}", "", "Bearer")
            lines.append(_line(day, i, *args, False, False, 200 if k < 8 else 404))
        else:  # health checks: no token, no client id
            lines.append(
                _line(day, i, "", "catalog-api", "GET", "/healthz", "", "", False, False, 200)
            )
    return lines


def _registrations(path: Path) -> None:
    rows = ["flow_id,client_id,client_kind,resource_server,binding,key_storage"]
    n = 0
    spa_key = "webcrypto_non_extractable"
    for prefix, rs, binding, kind, key in (
        ("dpop-client", "orders-api", "dpop", "browser_spa", spa_key),
        ("mtls-client", "pay-api", "mtls", "service", "software"),
        ("bearer-client", "catalog-api", "bearer", "service", "software"),
    ):
        for c in range(N_GOOD):
            n += 1
            rows.append(f"reg-{n:04d},{prefix}-{c:03d},{kind},{rs},{binding},{key}")
    rows.append(f"reg-9001,spa-legacy,browser_spa,orders-api,dpop,{spa_key}")
    rows.append("reg-9002,batch-nocert,batch_job,pay-api,mtls,software")
    rows.append(f"reg-9003,{DORMANT[0]},service,{DORMANT[1]},{DORMANT[2]},software")
    path.mkdir(parents=True, exist_ok=True)
    (path / "flows.csv").write_text("\n".join(rows) + "\n")
    services = [
        "service_id,supports_bearer,supports_mtls,supports_dpop",
        "orders-api,true,false,true",
        "pay-api,true,true,false",
        "catalog-api,true,false,false",
        "reports-api,true,false,true",
    ]
    (path / "services.csv").write_text("\n".join(services) + "\n")


def _expected(repeats_total: int) -> pd.DataFrame:
    def planted(client: str, rs: str, *, route: str | None = None, accepted: bool = False) -> int:
        total = 0
        for p in PLANTED:
            if p[0] != client or p[1] != rs or p[5] != "Bearer" or p[7]:
                continue
            r = p[4] or f"{p[2]} {p[3].replace('{n}', '{id}')}"
            if route is not None and r != route:
                continue
            if accepted and p[8] >= 400:
                continue
            total += p[9]
        return total * repeats_total

    def all_requests(client: str, rs: str) -> int:
        return sum(p[9] for p in PLANTED if p[0] == client and p[1] == rs) * repeats_total

    rows = [
        (
            "bound_client_presented_bearer",
            "batch-nocert",
            "pay-api",
            "",
            planted("batch-nocert", "pay-api"),
            "mtls",
        ),
        (
            "bound_client_presented_bearer",
            "spa-legacy",
            "orders-api",
            "",
            planted("spa-legacy", "orders-api"),
            "dpop",
        ),
        (
            "route_accepted_bearer",
            "batch-nocert",
            "pay-api",
            "pay-settle",
            planted("batch-nocert", "pay-api", route="pay-settle", accepted=True),
            "mtls",
        ),
        (
            "route_accepted_bearer",
            "spa-legacy",
            "orders-api",
            "GET /orders/{id}",
            planted("spa-legacy", "orders-api", route="GET /orders/{id}", accepted=True),
            "dpop",
        ),
        (
            "unobserved_flow",
            DORMANT[0],
            DORMANT[1],
            "",
            0,
            DORMANT[2],
        ),
        (
            "unregistered_flow",
            "dpop-client-000",
            "reports-api",
            "",
            all_requests("dpop-client-000", "reports-api"),
            "dpop",
        ),
        (
            "unregistered_flow",
            "shadow-tool",
            "catalog-api",
            "",
            all_requests("shadow-tool", "catalog-api"),
            "",
        ),
    ]
    cols = ["kind", "client_id", "resource_server", "route", "count", "registered_binding"]
    return pd.DataFrame(rows, columns=cols)


def write_scenario(
    root: Path,
    target_bytes: int,
    *,
    block_lines: int = 200_000,
    n_files: int = 4,
    seed: int = 10,
) -> Scenario:
    """Write gzip Envoy JSON logs of about ``target_bytes`` (uncompressed) and registrations."""
    rng = random.Random(seed)
    logs_dir = root / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    blocks: list[tuple[bytes, int, int]] = []
    for day in range(DAYS):
        lines = _background(rng, day, block_lines)
        for p in PLANTED:
            client, rs, method, path, route, scheme, dpop, cert, status, count = p
            for j in range(count):
                lines.append(
                    _line(
                        day,
                        j,
                        client,
                        rs,
                        method,
                        path.replace("{n}", str(rng.randrange(1, 10**6))),
                        route,
                        scheme,
                        dpop,
                        cert,
                        status,
                    )
                )
        rng.shuffle(lines)
        raw = ("\n".join(lines) + "\n").encode()
        blocks.append((gzip.compress(raw, compresslevel=1), len(raw), len(lines)))
    per_round = sum(b[1] for b in blocks)
    rounds = max(1, math.ceil(target_bytes / per_round))
    files = [logs_dir / f"envoy-{k:02d}.json.gz" for k in range(n_files)]
    handles = [f.open("wb") for f in files]
    try:
        for r in range(rounds):
            for d, (member, _, _) in enumerate(blocks):
                handles[(r * DAYS + d) % n_files].write(member)
    finally:
        for h in handles:
            h.close()
    reg = root / "registrations"
    _registrations(reg)
    return Scenario(
        logs=tuple(files),
        registrations=reg,
        uncompressed_bytes=per_round * rounds,
        compressed_bytes=sum(f.stat().st_size for f in files),
        requests=sum(b[2] for b in blocks) * rounds,
        expected=_expected(rounds * DAYS),
    )


def findings_table(discrepancies: pd.DataFrame) -> pd.DataFrame:
    """The comparable part of a discrepancies table (detail dropped, sorted)."""
    cols = ["kind", "client_id", "resource_server", "route", "count", "registered_binding"]
    out = discrepancies.loc[:, cols].copy()
    for col in cols:
        out[col] = out[col].astype("int64") if col == "count" else out[col].astype(str)
    return out.sort_values(cols[:4]).reset_index(drop=True)


def _child(argv: list[str]) -> int:
    """Run observe (in this fresh process) and print its summary and findings as JSON."""
    from tokenlib.analysis.observe import observe, write_observed

    out, reg, *logs = argv
    start = time.perf_counter()
    result = observe(logs, format="envoy", registrations=reg)
    write_observed(result, out)
    took = time.perf_counter() - start
    payload = {"wall_s": took, **result.to_dict()}
    sys.stdout.write(json.dumps(payload) + "\n")
    return 0


def run(quick: bool = False, gb: float | None = None) -> dict[str, Any]:
    """Generate ``gb`` GB (default 1, quick 0.2) of logs, run observe, check the findings."""
    size_gb = gb if gb is not None else (0.2 if quick else 1.0)
    with tempfile.TemporaryDirectory(prefix="bench-observe-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        scen = write_scenario(root, int(size_gb * 1e9))
        gen_s = time.perf_counter() - start
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.bench_observe",
            "--child",
            str(root / "out"),
            str(scen.registrations),
            *(str(p) for p in scen.logs),
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - our own module
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"observe failed: {proc.stderr[-2000:]}")
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        payload = json.loads(proc.stdout.strip().splitlines()[-1])
        got = findings_table(pd.DataFrame(payload["findings"]))
        exact = got.equals(findings_table(scen.expected))
        if not exact:
            raise AssertionError(f"findings differ:\n{got}\nexpected:\n{scen.expected}")
        if payload["summary"]["requests"] != scen.requests:
            raise AssertionError("request count differs")
    peak_mb = rss_kb / 1024
    result = {
        "machine": machine_info(),
        "uncompressed_gb": round(scen.uncompressed_bytes / 1e9, 2),
        "gzip_gb": round(scen.compressed_bytes / 1e9, 3),
        "requests": scen.requests,
        "files": len(scen.logs),
        "generate_s": round(gen_s, 1),
        "observe_wall_s": round(wall, 1),
        "observe_inner_s": round(payload["wall_s"], 1),
        "throughput_mb_s": round(scen.uncompressed_bytes / 1e6 / wall, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "target_peak_mb": TARGET_PEAK_MB,
        "within_target": peak_mb < TARGET_PEAK_MB,
        "findings_exact": exact,
        "memory_limit": "1GB",
        "threads": 2,
    }
    write_result("observe", result)
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        raise SystemExit(_child(sys.argv[2:]))
    size = None
    if "--gb" in sys.argv:
        size = float(sys.argv[sys.argv.index("--gb") + 1])
    print(json.dumps(run(quick="--quick" in sys.argv, gb=size), indent=2))
