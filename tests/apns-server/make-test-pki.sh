#!/bin/sh
# Generate the certificates the APNs tests, benchmarks and the device simulator use with
# apns-test-server:  make-test-pki.sh OUTDIR
#
#   ca.pem / ca.key              test CA that issues the server certificates
#   server.pem / server.key      TLS server cert: DNS:localhost, IP:127.0.0.1
#   wrongname.pem / .key         TLS server cert for "wrong.example" (host name check fails)
#   pushca.pem / pushca.key      CA that issues push certificates (the server's --client-ca)
#   push.pem / push.key          push cert, subject UID=com.apple.mgmt.External.<uuid> (RSA)
#   push-pkcs1.key, push-pkcs8.key, push-enc.key (PKCS#8, password "secret")
#   push-combined.pem            certificate and key in one file
#   push.p12                     PKCS#12 of push.pem + key, password "secret"
#   push2.pem / push2.key        a second push cert for the same topic (hot reload)
#   push-other.pem / .key        a push cert for another topic
#   otherca.pem                  a CA that issued nothing we use (a server that refuses us)
#   topic, topic-other           the two topics, one line each
#
# Idempotent: a complete OUTDIR is left alone.  Needs the openssl CLI.
set -eu
out=${1:?usage: make-test-pki.sh OUTDIR}
mkdir -p "$out"
[ -f "$out/.complete" ] && exit 0
tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

uuid() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n' |
    sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12})$/\1-\2-\3-\4-\5/'; }
days=3650
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# CAs
ec ca.key
openssl req -x509 -new -key ca.key -subj "/CN=Scepter APNs test CA" -days $days -out ca.pem \
    -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign"
ec pushca.key
openssl req -x509 -new -key pushca.key -subj "/CN=Scepter test push CA" -days $days \
    -out pushca.pem -addext "basicConstraints=critical,CA:true" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
ec otherca.key
openssl req -x509 -new -key otherca.key -subj "/CN=Unrelated CA" -days $days -out otherca.pem \
    -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign"

issue() { # issue CAKEY CACERT KEY SUBJ OUT EXT
    openssl req -new -key "$3" -subj "$4" -out req.csr
    printf '%s\n' "$6" > ext.cnf
    openssl x509 -req -in req.csr -CA "$2" -CAkey "$1" -CAcreateserial -days $days \
        -extfile ext.cnf -out "$5" 2>/dev/null
}

# Server certificates
ec server.key
issue ca.key ca.pem server.key "/CN=localhost" server.pem \
    "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"
ec wrongname.key
issue ca.key ca.pem wrongname.key "/CN=wrong.example" wrongname.pem \
    "subjectAltName=DNS:wrong.example
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"

# Push certificates (RSA, like Apple's)
u1=$(uuid)
u2=$(uuid)
topic="com.apple.mgmt.External.$u1"
other="com.apple.mgmt.External.$u2"
pushext="extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
rsa push.key
issue pushca.key pushca.pem push.key "/UID=$topic/CN=APSP:$u1/C=US" push.pem "$pushext"
rsa push2.key
issue pushca.key pushca.pem push2.key "/UID=$topic/CN=APSP:$u1/C=US" push2.pem "$pushext"
rsa push-other.key
issue pushca.key pushca.pem push-other.key "/UID=$other/CN=APSP:$u2/C=US" push-other.pem \
    "$pushext"
openssl pkey -in push.key -out push-pkcs8.key
openssl rsa -in push.key -traditional -out push-pkcs1.key 2>/dev/null
openssl pkcs8 -topk8 -in push.key -passout pass:secret -v2 aes-256-cbc -out push-enc.key
cat push.pem push.key > push-combined.pem
openssl pkcs12 -export -in push.pem -inkey push.key -passout pass:secret -out push.p12
printf '%s\n' "$topic" > topic
printf '%s\n' "$other" > topic-other

rm -f req.csr ext.cnf ./*.srl
chmod 0644 ./*
mv ./* "$out"/
touch "$out/.complete"
