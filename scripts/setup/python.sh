#!/usr/bin/env bash
# A Python virtualenv with the real Vault client (hvac) and pytest, for the
# server's conformance suite. Prints the variables the tests read.
set -euo pipefail
source "$(dirname "$0")/../lib/venv.sh"
venv=$(venv_for hvac hvac==2.4.0 pytest==9.2.0)
echo "export TRESOR_TEST_PYTHON='$venv/bin/python'"
