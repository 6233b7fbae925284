# Sourced by scripts/setup/*.sh: `venv_for NAME REQUIREMENTS...` builds (once)
# a Python virtualenv named after NAME and a hash of REQUIREMENTS in the cache
# outside the repository, installing python3-venv when missing, and prints its
# path. Progress goes to stderr.
venv_for() {
    local name=$1
    shift
    local requirements="$*"
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/tresor"
    local venv
    venv="$cache/venv-$name-$(echo "$requirements" | sha256sum | cut -c1-12)"
    # Built in place (its scripts' #! lines name the venv's own python), and
    # marked complete only once everything installed.
    if [[ ! -e $venv/.complete ]]; then
        local python
        python=$(command -v python3 || true)
        if [[ -z $python ]] || ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
            local sudo_cmd=""
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
    echo "$venv"
}
