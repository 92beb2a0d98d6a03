#!/usr/bin/env bash
# Certificates and credentials for compose.sasl-ssl.yaml, made with openssl alone:
#
#   secrets/ca/       the throw-away CA (its key never leaves this folder) and CSRs
#   secrets/broker/   mounted on every broker at /etc/kafka/secrets (apache/kafka's place):
#                     kafka-N.p12 (key + certificate for DNS:kafka-N, serverAuth and
#                     clientAuth), keystore_password, ca.crt (trust store, PEM),
#                     kafka_server_jaas.conf (the SASL/PLAIN users),
#                     healthcheck.properties (client settings of the health check)
#   secrets/client/   given to the dunning containers as Compose secrets:
#                     ca.crt, dunning_kafka_password
#
# For trying the variant. In production the certificates come from your PKI and the
# passwords from your secret store; the places they go stay the same.
set -euo pipefail
cd "$(dirname "$0")"
out=secrets
if [ -e "$out" ]; then
  echo "$out/ exists: remove it first (docker compose down first if it is in use)" >&2
  exit 1
fi
umask 077
mkdir -p "$out/ca" "$out/broker" "$out/client"
days=825

openssl req -x509 -new -nodes -newkey rsa:3072 -sha256 -days "$days" \
  -subj "/CN=dunning compose CA" -keyout "$out/ca/ca.key" -out "$out/ca/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

storepass=$(openssl rand -hex 24)
printf '%s' "$storepass" > "$out/broker/keystore_password"
for n in 1 2 3; do
  host="kafka-$n"
  openssl req -new -nodes -newkey rsa:3072 -sha256 -subj "/CN=$host" \
    -keyout "$out/ca/$host.key" -out "$out/ca/$host.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:FALSE\n' \
    "$host" > "$out/ca/$host.ext"
  openssl x509 -req -sha256 -days "$days" -in "$out/ca/$host.csr" \
    -CA "$out/ca/ca.crt" -CAkey "$out/ca/ca.key" -CAcreateserial \
    -extfile "$out/ca/$host.ext" -out "$out/ca/$host.crt" 2>/dev/null
  openssl pkcs12 -export -name "$host" -inkey "$out/ca/$host.key" -in "$out/ca/$host.crt" \
    -certfile "$out/ca/ca.crt" -passout "pass:$storepass" -out "$out/broker/$host.p12"
done
cp "$out/ca/ca.crt" "$out/broker/ca.crt"
# Client settings for the brokers' health check (kafka-broker-api-versions.sh on the
# broker's own mutual-TLS listener, from inside the container).
cat > "$out/broker/healthcheck.properties" <<EOF
security.protocol=SSL
ssl.keystore.type=PKCS12
ssl.keystore.location=/etc/kafka/secrets/kafka-1.p12
ssl.keystore.password=$storepass
ssl.key.password=$storepass
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.crt
ssl.endpoint.identification.algorithm=
EOF
cp "$out/ca/ca.crt" "$out/client/ca.crt"

password=$(openssl rand -hex 24)
printf '%s' "$password" > "$out/client/dunning_kafka_password"
cat > "$out/broker/kafka_server_jaas.conf" <<EOF
KafkaServer {
    org.apache.kafka.common.security.plain.PlainLoginModule required
    user_dunning="$password";
};
EOF

# The containers run as other users than you (apache/kafka: uid 1000, dunning: uid
# 10001), and Compose mounts these files as they are: make the mounted ones readable.
# On a shared host, chown them to those uids and keep them 0400 instead.
chmod 0755 "$out" "$out/broker" "$out/client"
chmod 0644 "$out"/broker/* "$out"/client/*
echo "made $out/ (CA, 3 broker keystores, JAAS users, dunning password)"
