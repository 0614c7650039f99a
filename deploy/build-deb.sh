#!/usr/bin/env bash
# Build the Debian package: target/debian/nftban_<version>_<arch>.deb.
# Installs the binary (stripped), the systemd unit (enabled, not started:
# edit /etc/nftban/nftban.yaml first, then `systemctl start nftban`), the
# default config as a conffile, man pages for every command, bash, zsh and
# fish completions, and the docs. deploy/README.md has the details.
#
# Arguments go to `cargo build` (e.g. --features ...). Needs cargo-deb
# (installed here when missing); gzip and strip come from the system.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release --locked "$@"

# The man pages and completions come from the very binary being packaged
# (`nftban generate`, a hidden subcommand), so they list exactly its
# commands and flags.
gen=target/generated
rm -rf "$gen"
mkdir -p "$gen/completions"
target/release/nftban generate man "$gen/man" >/dev/null
target/release/nftban generate completions bash >"$gen/completions/nftban.bash"
target/release/nftban generate completions zsh >"$gen/completions/_nftban"
target/release/nftban generate completions fish >"$gen/completions/nftban.fish"

# --strip: the release profile keeps debug info (debug = 1) for the
# benchmarks' profiles; the package ships the binary without it (about
# 40 MB less: 8 MB shipped).
cargo deb --locked --no-build --strip
ls -l target/debian/*.deb
