#!/usr/bin/env bash
# A Python virtualenv with a local AWS Secrets Manager (moto's server) and the
# AWS CLI, for the delivery tests and bench/apply. Cached outside the
# repository; built when missing. Prints the variables the tests read;
# progress goes to stderr.
set -euo pipefail
requirements="moto[server]==5.2.5 awscli==1.46.3"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tresor"
venv="$cache/venv-aws-$(echo "$requirements" | sha256sum | cut -c1-12)"
# Built in place (its scripts' #! lines name the venv's own python), and
# marked complete only once everything installed.
if [[ ! -e $venv/.complete ]]; then
    python=$(command -v python3 || true)
    if [[ -z $python ]] || ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
        sudo_cmd=""
        [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq >&2
        $sudo_cmd apt-get install -y -qq python3 python3-venv >&2
        python=$(command -v python3)
    fi
    echo "creating $venv with $requirements" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet --disable-pip-version-check $requirements >&2
    touch "$venv/.complete"
fi
echo "export TRESOR_TEST_MOTO='$venv/bin/moto_server'"
echo "export TRESOR_TEST_AWS_CLI='$venv/bin/aws'"
