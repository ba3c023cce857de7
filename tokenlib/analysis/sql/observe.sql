-- tokenlib inventory observe: gateway / resource-server access logs -> observed flows and findings.
--
-- This one file is the whole aggregation. `tokenlib inventory observe` runs it in an embedded
-- DuckDB; a team whose logs live in a data lake can run the same statements where the logs are
-- (DuckDB, or any engine after small dialect changes) and hand the three result tables to
-- tokenlib as CSV. Python only sets the variables below and picks the `requests_<format>`
-- section; it never edits the SQL.
--
-- Sections are separated by lines `-- name: <section>`; run them in this order:
--   1. exactly one requests_<format> section (envoy, nginx, alb or jsonl)   -> view  requests
--   2. observations   (the only pass over the logs; groups are small)       -> table observations
--   3. log_summary, observed_flows, observed_services                         -> result sets
--   4. discrepancies  (needs a table `registered(client_id, resource_server, binding)`; create
--      it from a registrations inventory, e.g.
--      CREATE TABLE registered AS SELECT client_id, resource_server, binding
--        FROM read_csv('inv/flows.csv', all_varchar = true);
--      or empty: CREATE TABLE registered (client_id VARCHAR, resource_server VARCHAR,
--      binding VARCHAR);)
--
-- Variables (SET VARIABLE name = value):
--   logs  LIST of file paths or globs; .gz files are decompressed while streaming.
--
-- The normalised view `requests` has one row per request with exactly these columns:
--   day DATE               day of the request (UTC, from the log's timestamp); NULL if absent
--   client_id VARCHAR      the OAuth client_id (or azp) claim the gateway logged; NULL if none.
--                          A value that looks like a JWT (starts with 'eyJ' and has two dots),
--                          is longer than 256 characters or holds control characters is never
--                          kept: it is counted in
--                          client_id_refused and the row counts as unattributed.
--   auth_scheme VARCHAR    'Bearer', 'DPoP', 'none' (no Authorization header) or 'other';
--                          only the first word of the logged field is looked at.
--   auth_value_logged BOOL the logged Authorization field held more than the scheme (the token
--                          itself, or part of it): the rest is ignored and the row is counted
--                          so the operator can fix the log format. Never output.
--   dpop_header BOOL       a DPoP header was present (RFC 9449 §4.1); its value is not read.
--   client_cert BOOL       the client presented a (verified) TLS client certificate.
--   resource_server VARCHAR the RS (Envoy upstream cluster, NGINX $tokenlib_resource_server,
--                          ALB target group name, jsonl resource_server).
--   route VARCHAR          the route template: the logged route name, else
--                          'METHOD /path' with the query dropped and numeric, UUID and long hex
--                          path segments replaced by {id}.
--   status INTEGER         HTTP status returned to the client; NULL if not logged.

-- name: requests_envoy
-- Envoy JSON access log (access_log ... json_format); the keys are the ones in README
-- ("Observed usage from access logs"): start_time, method, path, route_name, upstream_cluster,
-- response_code, auth_scheme (%REQ(AUTHORIZATION):6%), dpop_present (%REQ(DPOP):1%),
-- client_cert_sha256 (%DOWNSTREAM_PEER_FINGERPRINT_256%), client_id and azp (jwt_authn
-- payload_in_metadata). Other keys in the line are not read.
CREATE OR REPLACE TEMP VIEW raw_requests AS
SELECT
    start_time AS ts,
    coalesce(nullif(nullif(client_id, '-'), ''), nullif(nullif(azp, '-'), '')) AS client_id,
    auth_scheme AS auth_field,
    nullif(nullif(dpop_present, '-'), '') IS NOT NULL AS dpop_header,
    nullif(nullif(client_cert_sha256, '-'), '') IS NOT NULL AS client_cert,
    nullif(nullif(upstream_cluster, '-'), '') AS resource_server,
    nullif(nullif(route_name, '-'), '') AS route_name,
    method,
    path,
    try_cast(response_code AS INTEGER) AS status
FROM read_json(
    getvariable('logs'),
    format = 'newline_delimited',
    columns = {
        start_time: 'VARCHAR', method: 'VARCHAR', path: 'VARCHAR', route_name: 'VARCHAR',
        upstream_cluster: 'VARCHAR', response_code: 'VARCHAR', auth_scheme: 'VARCHAR',
        dpop_present: 'VARCHAR', client_cert_sha256: 'VARCHAR', client_id: 'VARCHAR',
        azp: 'VARCHAR'
    },
    maximum_object_size = 1048576
);

-- name: requests_nginx
-- NGINX with `log_format tokenlib escape=json '{...}'` (exact line in README): keys time,
-- client_id, resource_server, method, uri, route, status, auth_scheme, dpop ("1"/"0"),
-- client_cert ($ssl_client_verify: SUCCESS when a verified certificate was presented).
CREATE OR REPLACE TEMP VIEW raw_requests AS
SELECT
    "time" AS ts,
    nullif(nullif(client_id, '-'), '') AS client_id,
    auth_scheme AS auth_field,
    coalesce(dpop, '') IN ('1', 'true') AS dpop_header,
    coalesce(upper(client_cert), '') = 'SUCCESS' AS client_cert,
    nullif(nullif(resource_server, '-'), '') AS resource_server,
    nullif(nullif(route, '-'), '') AS route_name,
    method,
    uri AS path,
    try_cast(status AS INTEGER) AS status
FROM read_json(
    getvariable('logs'),
    format = 'newline_delimited',
    columns = {
        "time": 'VARCHAR', client_id: 'VARCHAR', resource_server: 'VARCHAR', method: 'VARCHAR',
        uri: 'VARCHAR', route: 'VARCHAR', status: 'VARCHAR', auth_scheme: 'VARCHAR',
        dpop: 'VARCHAR', client_cert: 'VARCHAR'
    },
    maximum_object_size = 1048576
);

-- name: requests_jsonl
-- tokenlib's plain JSON-lines form (one object per line): time (ISO 8601), client_id,
-- resource_server, route (optional), method, path, status, auth_scheme ("Bearer"/"DPoP"/""),
-- dpop (boolean), client_cert (boolean). Other keys (including any "authorization") are not
-- read.
CREATE OR REPLACE TEMP VIEW raw_requests AS
SELECT
    "time" AS ts,
    nullif(client_id, '') AS client_id,
    auth_scheme AS auth_field,
    coalesce(dpop, false) AS dpop_header,
    coalesce(client_cert, false) AS client_cert,
    nullif(resource_server, '') AS resource_server,
    nullif(route, '') AS route_name,
    method,
    path,
    status
FROM read_json(
    getvariable('logs'),
    format = 'newline_delimited',
    columns = {
        "time": 'VARCHAR', client_id: 'VARCHAR', resource_server: 'VARCHAR',
        route: 'VARCHAR', method: 'VARCHAR', path: 'VARCHAR', status: 'INTEGER',
        auth_scheme: 'VARCHAR', dpop: 'BOOLEAN', client_cert: 'BOOLEAN'
    },
    maximum_object_size = 1048576
);

-- name: requests_alb
-- AWS Application Load Balancer access logs (the documented space-separated format; fields
-- after target_group_arn are not needed). ALB logs carry neither the Authorization scheme nor
-- a client id, and client certificates are only in the separate connection logs: every ALB
-- row is unattributed (client_id NULL, auth_scheme 'unknown'); what remains is request volume
-- per target group and route.
CREATE OR REPLACE TEMP VIEW raw_requests AS
WITH parsed AS (
    SELECT regexp_extract(
        line,
        '^(\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) "([^"]*)" "([^"]*)" (\S+) (\S+) (\S+)',
        ['type', 'time', 'elb', 'client', 'target', 'request_processing_time',
         'target_processing_time', 'response_processing_time', 'elb_status_code',
         'target_status_code', 'received_bytes', 'sent_bytes', 'request', 'user_agent',
         'ssl_cipher', 'ssl_protocol', 'target_group_arn']
    ) AS f
    FROM read_csv(
        getvariable('logs'), columns = {'line': 'VARCHAR'}, header = false,
        delim = chr(1), quote = '', escape = '', max_line_size = 1048576
    )
)
SELECT
    f.time AS ts,
    CAST(NULL AS VARCHAR) AS client_id,
    'unknown' AS auth_field,
    false AS dpop_header,
    false AS client_cert,
    nullif(split_part(f.target_group_arn, '/', 2), '') AS resource_server,
    CAST(NULL AS VARCHAR) AS route_name,
    split_part(f.request, ' ', 1) AS method,
    -- "GET https://host:443/p?q HTTP/1.1": the path starts at the first '/' after '://'
    regexp_extract(split_part(f.request, ' ', 2), '^[a-zA-Z]+://[^/]*(/[^?]*)?', 1) AS path,
    try_cast(f.elb_status_code AS INTEGER) AS status
FROM parsed;

-- name: requests
-- Normalisation shared by every format (see the column list at the top).
CREATE OR REPLACE TEMP VIEW requests AS
WITH r AS (
    SELECT
        *,
        lower(split_part(trim(coalesce(auth_field, '')), ' ', 1)) AS scheme_word
    FROM raw_requests
)
SELECT
    try_cast(left(ts, 10) AS DATE) AS day,
    CASE
        WHEN client_id IS NULL THEN NULL
        WHEN length(client_id) > 256 THEN NULL
        WHEN client_id LIKE 'eyJ%.%.%' THEN NULL
        WHEN regexp_matches(client_id, '[\x00-\x1f\x7f]') THEN NULL
        ELSE client_id
    END AS client_id,
    client_id IS NOT NULL
        AND (length(client_id) > 256 OR client_id LIKE 'eyJ%.%.%'
             OR regexp_matches(client_id, '[\x00-\x1f\x7f]')) AS client_id_refused,
    CASE
        WHEN auth_field = 'unknown' THEN 'unknown'
        WHEN scheme_word IN ('', '-') THEN 'none'
        -- %REQ(AUTHORIZATION):6% keeps "Bearer" / "DPoP x"; a shorter cut still names it
        WHEN scheme_word = 'bearer' OR (length(scheme_word) >= 4 AND 'bearer' LIKE scheme_word || '%')
            THEN 'Bearer'
        WHEN scheme_word = 'dpop' THEN 'DPoP'
        ELSE 'other'
    END AS auth_scheme,
    -- more than "scheme" plus one character of the credential was logged
    length(trim(coalesce(auth_field, ''))) > length(scheme_word) + 2 AS auth_value_logged,
    dpop_header,
    client_cert,
    resource_server,
    coalesce(
        route_name,
        CASE WHEN path IS NULL THEN NULL ELSE
            coalesce(nullif(method, ''), '-') || ' ' ||
            regexp_replace(
                regexp_replace(
                    split_part(path, '?', 1),
                    '/([0-9]+|[0-9a-fA-F]{16,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(/|$)',
                    '/{id}\2', 'g'),
                '/([0-9]+|[0-9a-fA-F]{16,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(/|$)',
                '/{id}\2', 'g')
        END
    ) AS route,
    status
FROM r;

-- name: observations
-- The one pass over the logs: request counts per day, client, RS, route and presentation.
CREATE OR REPLACE TEMP TABLE observations AS
SELECT
    day,
    client_id,
    resource_server,
    coalesce(route, '') AS route,
    auth_scheme,
    dpop_header,
    client_cert,
    status IS NOT NULL AND status BETWEEN 100 AND 399 AS accepted,
    status IS NOT NULL AS status_known,
    client_id_refused,
    auth_value_logged,
    count(*) AS requests
FROM requests
GROUP BY ALL;

-- name: log_summary
-- One row: what was read and what was refused. days = distinct request days in the logs (the
-- denominator of requests_per_day).
SELECT
    coalesce(sum(requests), 0)::BIGINT AS requests,
    count(DISTINCT day)::BIGINT AS days,
    min(day) AS first_day,
    max(day) AS last_day,
    coalesce(sum(requests) FILTER (WHERE client_id IS NULL), 0)::BIGINT AS unattributed,
    coalesce(sum(requests) FILTER (WHERE resource_server IS NULL), 0)::BIGINT AS no_resource_server,
    coalesce(sum(requests) FILTER (WHERE client_id_refused), 0)::BIGINT AS client_id_refused,
    coalesce(sum(requests) FILTER (WHERE auth_value_logged), 0)::BIGINT AS auth_value_logged,
    coalesce(sum(requests) FILTER (WHERE day IS NULL), 0)::BIGINT AS no_timestamp
FROM observations;

-- name: observed_flows
-- One row per (client_id, resource_server) seen in the logs. requests_per_day = requests /
-- distinct days in the whole log (not per flow), rounded up to at least 1. observed binding:
-- dpop when every request used the DPoP scheme with a DPoP header; mtls when every request
-- presented a client certificate and no DPoP (RFC 8705 tokens keep the Bearer scheme); bearer
-- otherwise (any unbound presentation makes the flow bearer in practice).
-- binding_enforced: false when the RS accepted (status < 400) an unbound presentation of this
-- flow; NULL (unknown) otherwise.
WITH totals AS (SELECT greatest(count(DISTINCT day), 1) AS days FROM observations),
per_flow AS (
    SELECT
        client_id,
        resource_server,
        sum(requests) AS requests,
        coalesce(sum(requests) FILTER (WHERE auth_scheme = 'DPoP' AND dpop_header), 0) AS dpop,
        coalesce(sum(requests) FILTER (WHERE auth_scheme = 'Bearer'), 0) AS bearer_scheme,
        coalesce(sum(requests) FILTER (WHERE client_cert AND auth_scheme <> 'DPoP'), 0) AS cert,
        coalesce(sum(requests) FILTER (
            WHERE auth_scheme NOT IN ('DPoP') AND NOT client_cert), 0) AS unbound,
        coalesce(sum(requests) FILTER (
            WHERE auth_scheme NOT IN ('DPoP') AND NOT client_cert AND accepted), 0)
            AS unbound_accepted,
        count(DISTINCT route) AS routes
    FROM observations
    WHERE client_id IS NOT NULL AND resource_server IS NOT NULL
    GROUP BY client_id, resource_server
)
SELECT
    client_id,
    resource_server,
    requests::BIGINT AS requests,
    greatest(ceil(requests / (SELECT days FROM totals)), 1)::BIGINT AS requests_per_day,
    CASE
        WHEN dpop = requests THEN 'dpop'
        WHEN cert = requests THEN 'mtls'
        ELSE 'bearer'
    END AS binding,
    CASE WHEN unbound_accepted > 0 THEN false ELSE NULL END AS binding_enforced,
    dpop::BIGINT AS dpop_requests,
    bearer_scheme::BIGINT AS bearer_requests,
    cert::BIGINT AS cert_requests,
    unbound_accepted::BIGINT AS unbound_accepted,
    routes::BIGINT AS routes
FROM per_flow
ORDER BY client_id, resource_server;

-- name: observed_services
-- One row per resource server: which presentations it accepted (status < 400).
SELECT
    resource_server AS service_id,
    coalesce(bool_or(accepted AND auth_scheme = 'Bearer' AND NOT client_cert), false)
        AS supports_bearer,
    coalesce(bool_or(accepted AND client_cert AND auth_scheme = 'Bearer'), false)
        AS supports_mtls,
    coalesce(bool_or(accepted AND auth_scheme = 'DPoP' AND dpop_header), false)
        AS supports_dpop,
    sum(requests)::BIGINT AS requests
FROM observations
WHERE resource_server IS NOT NULL
GROUP BY resource_server
ORDER BY resource_server;

-- name: discrepancies
-- One row per finding (kind, client_id, resource_server, route, count, registered_binding,
-- detail). A client counts as registered bound with binding B for an RS when its registered
-- flow to that RS has B, or (no flow to that RS) when any of its registered flows has B
-- (dpop before mtls): IdPs register binding per client (RFC 9449 §5.2
-- dpop_bound_access_tokens, RFC 8705 §3.4 tls_client_certificate_bound_access_tokens).
--   bound_client_presented_bearer  registered dpop but sent the Bearer scheme, or registered
--                                  mtls but sent no client certificate (count = requests)
--   route_accepted_bearer          one row per route that answered < 400 to such an unbound
--                                  presentation (count = accepted requests)
--   unregistered_flow              (client_id, resource_server) in the logs, not registered
--   unobserved_flow                registered, never seen in the logs (count = 0)
WITH reg AS (
    SELECT DISTINCT trim(client_id) AS client_id, trim(resource_server) AS resource_server,
        lower(trim(binding)) AS binding
    FROM registered
),
reg_client AS (
    SELECT client_id,
        CASE WHEN bool_or(binding = 'dpop') THEN 'dpop'
             WHEN bool_or(binding = 'mtls') THEN 'mtls' ELSE 'bearer' END AS binding
    FROM reg GROUP BY client_id
),
reg_flow AS (
    SELECT client_id, resource_server,
        CASE WHEN bool_or(binding = 'dpop') THEN 'dpop'
             WHEN bool_or(binding = 'mtls') THEN 'mtls' ELSE 'bearer' END AS binding
    FROM reg GROUP BY client_id, resource_server
),
obs AS (
    SELECT o.*, coalesce(f.binding, c.binding) AS registered_binding,
        f.client_id IS NOT NULL AS flow_registered
    FROM observations o
    LEFT JOIN reg_flow f ON f.client_id = o.client_id AND f.resource_server = o.resource_server
    LEFT JOIN reg_client c ON c.client_id = o.client_id
    WHERE o.client_id IS NOT NULL AND o.resource_server IS NOT NULL
),
unbound AS (
    SELECT * FROM obs
    WHERE (registered_binding = 'dpop' AND auth_scheme = 'Bearer')
       OR (registered_binding = 'mtls' AND auth_scheme IN ('Bearer', 'none', 'other')
           AND NOT client_cert)
),
findings AS (
    SELECT 'bound_client_presented_bearer' AS kind, client_id, resource_server, '' AS route,
        sum(requests)::BIGINT AS count, any_value(registered_binding) AS registered_binding,
        CASE any_value(registered_binding)
            WHEN 'dpop' THEN 'registered dpop; requests with the Bearer scheme: '
            ELSE 'registered mtls; requests without a client certificate: '
        END || sum(requests)::VARCHAR
            || ' (of them accepted: ' || coalesce(sum(requests) FILTER (WHERE accepted), 0)::VARCHAR
            || ')' AS detail
    FROM unbound GROUP BY client_id, resource_server
    UNION ALL
    SELECT 'route_accepted_bearer', client_id, resource_server, route,
        sum(requests)::BIGINT, any_value(registered_binding),
        'route answered < 400 to an unbound presentation from a client registered '
            || any_value(registered_binding)
    FROM unbound WHERE accepted GROUP BY client_id, resource_server, route
    UNION ALL
    SELECT 'unregistered_flow', client_id, resource_server, '', sum(requests)::BIGINT,
        coalesce(any_value(registered_binding), ''),
        CASE WHEN any_value(registered_binding) IS NULL
            THEN 'client not in the registrations'
            ELSE 'client registered, but not for this resource server' END
    FROM obs WHERE NOT flow_registered GROUP BY client_id, resource_server
    UNION ALL
    SELECT 'unobserved_flow', f.client_id, f.resource_server, '', 0, f.binding,
        'registered, no request in the logs'
    FROM reg_flow f
    WHERE NOT EXISTS (
        SELECT 1 FROM observations o
        WHERE o.client_id = f.client_id AND o.resource_server = f.resource_server
    )
)
SELECT kind, client_id, resource_server, route, count, registered_binding, detail
FROM findings
ORDER BY kind, client_id, resource_server, route;
