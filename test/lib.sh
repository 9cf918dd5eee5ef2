#!/usr/bin/env bash
# test/lib.sh — shared setup for the README's two commands (demo and tests).
#
# Idempotent: installs missing Debian and npm packages, builds and installs the
# extension, and starts a throwaway PostgreSQL 15 cluster with pg_billops
# preloaded.  Sourced by test/demo.sh, test/run-tests.sh and test/bench/run.sh.
set -euo pipefail

BILLOPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${BILLOPS_SHARED:-$BILLOPS_ROOT/../shared}"
PGBIN=/usr/lib/postgresql/15/bin

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

DEB_PACKAGES=(build-essential postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev
              libssl-dev zlib1g-dev postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
              nodejs npm ca-certificates openssl
              postgresql-15-cron    # pg_cron: the README's scheduling recipe runs with the real thing
              poppler-utils         # pdftotext: an independent reader of the PDFs pg_billops writes
              clang libclang-rt-14-dev  # libFuzzer and the sanitizers for the Parquet reader's fuzz harness
              libsnappy-dev libzstd-dev liblz4-dev  # Parquet's codecs (zlib serves GZIP)
              libisal-dev)  # ISA-L: the gzip CSV stream's inflater (src/gunzip.c)

install_deps() {
    local missing=()
    for p in "${DEB_PACKAGES[@]}"; do
        # a preinstalled Node (e.g. from NodeSource) satisfies nodejs/npm
        if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
        if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    # explicit checks: callers may run with `set +e`, and a half-done install must stop here
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -q || { echo "apt-get update failed" >&2; return 1; }
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
            { echo "could not install: ${missing[*]}" >&2; return 1; }
    fi
    local modules="$BILLOPS_ROOT/test/emulators/node_modules"
    if [ ! -d "$modules/@smithy/signature-v4" ] || [ "$BILLOPS_ROOT/test/emulators/package-lock.json" -nt "$modules" ]; then
        log "installing npm packages for the emulators"
        rm -rf "$modules"
        (cd "$BILLOPS_ROOT/test/emulators" && npm ci --no-audit --no-fund --loglevel=error) ||
            { echo "npm ci failed in test/emulators" >&2; return 1; }
        touch "$modules"
    fi
}

build_extension() {
    log "building pg_billops (-Wall -Wextra -Werror)"
    make -C "$BILLOPS_ROOT" -s PG_CONFIG=$PGBIN/pg_config >/dev/null
    as_root make -C "$BILLOPS_ROOT" -s install PG_CONFIG=$PGBIN/pg_config >/dev/null
}

# The cluster runs as a non-root OS user (PostgreSQL refuses root).
PG_OS_USER="$(id -un)"
[ "$(id -u)" = 0 ] && PG_OS_USER=postgres
as_pg() {
    if [ "$(id -un)" = "$PG_OS_USER" ]; then "$@"; else runuser -u "$PG_OS_USER" -- "$@"; fi
}

# start_cluster NAME: sets PGHOST PGPORT PGUSER PGDATABASE and BILLOPS_RUN (a private dir).
start_cluster() {
    local name="$1"
    BILLOPS_RUN="$(mktemp -d "/tmp/pg_billops-$name.XXXXXX")"
    chmod 755 "$BILLOPS_RUN"
    mkdir -p "$BILLOPS_RUN/pgdata" "$BILLOPS_RUN/sock" "$BILLOPS_RUN/log"
    chown "$PG_OS_USER" "$BILLOPS_RUN/pgdata" "$BILLOPS_RUN/sock" "$BILLOPS_RUN/log"
    export PGPORT="${PGPORT_OVERRIDE:-$(( 20000 + RANDOM % 20000 ))}"
    export PGHOST="$BILLOPS_RUN/sock" PGUSER=postgres PGDATABASE=postgres
    log "starting a throwaway PostgreSQL 15 cluster in $BILLOPS_RUN (port $PGPORT)"
    as_pg $PGBIN/initdb -D "$BILLOPS_RUN/pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$BILLOPS_RUN/pgdata/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$BILLOPS_RUN/sock'
port = $PGPORT
shared_preload_libraries = 'pg_billops'
# a killed BILL worker is back after 1 s (default 10 s): crash tests kill it often
billops.bill_worker_restart_interval = 1
billops.aws_shared_credentials_file = '$BILLOPS_RUN/aws-credentials'
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = '4GB'
log_min_messages = warning
CONF
    # AWS credentials for the emulators, readable by the server account only
    cat > "$BILLOPS_RUN/aws-credentials" <<CREDS
[default]
aws_access_key_id = AKIDBILLOPSTEST
aws_secret_access_key = billops-test-secret-key-0000000000000000

[sigv4-suite]
aws_access_key_id = AKIDEXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY

[sigv4-suite-session]
aws_access_key_id = AKIDEXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
aws_session_token = 6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267

[wrong-secret]
aws_access_key_id = AKIDBILLOPSTEST
aws_secret_access_key = not-the-right-secret

[unknown-key]
aws_access_key_id = AKIDNOBODYKNOWS
aws_secret_access_key = billops-test-secret-key-0000000000000000

[session]
aws_access_key_id = ASIABILLOPSSESSION
aws_secret_access_key = billops-session-secret-000000000000000
aws_session_token = billops-session-token-1234567890

[expired]
aws_access_key_id = ASIABILLOPSEXPIRED
aws_secret_access_key = billops-expired-secret-000000000000000
aws_session_token = billops-expired-token-1234567890
CREDS
    chown "$PG_OS_USER" "$BILLOPS_RUN/aws-credentials"
    chmod 600 "$BILLOPS_RUN/aws-credentials"
    # STS before the server: the server learns where STS is the way AWS's SDKs do, from
    # AWS_ENDPOINT_URL_STS in its environment
    trap stop_all EXIT
    start_sts_emulator || return 1
    as_pg env AWS_ENDPOINT_URL_STS="$STS_ENDPOINT" \
        $PGBIN/pg_ctl -D "$BILLOPS_RUN/pgdata" -l "$BILLOPS_RUN/log/postgres.log" -w start >/dev/null
}

# The keys the emulators accept (must match the profiles above). The file is the emulators'
# shared key store: the STS emulator adds the temporary keys it issues, so it is written once.
write_emulator_credentials() {
    [ -s "$1" ] && return 0
    cat > "$1" <<JSON
{"keys":[
 {"accessKeyId":"AKIDBILLOPSTEST","secretAccessKey":"billops-test-secret-key-0000000000000000"},
 {"accessKeyId":"ASIABILLOPSSESSION","secretAccessKey":"billops-session-secret-000000000000000","sessionToken":"billops-session-token-1234567890"},
 {"accessKeyId":"ASIABILLOPSEXPIRED","secretAccessKey":"billops-expired-secret-000000000000000","sessionToken":"billops-expired-token-1234567890","expired":true}
]}
JSON
}

# start_s3_emulator ROOT: sets S3_ENDPOINT.
start_s3_emulator() {
    local root="$1"
    write_emulator_credentials "$BILLOPS_RUN/emulator-credentials.json"
    node "$BILLOPS_ROOT/test/emulators/s3/server.mjs" --root "$root" --port 0 \
        --credentials "$BILLOPS_RUN/emulator-credentials.json" \
        --port-file "$BILLOPS_RUN/s3.port" > "$BILLOPS_RUN/s3-emulator.log" 2>&1 &
    S3_EMULATOR_PID=$!
    for _ in $(seq 1 100); do [ -s "$BILLOPS_RUN/s3.port" ] && break; sleep 0.1; done
    [ -s "$BILLOPS_RUN/s3.port" ] || { cat "$BILLOPS_RUN/s3-emulator.log"; echo "S3 emulator did not start" >&2; return 1; }
    export S3_ENDPOINT="http://127.0.0.1:$(cat "$BILLOPS_RUN/s3.port")"
    log "S3 emulator at $S3_ENDPOINT serving $root"
}

# start_bill_emulator [FLAGS...]: the BILL v3 API emulator (extra flags, e.g. --hourly-limit N,
# go to server.mjs). Exports BILL_ENDPOINT (.../connect), BILL_EVENTS_ENDPOINT (.../connect-events),
# BILL_EMULATOR_CONTROL (.../_emulator) and the test credentials BILL_DEV_KEY, BILL_USERNAME,
# BILL_PASSWORD, BILL_ORGANIZATION_ID (and BILL_USER_ID, the API user's id).
start_bill_emulator() {
    export BILL_DEV_KEY=billops-emulator-devkey BILL_USERNAME=billops-api@example.com \
           BILL_PASSWORD=billops-emulator-password BILL_ORGANIZATION_ID=00801BILLOPSTEST0001 \
           BILL_USER_ID=00601BILLOPSAPI00001
    rm -f "$BILLOPS_RUN/bill.port"
    node "$BILLOPS_ROOT/test/emulators/bill/server.mjs" --port 0 --port-file "$BILLOPS_RUN/bill.port" \
        --dev-key "$BILL_DEV_KEY" --username "$BILL_USERNAME" --password "$BILL_PASSWORD" \
        --organization-id "$BILL_ORGANIZATION_ID" --user-id "$BILL_USER_ID" "$@" \
        > "$BILLOPS_RUN/bill-emulator.log" 2>&1 &
    BILL_EMULATOR_PID=$!
    for _ in $(seq 1 100); do [ -s "$BILLOPS_RUN/bill.port" ] && break; sleep 0.1; done
    [ -s "$BILLOPS_RUN/bill.port" ] || { cat "$BILLOPS_RUN/bill-emulator.log"; echo "BILL emulator did not start" >&2; return 1; }
    local base="http://127.0.0.1:$(cat "$BILLOPS_RUN/bill.port")"
    export BILL_ENDPOINT="$base/connect" BILL_EVENTS_ENDPOINT="$base/connect-events" BILL_EMULATOR_CONTROL="$base/_emulator"
    log "BILL emulator at $BILL_ENDPOINT"
    # with a cluster running: the worker's credentials and base URL (not billops.bill_database:
    # a test names the database, so the worker connects only when a test wants it)
    if [ -n "${PGHOST:-}" ]; then bill_worker_credentials; fi
}

# bill_worker_credentials: give the running cluster the BILL emulator's credentials (a file only the
# server account can read) and base URL; the worker still waits until billops.bill_database is set.
bill_worker_credentials() {
    [ -n "${BILLOPS_RUN:-}" ] && [ -n "${BILL_ENDPOINT:-}" ] || return 0
    export BILL_WEBHOOK_KEY="${BILL_WEBHOOK_KEY:-billops-test-webhook-key}"
    cat > "$BILLOPS_RUN/bill-credentials" <<CREDS
[default]
dev_key = $BILL_DEV_KEY
username = $BILL_USERNAME
password = $BILL_PASSWORD
organization_id = $BILL_ORGANIZATION_ID
webhook_security_key = $BILL_WEBHOOK_KEY
CREDS
    chown "$PG_OS_USER" "$BILLOPS_RUN/bill-credentials"
    chmod 600 "$BILLOPS_RUN/bill-credentials"
    psql -qX -d postgres -c "ALTER SYSTEM SET billops.bill_credentials_file = '$BILLOPS_RUN/bill-credentials'" \
         -c "ALTER SYSTEM SET billops.bill_base_url = '$BILL_ENDPOINT'" -c "SELECT pg_reload_conf()" >/dev/null
}

stop_all() {
    [ -n "${S3_EMULATOR_PID:-}" ] && kill "$S3_EMULATOR_PID" 2>/dev/null || true
    [ -n "${STS_EMULATOR_PID:-}" ] && kill "$STS_EMULATOR_PID" 2>/dev/null || true
    [ -n "${BILL_EMULATOR_PID:-}" ] && kill "$BILL_EMULATOR_PID" 2>/dev/null || true
    [ -n "${AWS_API_EMULATOR_PID:-}" ] && kill "$AWS_API_EMULATOR_PID" 2>/dev/null || true
    if [ -n "${BILLOPS_RUN:-}" ] && [ -d "$BILLOPS_RUN/pgdata" ]; then
        as_pg $PGBIN/pg_ctl -D "$BILLOPS_RUN/pgdata" -m immediate stop >/dev/null 2>&1 || true
        [ -n "${BILLOPS_KEEP:-}" ] || rm -rf "$BILLOPS_RUN"
    fi
}

# start_sts_emulator: the STS emulator (test/emulators/sts), sharing the emulators' key store.
# Exports STS_ENDPOINT and STS_EMULATOR_CONTROL (.../_emulator).
start_sts_emulator() {
    write_emulator_credentials "$BILLOPS_RUN/emulator-credentials.json"
    rm -f "$BILLOPS_RUN/sts.port"
    node "$BILLOPS_ROOT/test/emulators/sts/server.mjs" --port 0 --port-file "$BILLOPS_RUN/sts.port" \
        --credentials "$BILLOPS_RUN/emulator-credentials.json" > "$BILLOPS_RUN/sts-emulator.log" 2>&1 &
    STS_EMULATOR_PID=$!
    for _ in $(seq 1 100); do [ -s "$BILLOPS_RUN/sts.port" ] && break; sleep 0.1; done
    [ -s "$BILLOPS_RUN/sts.port" ] || { cat "$BILLOPS_RUN/sts-emulator.log"; echo "STS emulator did not start" >&2; return 1; }
    export STS_ENDPOINT="http://127.0.0.1:$(cat "$BILLOPS_RUN/sts.port")"
    export STS_EMULATOR_CONTROL="$STS_ENDPOINT/_emulator"
    log "STS emulator at $STS_ENDPOINT"
}

# start_aws_api_emulator [FLAGS...]: the Cost Explorer + Invoicing emulator (test/emulators/aws-api;
# extra flags, e.g. --ce-page-size N or --now ISO, go to server.mjs). It accepts the same keys as the
# S3 emulator (write_emulator_credentials, i.e. the [default] profile of the cluster's aws-credentials)
# and exits by itself when this script does (--parent-pid). Exports AWS_API_ENDPOINT
# (http://127.0.0.1:PORT, the base URL for both services) and AWS_API_EMULATOR_CONTROL (.../_emulator).
start_aws_api_emulator() {
    write_emulator_credentials "$BILLOPS_RUN/emulator-credentials.json"
    rm -f "$BILLOPS_RUN/aws-api.port"
    node "$BILLOPS_ROOT/test/emulators/aws-api/server.mjs" --port 0 --port-file "$BILLOPS_RUN/aws-api.port" \
        --credentials "$BILLOPS_RUN/emulator-credentials.json" --parent-pid $$ "$@" \
        > "$BILLOPS_RUN/aws-api-emulator.log" 2>&1 &
    AWS_API_EMULATOR_PID=$!
    for _ in $(seq 1 100); do [ -s "$BILLOPS_RUN/aws-api.port" ] && break; sleep 0.1; done
    [ -s "$BILLOPS_RUN/aws-api.port" ] || { cat "$BILLOPS_RUN/aws-api-emulator.log"; echo "AWS API emulator did not start" >&2; return 1; }
    export AWS_API_ENDPOINT="http://127.0.0.1:$(cat "$BILLOPS_RUN/aws-api.port")"
    export AWS_API_EMULATOR_CONTROL="$AWS_API_ENDPOINT/_emulator"
    log "AWS API emulator (Cost Explorer, Invoicing) at $AWS_API_ENDPOINT"
}
