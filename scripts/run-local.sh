#!/usr/bin/env bash
# Starts a local three-member tokenstore cluster on loopback with data under
# ./data/<name> and logs in ./data/<name>.log. Ctrl-C stops all three.
# A member killed by a signal (kill -9 one to watch a failover), or one that
# fails after running for a while, is started again 5 s later, as a
# StatefulSet or systemd would, and catches up from the others. One that
# fails within its first 10 s is left down, so a bad flag or a port in use
# ends the run instead of looping; one that stops cleanly (exit 0, as on
# Ctrl-C) stays stopped.
# Members serve TLS with certificates --dev generates from one local CA in
# ./data/ca (with an admin client certificate beside it); ./data/tokenctl.env
# points tokenctl at them.
#
# Environment (for tests and a second local cluster; the defaults are what
# README.md shows): BIN (binaries, ./bin), DATA (./data), BASE_PORT (23790:
# member i listens on BASE_PORT+i-1 for clients, +10 for peers, +20 for
# HTTPS), MIN_UPTIME (10 s) and RESTART_DELAY (5 s).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-./bin}
DATA=${DATA:-./data}
BASE_PORT=${BASE_PORT:-23790}
MIN_UPTIME=${MIN_UPTIME:-10}
RESTART_DELAY=${RESTART_DELAY:-5}
mkdir -p "$DATA"

client_port() { echo $((BASE_PORT + $1 - 1)); }
peer_port() { echo $((BASE_PORT + 10 + $1 - 1)); }
http_port() { echo $((BASE_PORT + 20 + $1 - 1)); }
CLUSTER="n1=127.0.0.1:$(peer_port 1),n2=127.0.0.1:$(peer_port 2),n3=127.0.0.1:$(peer_port 3)"
ENDPOINTS="127.0.0.1:$(client_port 1),127.0.0.1:$(client_port 2),127.0.0.1:$(client_port 3)"
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping cluster..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; data kept in $DATA"
  exit
}
trap cleanup INT TERM EXIT

# stop_child sends the supervised member TERM and returns once it has
# exited (a wait interrupted by another signal is waited again).
stop_child() {
  kill -TERM "$child" 2>/dev/null
  while kill -0 "$child" 2>/dev/null; do
    wait "$child" 2>/dev/null || sleep 0.05
  done
}

# supervise runs member n$1 and starts it again when a signal killed it or
# it failed after running at least MIN_UPTIME seconds. On TERM it stops the
# member and waits for it.
supervise() {
  local i=$1 child rc started
  # No errexit here: a failed kill or wait in the trap must not end the
  # subshell before its member has exited.
  set +e
  trap 'stop_child; exit 0' TERM INT
  while true; do
    started=$SECONDS
    "$BIN/tokenstore" --name "n$i" --data-dir "$DATA/n$i" \
      --listen-client "127.0.0.1:$(client_port "$i")" --listen-peer "127.0.0.1:$(peer_port "$i")" \
      --listen-http "127.0.0.1:$(http_port "$i")" \
      --initial-cluster "$CLUSTER" --dev --dev-ca-dir "$DATA/ca" >>"$DATA/n$i.log" 2>&1 &
    child=$!
    wait "$child"
    rc=$?
    if ((rc == 0)); then
      exit 0 # stopped cleanly: asked to
    fi
    if ((rc <= 128 && SECONDS - started < MIN_UPTIME)); then
      echo "n$i exited with status $rc within $MIN_UPTIME s of starting; left down (see $DATA/n$i.log)" >&2
      exit 1
    fi
    echo "n$i exited with status $rc; starting it again in $RESTART_DELAY s (Ctrl-C stops the cluster)" >&2
    sleep "$RESTART_DELAY" &
    wait $! || true
  done
}

for i in 1 2 3; do
  supervise "$i" &
  pids+=($!)
done

# tokenctl's credentials: the local CA and its admin client certificate.
CA=$(cd "$DATA" && pwd)/ca
if [[ $BASE_PORT == 23790 ]]; then
  cat >"$DATA/tokenctl.env" <<ENV
export TOKENCTL_CACERT=$CA/ca.crt TOKENCTL_CERT=$CA/admin.crt TOKENCTL_KEY=$CA/admin.key
ENV
else
  cat >"$DATA/tokenctl.env" <<ENV
export TOKENCTL_CACERT=$CA/ca.crt TOKENCTL_CERT=$CA/admin.crt TOKENCTL_KEY=$CA/admin.key TOKENCTL_ENDPOINTS=$ENDPOINTS
ENV
fi
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
  n1      127.0.0.1:$(client_port 1)     127.0.0.1:$(peer_port 1)     https://127.0.0.1:$(http_port 1)
  n2      127.0.0.1:$(client_port 2)     127.0.0.1:$(peer_port 2)     https://127.0.0.1:$(http_port 2)
  n3      127.0.0.1:$(client_port 3)     127.0.0.1:$(peer_port 3)     https://127.0.0.1:$(http_port 3)

CA and admin client certificate: $DATA/ca (ca.crt, admin.crt, admin.key)

Try, in another terminal (tokenctl talks to these three endpoints):
  . $DATA/tokenctl.env                  # TOKENCTL_CACERT, TOKENCTL_CERT, TOKENCTL_KEY
  $BIN/tokenctl status
  $BIN/tokenctl token create --user alice --group dev --group ops --ttl 24h -o json
  $BIN/tokenctl --endpoints 127.0.0.1:$(client_port 3) token verify <token from create>
  $BIN/tokenctl token list
  $BIN/tokenctl token update <id> --disable
  $BIN/tokenctl token revoke <id>

kill -9 a member to watch a failover: it is started again $RESTART_DELAY s later and catches up.
Ctrl-C stops the cluster.
TXT
"$BIN/tokenctl" status || true
wait
