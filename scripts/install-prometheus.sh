#!/usr/bin/env bash
# Installs Prometheus and Alertmanager from Debian's packages for the end-to-end test
# (tests/e2e). Idempotent: does nothing when both binaries are already on PATH.
# The test starts its own instances on free loopback ports, so services the packages may
# start on a systemd machine (:9090, :9093) do not get in its way.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if have prometheus && { have prometheus-alertmanager || have alertmanager; }; then
    echo "install-prometheus: prometheus and alertmanager already installed"
    exit 0
fi

if ! have apt-get; then
    echo "install-prometheus: apt-get not found; install prometheus and alertmanager by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then
        SUDO="sudo"
    else
        echo "install-prometheus: not root and no sudo; cannot install packages" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager
prometheus --version 2>&1 | head -1
{ prometheus-alertmanager --version 2>&1 || alertmanager --version 2>&1; } | head -1
