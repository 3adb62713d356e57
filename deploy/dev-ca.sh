#!/bin/bash
# dev-ca.sh - a throw-away CA and SPIFFE X.509-SVIDs for development and
# tests, made with the openssl CLI (OpenSSL 3.0). Never for production: the
# CA key sits unencrypted beside the certificates.
#
#   dev-ca.sh DIR [--trust-domain TD] ca
#       DIR/ca.pem (the trust bundle) and DIR/ca.key; 10 years; URI SAN spiffe://TD.
#   dev-ca.sh DIR [--trust-domain TD] svid NAME SPIFFE_ID [options]
#       DIR/NAME.pem and DIR/NAME.key (0600), EC P-256, signed by the CA in DIR.
#       SPIFFE_ID: the one URI SAN; "/path" means spiffe://TD/path; "-" means
#       no URI SAN. It is not checked, so tests can make bad certificates.
#     --dns NAME       add a DNS SAN (for hostname-checking clients); repeatable
#     --uri URI        add another URI SAN (a certificate with two); repeatable
#     --days N         valid for N days instead of 1 hour
#     --expired        validity ended an hour ago
#     --not-yet-valid  validity starts in an hour
#     --ca-dir D       sign with the CA in D instead of DIR
# Trust domain defaults to airlock.test.
set -euo pipefail

die() { echo "dev-ca: $*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: dev-ca.sh DIR [--trust-domain TD] ca | svid NAME SPIFFE_ID [--dns N]... [--uri U]... [--days N] [--expired] [--not-yet-valid] [--ca-dir D]"

dir=$1; shift
td=airlock.test
if [ "$1" = --trust-domain ]; then td=${2:?--trust-domain needs a value}; shift 2; fi
cmd=${1:?missing command}; shift
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
stamp() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

case $cmd in
ca)
    newkey "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 \
        -subj "/O=Airlock dev/CN=Airlock dev CA $td" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectAltName=URI:spiffe://$td" \
        -out "$dir/ca.pem"
    chmod 0644 "$dir/ca.pem"
    ;;
svid)
    name=${1:?svid needs NAME}; id=${2:?svid needs SPIFFE_ID}; shift 2
    ca_dir=$dir; sans=(); start="-1 minute"; end="+1 hour"
    case $id in
        -) ;;
        /*) sans+=("URI:spiffe://$td$id") ;;
        *) sans+=("URI:$id") ;;
    esac
    while [ $# -gt 0 ]; do
        case $1 in
            --dns) sans+=("DNS:${2:?--dns needs a name}"); shift 2 ;;
            --uri) sans+=("URI:${2:?--uri needs a URI}"); shift 2 ;;
            --days) end="+${2:?--days needs N} days"; shift 2 ;;
            --expired) start="-2 hours"; end="-1 hour"; shift ;;
            --not-yet-valid) start="+1 hour"; end="+2 hours"; shift ;;
            --ca-dir) ca_dir=${2:?--ca-dir needs a directory}; shift 2 ;;
            *) die "unknown svid option $1" ;;
        esac
    done
    [ -f "$ca_dir/ca.key" ] || die "no CA in $ca_dir (run: dev-ca.sh $ca_dir ca)"

    # X.509-SVID leaf profile: not a CA, signature key usage, both TLS roles.
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=serverAuth,clientAuth"
        echo "subjectKeyIdentifier=hash"
        echo "authorityKeyIdentifier=keyid"
        if [ ${#sans[@]} -gt 0 ]; then
            (IFS=,; echo "subjectAltName=${sans[*]}")
        fi
    } >"$tmp/ext.cnf"
    # openssl ca is the 3.0 tool that takes explicit start and end dates.
    touch "$tmp/index.txt"
    cat >"$tmp/ca.cnf" <<EOF
[ca]
default_ca = dev
[dev]
database = $tmp/index.txt
new_certs_dir = $tmp
serial = $tmp/serial
default_md = sha256
policy = any
unique_subject = no
[any]
organizationName = optional
commonName = optional
EOF
    newkey "$tmp/key.pem"
    openssl req -new -key "$tmp/key.pem" -subj "/O=Airlock dev/CN=$name" -out "$tmp/req.pem"
    openssl ca -batch -notext -rand_serial -config "$tmp/ca.cnf" \
        -cert "$ca_dir/ca.pem" -keyfile "$ca_dir/ca.key" \
        -startdate "$(stamp "$start")" -enddate "$(stamp "$end")" \
        -extfile "$tmp/ext.cnf" -in "$tmp/req.pem" -out "$tmp/cert.pem" 2>"$tmp/log" ||
        die "openssl ca failed for $name: $(cat "$tmp/log")"
    # Replace by rename so a reader never sees half a file.
    mv "$tmp/key.pem" "$dir/$name.key"
    chmod 0644 "$tmp/cert.pem"
    mv "$tmp/cert.pem" "$dir/$name.pem"
    ;;
*) die "unknown command $cmd (ca or svid)" ;;
esac
