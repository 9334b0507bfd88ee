#!/usr/bin/env bash
# Starts a local three-member tokenstore cluster on loopback with data under
# ./data/<name> and logs in ./data/<name>.log. Ctrl-C stops all three.
# Members serve TLS with certificates --dev generates from one local CA in
# ./data/ca (with an admin client certificate beside it); ./data/tokenctl.env
# points tokenctl at them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin
DATA=${DATA:-./data}
mkdir -p "$DATA"

CLUSTER="n1=127.0.0.1:23800,n2=127.0.0.1:23801,n3=127.0.0.1:23802"
pids=()
cleanup() {
  echo
  echo "stopping cluster..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; data kept in $DATA"
}
trap cleanup INT TERM EXIT

for i in 1 2 3; do
  n=$((i - 1))
  "$BIN/tokenstore" --name "n$i" --data-dir "$DATA/n$i" \
    --listen-client "127.0.0.1:2379$n" --listen-peer "127.0.0.1:2380$n" --listen-http "127.0.0.1:2381$n" \
    --initial-cluster "$CLUSTER" --dev --dev-ca-dir "$DATA/ca" >>"$DATA/n$i.log" 2>&1 &
  pids+=($!)
done

# tokenctl's credentials: the local CA and its admin client certificate.
CA=$(cd "$DATA" && pwd)/ca
cat >"$DATA/tokenctl.env" <<ENV
export TOKENCTL_CACERT=$CA/ca.crt TOKENCTL_CERT=$CA/admin.crt TOKENCTL_KEY=$CA/admin.key
ENV
# shellcheck disable=SC1091
. "$DATA/tokenctl.env"

# Wait until a member reports a leader (tokenctl tries every endpoint).
for _ in $(seq 1 100); do
  if "$BIN/tokenctl" status -o json 2>/dev/null | grep -q '"leader": {'; then break; fi
  for p in "${pids[@]}"; do
    if ! kill -0 "$p" 2>/dev/null; then echo "a member exited; see $DATA/n*.log" >&2; tail -n 5 "$DATA"/n*.log >&2; exit 1; fi
  done
  sleep 0.1
done

cat <<TXT
tokenstore cluster running (logs: $DATA/n1.log, n2.log, n3.log)

  member  client (gRPC, TLS)  peer (mutual TLS)   https (/readyz, /metrics, webhooks)
  n1      127.0.0.1:23790     127.0.0.1:23800     https://127.0.0.1:23810
  n2      127.0.0.1:23791     127.0.0.1:23801     https://127.0.0.1:23811
  n3      127.0.0.1:23792     127.0.0.1:23802     https://127.0.0.1:23812

CA and admin client certificate: $DATA/ca (ca.crt, admin.crt, admin.key)

Try, in another terminal (tokenctl defaults to these three endpoints):
  . $DATA/tokenctl.env                  # TOKENCTL_CACERT, TOKENCTL_CERT, TOKENCTL_KEY
  ./bin/tokenctl status
  ./bin/tokenctl token create --user alice --group dev --group ops --ttl 24h -o json
  ./bin/tokenctl --endpoints 127.0.0.1:23792 token verify <token from create>
  ./bin/tokenctl token list
  ./bin/tokenctl token update <id> --disable
  ./bin/tokenctl token revoke <id>

Ctrl-C stops the cluster.
TXT
./bin/tokenctl status || true
wait
