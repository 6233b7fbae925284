#!/usr/bin/env bash
# A Python virtualenv with the real Vault client (hvac) and pytest, for the
# server's conformance suite. Cached outside the repository; built when missing.
# Prints the variables the tests read; progress goes to stderr.
set -euo pipefail
requirements="hvac==2.4.0 pytest==9.2.0"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tresor"
venv="$cache/venv-$(echo "$requirements" | sha256sum | cut -c1-12)"
if [[ ! -x $venv/bin/python ]]; then
    python=$(command -v python3 || true)
    if [[ -z $python ]] || ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
        sudo_cmd=""
        [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq >&2
        $sudo_cmd apt-get install -y -qq python3 python3-venv >&2
        python=$(command -v python3)
    fi
    echo "creating $venv with $requirements" >&2
    rm -rf "$venv.tmp"
    "$python" -m venv "$venv.tmp" >&2
    # shellcheck disable=SC2086
    "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check $requirements >&2
    mv "$venv.tmp" "$venv"
fi
echo "export TRESOR_TEST_PYTHON='$venv/bin/python'"
