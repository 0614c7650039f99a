//! Command-line arguments (clap). Each subcommand maps to a function in
//! `commands/`; exit codes are fixed: 0 done, 1 nothing to do or nothing
//! found, 2 error.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nftban",
    version,
    about = "Ban hosts that attack your services, in nftables sets over netlink",
    long_about = "nftban watches logs (Asterisk, SSH, ...), counts authentication failures per address, \
and bans offenders by putting them into nftables sets, each element with its own timeout, over netlink. \
Bans live in the kernel: they expire there even if nftban is stopped, and survive its restart.\n\n\
Start with `nftban demo` (as root) to see it work in a private network namespace.",
    after_help = "Exit codes: 0 done, 1 nothing done or nothing found, 2 error.\n\
Client commands (status, ban, unban, events) find the daemon's socket from --config, $NFTBAN_CONFIG, or /etc/nftban/nftban.yaml."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `--config FILE`, shared by the commands that read the config.
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Config file [default: $NFTBAN_CONFIG or /etc/nftban/nftban.yaml]
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (as systemd does)
    Run(ConfigArg),
    /// Show jails: failures, bans with time left, and why a jail sees nothing
    Status {
        /// One jail (all when omitted)
        jail: Option<String>,
        /// Print JSON (stable field names, see docs/cli.md)
        #[arg(long)]
        json: bool,
        /// Show it again every --interval until interrupted (in place on a
        /// terminal; one block per refresh otherwise)
        #[arg(long, short = 'w')]
        watch: bool,
        /// Time between refreshes with --watch, at least 1s, e.g. 2s, 1m
        #[arg(long, value_name = "DUR", default_value = "2s", requires = "watch")]
        interval: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Ban addresses or prefixes by hand (`-` reads them from stdin)
    Ban {
        /// ADDR or ADDR/PREFIX, e.g. 203.0.113.7 2001:db8::/64
        #[arg(required = true, value_name = "ADDR[/PREFIX]")]
        addrs: Vec<String>,
        /// Jail whose sets get the ban
        #[arg(long, short = 'j', default_value = "manual")]
        jail: String,
        /// How long, e.g. 90s, 10m, 1h, 1d [default: the jail's bantime]
        #[arg(long, short = 't', value_name = "DUR")]
        bantime: Option<String>,
        /// Ban also what overlaps the jail's ignoreip (never loopback, multicast,
        /// 0.0.0.0/8, 255.255.255.255, ::, nor a prefix holding one)
        #[arg(long)]
        force: bool,
        /// Print each request's answer as one line of JSON (docs/cli.md)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Lift bans, from one jail or from all (`-` reads addresses from stdin)
    Unban {
        #[arg(required = true, value_name = "ADDR[/PREFIX]")]
        addrs: Vec<String>,
        /// Only this jail (all jails when omitted)
        #[arg(long, short = 'j')]
        jail: Option<String>,
        /// Print each request's answer as one line of JSON (docs/cli.md)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Follow bans, unbans and expiries as they happen, until interrupted
    Events {
        /// Print one JSON object per line (stable field names, see docs/cli.md)
        #[arg(long)]
        json: bool,
        /// Only this jail's events
        #[arg(long, short = 'j')]
        jail: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Try a rule on a log, like fail2ban-regex; needs no daemon and no root
    Test {
        /// Log file, or `-` for stdin
        log: PathBuf,
        /// A regex with <HOST>, a shipped ruleset name (asterisk, sshd, sshd-aggressive, kamailio,
        /// freeswitch, postfix, dovecot, nginx), a ruleset YAML file, or a fail2ban filter
        /// (`/etc/fail2ban/filter.d/sshd.conf`, with options: `FILE.conf[mode=aggressive]`)
        rule: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Print the lines no rule matched
        #[arg(long)]
        print_missed: bool,
        /// Print the lines that matched
        #[arg(long)]
        print_matched: bool,
    },
    /// Make the daemon re-read its config: a bad one is refused with its error and
    /// the running one stays; a good one is applied as a whole (bans are kept)
    Reload {
        /// Print the daemon's answer as JSON (docs/cli.md)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the config and its rulesets; errors name file, line and column;
    /// warns (exit code unchanged) about what the daemon would not see or trip on
    Check {
        /// Print the warnings and the summary as JSON (docs/cli.md)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the nftables ruleset nftban would create, in nft syntax
    Ruleset(ConfigArg),
    /// Turn a fail2ban configuration (jail.conf, jail.d, jail.local,
    /// filter.d) into an nftban config for its enabled jails, and list
    /// every setting not carried over and why
    #[command(name = "import-fail2ban")]
    ImportFail2ban {
        /// The fail2ban folder, e.g. /etc/fail2ban
        dir: PathBuf,
        /// Folder to write nftban.yaml, import-report.txt and the filters
        /// (filter.d/) into; created if missing
        #[arg(long, short = 'o', value_name = "OUTDIR")]
        output: PathBuf,
        /// Write into a folder that is not empty (the import's own files
        /// are replaced, others left alone)
        #[arg(long)]
        force: bool,
        /// Print what was imported and not carried over as JSON (docs/cli.md)
        #[arg(long)]
        json: bool,
    },
    /// Show nftban at work in private network namespaces (needs root): Asterisk
    /// attack lines in, the attacker's packets dropped, then unbanned
    Demo,
    /// Delete nftban's table (every ban, and the SIP meter) from the kernel;
    /// refused while the daemon runs. The Debian package runs it on removal
    Teardown(ConfigArg),
    /// Write the man pages or a shell completion script (for packagers).
    ///
    /// A subcommand rather than a build.rs: the pages and scripts come from
    /// the very `Cli` the shipped binary parses with, and a build script
    /// could only write them into Cargo's hashed OUT_DIR, where cargo-deb's
    /// fixed asset paths cannot find them.
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

/// What `nftban generate` writes.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// One man page per command into DIR: nftban.1, nftban-status.1, ...
    Man {
        /// Folder to write the pages into (created if missing)
        dir: PathBuf,
    },
    /// The completion script of SHELL, on stdout
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}
