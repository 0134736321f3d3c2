#!/usr/bin/env bash
# Writes the compose fleet's secrets into this folder (git ignores them): one bearer token per
# prober identity, a private CA and the aggregators' certificate (names: aggregator, aggregator-b
# for the HA pair's second replica, localhost), and Grafana's admin password. Existing files
# are kept; delete one to regenerate it.
#
#   deploy/edge/secrets/make-dev-secrets.sh
#
# For a real deployment, put the same files in your secret store instead (Kubernetes: see
# deploy/edge/k8s/README section in deploy/edge/README.md). Needs openssl.
set -euo pipefail
cd "$(dirname "$0")"
umask 077

token() { [ -s "$1" ] || { openssl rand -hex 24 | tr -d '\n' > "$1"; echo "wrote $1"; }; }
for t in nbo_token kla_token dar_token load_token grafana_admin_password; do token "$t"; done

if [ ! -s ca.pem ] || [ ! -s ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj "/CN=Savanna Pulse dev CA" -keyout ca.key -out ca.pem 2>/dev/null
  rm -f aggregator.crt aggregator.key
  echo "wrote ca.pem, ca.key"
fi
# A certificate from before the HA pair does not name aggregator-b: make a new one.
if [ -s aggregator.crt ] && ! openssl x509 -noout -ext subjectAltName -in aggregator.crt | grep -q 'DNS:aggregator-b'; then
  rm -f aggregator.crt aggregator.key
fi
if [ ! -s aggregator.crt ] || [ ! -s aggregator.key ]; then
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=aggregator" \
    -keyout aggregator.key -out aggregator.csr 2>/dev/null
  printf 'subjectAltName=DNS:aggregator,DNS:aggregator-b,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > aggregator.ext
  openssl x509 -req -in aggregator.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile aggregator.ext -out aggregator.crt 2>/dev/null
  rm -f aggregator.csr aggregator.ext ca.srl
  echo "wrote aggregator.crt, aggregator.key"
fi
# The containers run as uid 10001 (Prometheus and Grafana as their own users) and read these
# bind-mounted files; keep them readable by the container users only on a dev machine.
chmod 0644 ./*_token grafana_admin_password ca.pem aggregator.crt aggregator.key
echo "secrets ready in $(pwd)"
