#!/usr/bin/env bash
# PostgreSQL server binaries (initdb, pg_ctl, postgres) for the tests, which
# start their own throwaway clusters with them. Installs Debian's package when
# missing. Prints the variables the tests read; progress goes to stderr.
set -euo pipefail
find_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $dir/initdb && -x $dir/pg_ctl ]] && { echo "$dir"; return; }
    done
}
bin=$(find_bin)
if [[ -z $bin ]]; then
    sudo_cmd=""
    [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
    echo "installing PostgreSQL server binaries" >&2
    $sudo_cmd apt-get update -qq >&2
    $sudo_cmd apt-get install -y -qq postgresql >&2
    bin=$(find_bin)
fi
echo "export TRESOR_PG_BIN='$bin'"
