#!/usr/bin/env bash
# Executes deploy/postgres/init.sql against a throwaway local PostgreSQL cluster and
# checks what it promises: idempotence, password (re)application, the
# require_real_passwords guard, and per-service isolation (each role creates only in
# its own schema, reads nobody else's, cannot touch `public` or create schemas).
#
# The cluster listens on a unix socket in a private temporary directory only
# (listen_addresses=''), never on TCP, and is stopped and deleted on exit.
#
# Exit status: 0 = all checks passed, 1 = a check failed, 77 = skipped (no local
# PostgreSQL server binaries, or running as root without a `postgres` user).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
init_sql="$here/init.sql"

log() { printf 'check-init-sql: %s\n' "$*"; }

# --- locate server binaries ----------------------------------------------------
bindir=""
if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    bindir="$(pg_config --bindir)"
fi
if [[ -z "$bindir" ]]; then
    shopt -s nullglob
    candidates=(/usr/lib/postgresql/*/bin)
    shopt -u nullglob
    if [[ ${#candidates[@]} -gt 0 ]]; then
        while read -r d; do
            if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then bindir="$d"; break; fi
        done < <(printf '%s\n' "${candidates[@]}" | sort -V -r)
    fi
fi
if [[ -z "$bindir" ]] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    bindir="$(dirname "$(command -v initdb)")"
fi
if [[ -z "$bindir" ]]; then
    log "SKIP: no PostgreSQL server binaries (initdb/pg_ctl) found"
    exit 77
fi
psql_bin="$bindir/psql"
[[ -x "$psql_bin" ]] || psql_bin="$(command -v psql || true)"
if [[ -z "$psql_bin" ]]; then
    log "SKIP: no psql client found"
    exit 77
fi

as_pg=()
if [[ "$(id -u)" == 0 ]]; then
    if ! id postgres >/dev/null 2>&1; then
        log "SKIP: running as root and there is no 'postgres' user to run the server as"
        exit 77
    fi
    as_pg=(runuser -u postgres --)
fi

# --- throwaway cluster ---------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/mkt-init-sql.XXXXXX")"
started=0
cleanup() {
    if [[ "$started" == 1 ]]; then
        (cd "$work" && "${as_pg[@]}" "$bindir/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1) || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cp "$init_sql" "$work/init.sql"
if [[ ${#as_pg[@]} -gt 0 ]]; then chown -R postgres: "$work"; fi
chmod 700 "$work"
cd "$work"

"${as_pg[@]}" "$bindir/initdb" -D "$work/data" -U postgres -E UTF8 --no-locale -N >"$work/initdb.log" 2>&1 \
    || { cat "$work/initdb.log"; log "FAIL: initdb"; exit 1; }
# Superuser by peer-less trust on the private socket; service roles must present
# their password, so the passwords init.sql sets are really checked.
cat >"$work/data/pg_hba.conf" <<'EOF'
local all postgres trust
local all all scram-sha-256
EOF
port=54329
"${as_pg[@]}" "$bindir/pg_ctl" -D "$work/data" -w -t 60 -l "$work/server.log" \
    -o "-c listen_addresses='' -k $work -p $port -c fsync=off" start >/dev/null \
    || { cat "$work/server.log"; log "FAIL: server did not start"; exit 1; }
started=1

failures=0
passes=0
# Passing checks are listed with VALIDATE_VERBOSE=1 (as in deploy/validate.sh).
pass() { passes=$((passes + 1)); if [[ -n "${VALIDATE_VERBOSE:-}" ]]; then log "ok   $*"; fi; }
fail() { log "FAIL $*"; failures=$((failures + 1)); }

# psql as a given role (password via PGPASSWORD for the service roles).
run_psql() { # role password db args...
    local role="$1" pw="$2" db="$3"; shift 3
    "${as_pg[@]}" env PGPASSWORD="$pw" "$psql_bin" -X -q -A -t -h "$work" -p "$port" \
        -U "$role" -d "$db" -v ON_ERROR_STOP=1 "$@"
}
admin() { run_psql postgres "" postgres "$@"; }

services=(ingestion segmentation campaign webhook cdp_analytics)

# 1. dev defaults, run the way postgres' docker-entrypoint does it: POSTGRES_DB has
#    already created `marketing` and the script is run connected to it.
admin -c "CREATE DATABASE marketing" >/dev/null
if run_psql postgres "" marketing -f "$work/init.sql" >"$work/run1.log" 2>&1; then pass "init.sql runs with dev-default passwords (docker-entrypoint style)"
else cat "$work/run1.log"; fail "init.sql with dev-default passwords"; fi

for r in "${services[@]}"; do
    if out="$(run_psql "$r" "$r-dev" marketing -c 'SHOW search_path' 2>&1)" && [[ "$out" == "$r" ]]; then
        pass "$r logs in with its dev password; search_path = $r"
    else fail "$r login/search_path: $out"; fi
done

# 2. guard: require_real_passwords without the passwords must fail
if admin -v require_real_passwords=1 -f "$work/init.sql" >"$work/run2.log" 2>&1; then
    fail "require_real_passwords=1 without passwords should fail"
elif grep -q "require_real_passwords is set but ingestion_password is missing" "$work/run2.log"; then
    pass "require_real_passwords=1 rejects missing passwords"
else cat "$work/run2.log"; fail "require_real_passwords failed for the wrong reason"; fi

# 3. re-run with real passwords: idempotent, and the passwords rotate
pw_args=(-v require_real_passwords=1)
for r in "${services[@]}"; do pw_args+=(-v "${r}_password=${r}-s3cr3t'\"pw"); done
if admin "${pw_args[@]}" -f "$work/init.sql" >"$work/run3.log" 2>&1; then pass "init.sql re-runs (idempotent) with real passwords"
else cat "$work/run3.log"; fail "init.sql re-run with real passwords"; fi
for r in "${services[@]}"; do
    if run_psql "$r" "${r}-s3cr3t'\"pw" marketing -c 'SELECT 1' >/dev/null 2>&1; then pass "$r password rotated"
    else fail "$r cannot log in with the rotated password"; fi
    if run_psql "$r" "$r-dev" marketing -c 'SELECT 1' >/dev/null 2>&1; then fail "$r still accepts the dev password"; fi
done

# 4. isolation
for r in "${services[@]}"; do
    pw="${r}-s3cr3t'\"pw"
    run_psql "$r" "$pw" marketing -c "CREATE TABLE probe_$r (id int); INSERT INTO probe_$r VALUES (1)" >/dev/null 2>&1 || true
    if [[ "$(run_psql postgres "" marketing -c "SELECT to_regclass('$r.probe_$r') IS NOT NULL")" == "t" ]]; then
        pass "$r creates unqualified tables in its own schema"
    else fail "$r: unqualified CREATE TABLE did not land in schema $r"; fi
    if run_psql "$r" "$pw" marketing -c "CREATE TABLE public.probe_$r (id int)" >/dev/null 2>&1; then
        fail "$r can create in public"
    else pass "$r cannot create in public"; fi
    if run_psql "$r" "$pw" marketing -c "CREATE SCHEMA probe_$r" >/dev/null 2>&1; then
        fail "$r can create schemas"
    else pass "$r cannot create schemas"; fi
done
before=$failures
for r in "${services[@]}"; do
    pw="${r}-s3cr3t'\"pw"
    for o in "${services[@]}"; do
        [[ "$o" == "$r" ]] && continue
        if run_psql "$r" "$pw" marketing -c "SELECT * FROM $o.probe_$o" >/dev/null 2>&1; then
            fail "$r can read $o.probe_$o"
        fi
        if run_psql "$r" "$pw" marketing -c "CREATE TABLE $o.intruder_$r (id int)" >/dev/null 2>&1; then
            fail "$r can create in schema $o"
        fi
    done
done
[[ "$failures" == "$before" ]] && pass "no role can read or create in another service's schema"

# 5. attributes
bad="$(run_psql postgres "" marketing -c "SELECT string_agg(rolname, ',') FROM pg_roles
    WHERE rolname IN ('ingestion','segmentation','campaign','webhook','cdp_analytics')
      AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls OR NOT rolcanlogin)")"
if [[ -z "$bad" ]]; then pass "service roles are plain LOGIN roles"; else fail "roles with extra attributes: $bad"; fi
owners="$(run_psql postgres "" marketing -c "SELECT count(*) FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
    WHERE n.nspname IN ('ingestion','segmentation','campaign','webhook','cdp_analytics') AND r.rolname = n.nspname")"
if [[ "$owners" == 5 ]]; then pass "each schema is owned by its role"; else fail "schema ownership ($owners/5)"; fi

# 6. managed-service style: an admin that is not a superuser (CREATEDB CREATEROLE only)
admin -c "DROP DATABASE marketing WITH (FORCE)" >/dev/null
for r in "${services[@]}"; do admin -c "DROP ROLE $r" >/dev/null; done
admin -c "CREATE ROLE dbadmin LOGIN CREATEDB CREATEROLE PASSWORD 'dbadmin-pw'" >/dev/null
if run_psql dbadmin dbadmin-pw postgres "${pw_args[@]}" -f "$work/init.sql" >"$work/run6.log" 2>&1; then
    pass "init.sql runs as a non-superuser CREATEDB/CREATEROLE admin"
    if [[ "$(run_psql ingestion "ingestion-s3cr3t'\"pw" marketing -c "CREATE TABLE t (id int); SELECT to_regclass('ingestion.t') IS NOT NULL")" == "t" ]]; then
        pass "ingestion works after a non-superuser provisioning"
    else fail "ingestion cannot create in its schema after a non-superuser provisioning"; fi
else cat "$work/run6.log"; fail "init.sql as a non-superuser admin"; fi

if [[ "$failures" != 0 ]]; then
    log "$failures check(s) failed (server log: see above)"
    exit 1
fi
log "all $passes checks passed"
