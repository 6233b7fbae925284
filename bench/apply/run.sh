#!/usr/bin/env bash
# Time to deliver N secrets (default 1,000) with `tresor apply`, beside the
# peer doing the same count in the same run:
#   AWS Secrets Manager (moto_server on loopback): tresor's SDK pushes vs. an
#     AWS CLI loop of `create-secret` (timed on SAMPLE calls, scaled to N:
#     each call is one Python start-up plus one request);
#   Vault (`tresor server -dev`): tresor's KV v2 pushes vs. an hvac loop of
#     N writes in one Python process;
#   Kubernetes (kube-apiserver + etcd from scripts/setup/kube.sh): tresor's
#     server-side apply vs. `kubectl apply --server-side` of the same
#     manifests (`tresor k8s render -o DIR`).
# Each tresor row is a first apply (store + create everywhere), a second
# (nothing to do: every target compared, nothing written) and a push only
# (the spec moved to a fresh mount, prefix or namespace: the store is
# unchanged, N creations on the target, as the peer does); the `store` rows
# are the same apply with no target: the store's share of a first apply
# (fsync-bound, so it varies with the disk's other load).
# Usage: bench/apply/run.sh [N]   (PROFILE=debug for a debug build, TRESOR_BIN=path to use a built one)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-${N:-1000}}
SAMPLE=${SAMPLE:-100}
PROFILE=${PROFILE:-release}
eval "$(bash scripts/setup/aws.sh)"
eval "$(bash scripts/setup/python.sh)"
eval "$(bash scripts/setup/kube.sh)"
# TRESOR_BIN: an already built binary (then nothing is built).
target=${CARGO_TARGET_DIR:-target}
if [[ -n ${TRESOR_BIN:-} ]]; then
    bin=$TRESOR_BIN
    PROFILE="given binary"
elif [[ $PROFILE == release ]]; then
    cargo build --release -p tresor >&2
    bin="$target/release/tresor"
else
    cargo build -p tresor >&2
    bin="$target/debug/tresor"
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# --- the services -----------------------------------------------------------
moto_port=$(free_port)
"$TRESOR_TEST_MOTO" -H 127.0.0.1 -p "$moto_port" >/dev/null 2>&1 &
pids+=($!)
vault_port=$(free_port)
TRESOR_DEV_ROOT_TOKEN=bench-root "$bin" server -dev -listen="127.0.0.1:$vault_port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$moto_port"
wait_port "$vault_port"
export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$moto_port" AWS_ACCESS_KEY_ID=bench \
    AWS_SECRET_ACCESS_KEY=bench AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1 AWS_EC2_METADATA_DISABLED=true \
    VAULT_ADDR="http://127.0.0.1:$vault_port" VAULT_TOKEN=bench-root HOME="$work" XDG_CONFIG_HOME="$work/config"
for mount in bench moved; do
    curl -sf -H "X-Vault-Token: bench-root" -X POST -d '{"type":"kv","options":{"version":"2"}}' \
        "$VAULT_ADDR/v1/sys/mounts/$mount" >/dev/null
done

# --- the specs: N secrets, one target each ----------------------------------
spec() { # $1: dir, $2: the target line of secret $i ({i} replaced)
    mkdir -p "$1"
    { echo "version: 1"; echo "name: bench"; echo "kubernetes: {namespace: bench}"; echo "secrets:"
      for i in $(seq -w 1 "$N"); do
          echo "  s-$i:"
          echo "    keys: {user: {value: app-$i}, password: {generate: base64:32}}"
          echo "    targets: ${2//\{i\}/$i}"
      done; } >"$1/tresor.yaml"
}
spec "$work/store" "{kubernetes: false}"
spec "$work/aws" "{kubernetes: false, aws: {name: bench/s-{i}}}"
spec "$work/vault" "{kubernetes: false, vault: {mount: bench, path: s-{i}}}"
spec "$work/kube" "{}"

timed_apply() { # $1: dir, extra args...; prints the seconds
    local dir=$1; shift
    local t0; t0=$(now)
    "$bin" apply -f "$dir/tresor.yaml" "$@" >"$dir/apply.log" 2>&1 || { cat "$dir/apply.log" >&2; exit 1; }
    elapsed "$t0" "$(now)"
}

# The same secrets to a fresh place: only the target is written.
moved_apply() { # $1: dir, $2: sed expression moving the targets, extra args...
    local dir=$1 move=$2; shift 2
    sed -i "$move" "$dir/tresor.yaml"
    timed_apply "$dir" "$@"
    local created; created=$(grep -c 'created$' "$dir/apply.log" || true)
    [[ $created -eq $N ]] || { echo "push only created $created of $N:" >&2; cat "$dir/apply.log" >&2; exit 1; }
}

rows=()
row() { rows+=("$(printf '%-12s %-52s %10s %12s' "$1" "$2" "$3" "$4")"); }
rate() { python3 -c "print(f'{$N/$1:.0f}')"; }

# --- the store alone -----------------------------------------------------------
first=$(timed_apply "$work/store")
second=$(timed_apply "$work/store")
row store "tresor apply, first (store $N, no target)" "$first" "$(python3 -c "print(f'{$N/$first:.0f}')")"
row store "tresor apply, second (compare $N)" "$second" "$(python3 -c "print(f'{$N/$second:.0f}')")"

# --- AWS ----------------------------------------------------------------------
first=$(timed_apply "$work/aws")
second=$(timed_apply "$work/aws")
moved=$(moved_apply "$work/aws" 's#name: bench/#name: moved/#')
t0=$(now)
for i in $(seq -w 1 "$SAMPLE"); do
    "$TRESOR_TEST_AWS_CLI" secretsmanager create-secret --name "peer/s-$i" \
        --secret-string "{\"user\":\"app-$i\",\"password\":\"$(head -c 32 /dev/urandom | base64)\"}" \
        --endpoint-url "$AWS_ENDPOINT_URL_SECRETS_MANAGER" >/dev/null
done
sample=$(elapsed "$t0" "$(now)")
peer=$(python3 -c "print(f'{$sample * $N / $SAMPLE:.2f}')")
row aws "tresor apply, first (create $N)" "$first" "$(python3 -c "print(f'{$N/$first:.0f}')")"
row aws "tresor apply, second (compare $N, write none)" "$second" "$(python3 -c "print(f'{$N/$second:.0f}')")"
row aws "tresor apply, push only (create $N, store unchanged)" "$moved" "$(rate "$moved")"
row aws "aws CLI create-secret loop ($SAMPLE timed, x$((N / SAMPLE)))" "$peer" "$(python3 -c "print(f'{$N/$peer:.0f}')")"

# --- Vault --------------------------------------------------------------------
first=$(timed_apply "$work/vault")
second=$(timed_apply "$work/vault")
moved=$(moved_apply "$work/vault" 's#mount: bench,#mount: moved,#')
t0=$(now)
"$TRESOR_TEST_PYTHON" - "$N" <<'PY'
import base64, os, sys, hvac
c = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
for i in range(int(sys.argv[1])):
    c.secrets.kv.v2.create_or_update_secret(path=f"peer/s-{i}", mount_point="bench",
        secret={"user": f"app-{i}", "password": base64.b64encode(os.urandom(32)).decode()})
PY
peer=$(elapsed "$t0" "$(now)")
row vault "tresor apply, first (create $N)" "$first" "$(python3 -c "print(f'{$N/$first:.0f}')")"
row vault "tresor apply, second (compare $N, write none)" "$second" "$(python3 -c "print(f'{$N/$second:.0f}')")"
row vault "tresor apply, push only (create $N, store unchanged)" "$moved" "$(rate "$moved")"
row vault "hvac create_or_update_secret loop" "$peer" "$(python3 -c "print(f'{$N/$peer:.0f}')")"

# --- Kubernetes ---------------------------------------------------------------
kube="$work/cluster"
mkdir -p "$kube"
(
    cd "$kube"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=bench-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    echo 'admin-token,admin,1,"system:masters"' >tokens.csv
)
etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
"$TRESOR_TEST_ETCD" --name bench --data-dir "$kube/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "bench=http://127.0.0.1:$peer_port" >/dev/null 2>&1 &
pids+=($!)
"$TRESOR_TEST_KUBE_APISERVER" --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 --secure-port "$api_port" --endpoint-reconciler-type none \
    --tls-cert-file "$kube/server.crt" --tls-private-key-file "$kube/server.key" --token-auth-file "$kube/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local --service-account-key-file "$kube/sa.pub" \
    --service-account-signing-key-file "$kube/sa.key" --authorization-mode RBAC \
    --service-cluster-ip-range 10.96.0.0/24 --disable-admission-plugins ServiceAccount >/dev/null 2>&1 &
pids+=($!)
cat >"$kube/kubeconfig" <<CFG
apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$kube/ca.crt"}
contexts:
- name: bench
  context: {cluster: bench, user: admin}
current-context: bench
users:
- name: admin
  user: {token: admin-token}
CFG
export KUBECONFIG="$kube/kubeconfig"
for _ in $(seq 900); do kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 0.2; done
kubectl create namespace bench >/dev/null
kubectl create namespace peer >/dev/null
kubectl create namespace moved >/dev/null
first=$(timed_apply "$work/kube" --context bench)
second=$(timed_apply "$work/kube" --context bench)
cp "$work/kube/tresor.yaml" "$work/kube/rendered.yaml"
moved=$(moved_apply "$work/kube" 's#kubernetes: {namespace: bench}#kubernetes: {namespace: moved}#' --context bench)
cp "$work/kube/rendered.yaml" "$work/kube/tresor.yaml"
"$bin" k8s render -f "$work/kube/tresor.yaml" -o "$work/manifests" >/dev/null
sed -i 's/^  namespace: bench$/  namespace: peer/' "$work"/manifests/*.yaml
t0=$(now)
kubectl apply --server-side --field-manager=peer -f "$work/manifests" >/dev/null
peer=$(elapsed "$t0" "$(now)")
row kubernetes "tresor apply, first (create $N)" "$first" "$(python3 -c "print(f'{$N/$first:.0f}')")"
row kubernetes "tresor apply, second (compare $N, write none)" "$second" "$(python3 -c "print(f'{$N/$second:.0f}')")"
row kubernetes "tresor apply, push only (create $N, store unchanged)" "$moved" "$(rate "$moved")"
row kubernetes "kubectl apply --server-side (same manifests)" "$peer" "$(python3 -c "print(f'{$N/$peer:.0f}')")"

printf '%-12s %-52s %10s %12s\n' TARGET "WHAT ($N secrets, $PROFILE build)" SECONDS SECRETS/S
printf '%s\n' "${rows[@]}"
