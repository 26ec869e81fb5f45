#!/bin/sh
# Entry point of the seaweedfs-s3 service: writes the S3 identities file from the
# environment, then hands over to the image's own /entrypoint.sh (`weed s3 ...`).
#
# /etc/seaweedfs is a tmpfs in docker/compose.yaml, so the generated file, which holds the
# secret key, lives in memory only and is rewritten from the environment on every start.
# An operator who manages identities (several users, per-bucket actions) bind-mounts their
# own file at /etc/seaweedfs/identities.json instead; it is then used as it is.
# The format is SeaweedFS's -config file, the same one datong writes for the embedded store.
set -eu

config=/etc/seaweedfs/identities.json

if [ ! -s "$config" ]; then
    access_key="${DATONG_S3_ACCESS_KEY:?DATONG_S3_ACCESS_KEY is not set}"
    secret_key="${DATONG_S3_SECRET_KEY:?DATONG_S3_SECRET_KEY is not set}"
    case "$access_key$secret_key" in
        *change-me*)
            echo "s3-entrypoint: replace the change-me placeholders in docker/.env" >&2
            exit 1
            ;;
    esac
    # The keys go into JSON unescaped: allow only characters that need no escaping.
    case "$access_key$secret_key" in
        *[!A-Za-z0-9+/=_.-]*)
            echo "s3-entrypoint: S3 keys may contain only letters, digits and + / = _ . -" >&2
            exit 1
            ;;
    esac
    umask 077
    printf '{"identities":[{"name":"datong-admin","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
        "$access_key" "$secret_key" > "$config"
    # Started as root, the image's entrypoint drops to the seaweed user: let it read the file.
    if [ "$(id -u)" = 0 ] && id seaweed >/dev/null 2>&1; then
        chown seaweed "$config"
    fi
fi

exec /entrypoint.sh "$@"
