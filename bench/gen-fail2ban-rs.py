#!/usr/bin/env python3
"""Write bench/fail2ban-rs/NAME.toml: a fail2ban-rs jail with the failregexes of
nftban's shipped ruleset NAME, so the benchmark compares the same rules.
Usage: python3 bench/gen-fail2ban-rs.py   (needs python3-yaml)"""
import os
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
for name, log, fmt in [("asterisk", "/var/log/asterisk/messages", "iso8601"), ("sshd", "/var/log/auth.log", "syslog")]:
    rs = yaml.safe_load(open(os.path.join(HERE, "..", "rulesets", name + ".yaml")))
    out = [
        f"# fail2ban-rs config with one jail using the same rules as nftban's shipped `{name}`",
        "# ruleset (its failregex bodies; fail2ban-rs has no prefix, so they are unanchored at",
        f"# the start, as fail2ban-rs filters are). Generated from rulesets/{name}.yaml by",
        "# bench/gen-fail2ban-rs.py for bench/detection.sh; regenerate after changing it.",
        "[global]",
        'state_file = "/tmp/nftban-bench-fail2ban-rs.state"',
        'socket_path = "/tmp/nftban-bench-fail2ban-rs.sock"',
        "",
        f"[jail.{name}]",
        "enabled = true",
        f'log_path = "{log}"',
        f'date_format = "{fmt}"',
        "filter = [",
    ]
    for r in rs["failregex"]:
        assert "'''" not in r
        out.append(f"    '''{r}''',")
    out += ["]", "max_retry = 5", 'find_time = "10m"', 'ban_time = "1h"', 'backend = "nftables"', ""]
    with open(os.path.join(HERE, "fail2ban-rs", name + ".toml"), "w") as f:
        f.write("\n".join(out))
