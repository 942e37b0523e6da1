#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks, from Debian's `postgresql` package.
#
#   scripts/pg_throwaway.sh start DIR   initdb in DIR/data, start it on 127.0.0.1 and a free port,
#                                        print its URL: postgresql+psycopg://listing_audit@127.0.0.1:PORT/postgres
#   scripts/pg_throwaway.sh stop DIR    stop it (immediate shutdown) and delete DIR
#
# Nothing listens outside 127.0.0.1 (no Unix socket outside DIR either); trust authentication
# for the one local user. Durability is off (fsync, synchronous_commit): the data is thrown away.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user,
# in a folder of its own under /tmp (DIR's parents may be closed to it); DIR/server records where.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$2

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "error: PostgreSQL is not installed (Debian package postgresql)" >&2; exit 1; }

as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "$action" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        server=$(mktemp -d -p /tmp listing-audit-pg.XXXXXX)
        chown postgres: "$server"
    else
        server="$dir/server"
        mkdir -p "$server"
    fi
    echo "$server" >"$dir/server"
    as_server_user "$bin/initdb" -D "$server/data" -U listing_audit --auth=trust -E UTF8 --no-sync >/dev/null
    port=$(free_port)
    as_server_user "$bin/pg_ctl" -D "$server/data" -l "$server/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$server -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
    echo "postgresql+psycopg://listing_audit@127.0.0.1:$port/postgres"
    ;;
stop)
    if [ -f "$dir/server" ]; then
        server=$(cat "$dir/server")
        as_server_user "$bin/pg_ctl" -D "$server/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$server"
    fi
    rm -rf "$dir"
    ;;
*)
    usage
    ;;
esac
