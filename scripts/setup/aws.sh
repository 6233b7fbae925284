#!/usr/bin/env bash
# A Python virtualenv with a local AWS Secrets Manager (moto's server) and the
# AWS CLI, for the delivery tests and bench/apply. Prints the variables the
# tests read.
set -euo pipefail
source "$(dirname "$0")/../lib/venv.sh"
venv=$(venv_for aws "moto[server]==5.2.5" awscli==1.46.3)
echo "export TRESOR_TEST_MOTO='$venv/bin/moto_server'"
echo "export TRESOR_TEST_AWS_CLI='$venv/bin/aws'"
