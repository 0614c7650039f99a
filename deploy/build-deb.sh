#!/usr/bin/env bash
# Build the Debian package: target/debian/nftban_<version>_<arch>.deb.
# Installs the binary, the systemd unit (enabled, not started: edit
# /etc/nftban/nftban.yaml first, then `systemctl start nftban`), the default
# config as a conffile, and the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo deb --locked "$@"
ls -l target/debian/*.deb
