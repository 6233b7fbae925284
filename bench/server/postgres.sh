# Sourced by run.sh after its embedded runs: the same runs against a server
# on PostgreSQL (a throwaway local cluster with fsync and synchronous_commit
# on, so every acknowledged write is durable), the bench store moved there
# with `tresor operator migrate`; then both backends side by side. Uses
# run.sh's variables and its measure function.

pg_bin=$(bash scripts/setup/postgres.sh | sed -n "s/^export TRESOR_PG_BIN='\(.*\)'$/\1/p")
as_pg=()
[[ $(id -u) -eq 0 ]] && as_pg=(runuser -u postgres --)
pg_dir=$(mktemp -d /tmp/tresor-bench-pg.XXXXXX)
chmod 755 "$pg_dir"
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pg_password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
echo "$pg_password" >"$pg_dir/pw"
[[ ${#as_pg[@]} -eq 0 ]] || chown postgres: "$pg_dir" "$pg_dir/pw"
pg_ctl() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" "$@" >/dev/null; }
trap 'kill "$pid" 2>/dev/null || true; pg_ctl -m immediate stop 2>/dev/null || true; rm -rf "$work" "$pg_dir"' EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" --auth=scram-sha-256 -U postgres --pwfile="$pg_dir/pw" -E UTF8 >/dev/null
rm "$pg_dir/pw"
pg_ctl -l "$pg_dir/log" -w start -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on"
PGPASSWORD=$pg_password "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c 'CREATE DATABASE tresor'
(umask 077 && echo "postgres://postgres:$pg_password@127.0.0.1:$pg_port/tresor?sslmode=disable" >"$work/pg-url")

kill "$pid"
wait "$pid" 2>/dev/null || true
migrated=$("$bin" --store "$work/store" operator migrate --from embedded --to postgres --postgres-url-file "$work/pg-url" -format=json)
cat >"$work/tresor-pg.toml" <<TOML
[listener]
address = "127.0.0.1:$port"
tls_disable = true
[storage]
kind = "postgres"
url_file = "$work/pg-url"
[seal]
key_file = "$work/unseal.key"
[[audit.device]]
file_path = "$work/audit-pg.log"
TOML
"$bin" server --config "$work/tresor-pg.toml" >"$work/server-pg.out" 2>"$work/server-pg.err" &
pid=$!
for _ in $(seq 100); do curl -sf "$addr/v1/sys/health" >/dev/null && break; sleep 0.1; done
sleep 1

declare -A embedded_rps embedded_p99
for k in "${!rps[@]}"; do
    embedded_rps[$k]=${rps[$k]}
    embedded_p99[$k]=${p99[$k]}
done
measure
pg_checked=0
for c in 1 16 64; do
    for key in $(api -X LIST "$addr/v1/secret/metadata/bench/?after=write-c$c-&limit=5" | grep -o "\"write-c$c-[^\"]*\"" | tr -d '"'); do
        value=$(api "$addr/v1/secret/data/bench/$key" | sed -n 's/.*"value":"\([^"]*\)".*/\1/p')
        [[ $value == "v-$key" ]] || { echo "read-after-write on PostgreSQL failed for $key" >&2; exit 1; }
        pg_checked=$((pg_checked + 1))
    done
done

echo
echo "the same runs on PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') (local cluster, fsync and synchronous_commit on), pool of 16; store migrated: $(sed -n 's/.*"keys": *\([0-9]*\).*/\1/p' <<<"$migrated") keys"
printf '| %-22s | %5s | %14s | %14s | %12s | %12s |\n' "endpoint" "conns" "embedded req/s" "postgres req/s" "embedded p99" "postgres p99"
printf '|%s|%s|%s|%s|%s|%s|\n' "------------------------" "-------" "----------------" "----------------" "--------------" "--------------"
for name in health read write; do
    label=$name
    [[ $name == health ]] && label="sys/health (ceiling)"
    [[ $name == read ]] && label="KV v2 read"
    [[ $name == write ]] && label="KV v2 write (durable)"
    for c in 1 16 64; do
        printf '| %-22s | %5s | %14s | %14s | %12s | %12s |\n' "$label" "$c" "${embedded_rps[$name,$c]}" "${rps[$name,$c]}" "${embedded_p99[$name,$c]}" "${p99[$name,$c]}"
    done
done
echo "read-after-write on PostgreSQL checked: $pg_checked secrets"
