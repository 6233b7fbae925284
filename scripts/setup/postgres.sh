#!/usr/bin/env bash
# PostgreSQL server binaries (initdb, pg_ctl, postgres) for the tests, which
# start their own throwaway clusters with them, and the openssl command line,
# which makes their TLS certificates. Installs Debian's packages when
# missing. Prints the variables the tests read; progress goes to stderr.
set -euo pipefail
find_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $dir/initdb && -x $dir/pg_ctl ]] && { echo "$dir"; return; }
    done
}
missing=()
bin=$(find_bin)
[[ -n $bin ]] || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
    sudo_cmd=""
    [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
    echo "installing ${missing[*]}" >&2
    $sudo_cmd apt-get update -qq >&2
    $sudo_cmd apt-get install -y -qq "${missing[@]}" >&2
    bin=$(find_bin)
fi
echo "export TRESOR_PG_BIN='$bin'"
