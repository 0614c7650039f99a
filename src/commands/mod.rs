//! One module per subcommand; `dispatch` runs the chosen one and returns
//! the exit code.

/// `print!` to stdout that returns the error instead of panicking: when
/// the reader went away (`nftban status --json | head`), the command ends
/// and `main` exits quietly ([`broken_pipe`]).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($t)*)
    }};
}

/// `println!` that returns the error instead of panicking (see `out!`).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*)
    }};
}

mod asking;
pub mod check;
pub mod client;
pub mod demo;
pub mod events;
pub mod generate;
pub mod import;
pub mod status;
pub mod test;

use crate::cli::Command;
use crate::config::{config_path, Config};
use crate::firewall::render_ruleset;

/// Run a subcommand; `Ok(code)` is the exit code, `Err` exits with 2.
pub fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run(c) => {
            // Everything the daemon creates (ban history, pending file, log
            // file, their folders) is its own: no umask it was started
            // with may open them to other users. The store also creates
            // its files with explicit modes (store::files).
            // SAFETY: umask(2) only swaps the process's mask; it cannot fail.
            unsafe { libc::umask(0o077) };
            let config = Config::load(&config_path(c.config.as_deref()))?;
            crate::logging::init(&config.log)?;
            let firewall = crate::firewall::open_kernel()?;
            crate::daemon::run(config, firewall)?;
            Ok(0)
        }
        Command::Reload { config, json } => client::reload(json, &config),
        Command::Check { config, json } => check::run(&config, json),
        Command::ImportFail2ban {
            dir,
            output,
            force,
            json,
        } => import::run(&dir, &output, force, json),
        Command::Events { json, jail, config } => events::events(json, jail, &config),
        Command::Ruleset(c) => {
            let config = Config::load(&config_path(c.config.as_deref()))?;
            out!("{}", render_ruleset(&config.table_spec()))?;
            Ok(0)
        }
        Command::Status {
            jail,
            json,
            watch,
            interval,
            config,
        } => {
            let watch = match watch {
                true => Some(crate::config::parse_duration(&interval).map_err(|e| anyhow::anyhow!("--interval: {e}"))?),
                false => None,
            };
            status::status(jail, json, watch, &config)
        }
        Command::Ban {
            addrs,
            jail,
            bantime,
            force,
            json,
            config,
        } => client::ban(addrs, jail, bantime, force, json, &config),
        Command::Unban {
            addrs,
            jail,
            json,
            config,
        } => client::unban(addrs, jail, json, &config),
        Command::Test {
            log,
            rule,
            json,
            print_missed,
            print_matched,
        } => test::run(
            &log,
            &rule,
            test::Output {
                json,
                print_missed,
                print_matched,
            },
        ),
        Command::Demo => demo::run(),
        Command::Teardown(c) => teardown(&c),
        Command::Generate { what } => generate::run(what),
    }
}

/// `nftban teardown`: the table named in the config deleted from the kernel
/// (exit 0), or none there (exit 1). A running daemon would put it straight
/// back (it heals deletions by other tools) and would then believe bans the
/// kernel no longer holds: while its socket answers, nothing is deleted.
fn teardown(c: &crate::cli::ConfigArg) -> anyhow::Result<u8> {
    let path = config_path(c.config.as_deref());
    let config = Config::load(&path)?;
    if std::os::unix::net::UnixStream::connect(&config.socket).is_ok() {
        anyhow::bail!(
            "the daemon is running (it answers on {}): stop it first (systemctl stop nftban), \
             or it would create table inet {} again",
            config.socket.display(),
            config.table_spec().table
        );
    }
    let table = config.table_spec().table;
    let mut firewall = crate::firewall::netlink::Netlink::open()?;
    if firewall.remove_table(&table)? {
        outln!("table inet {table} deleted")?;
        Ok(0)
    } else {
        outln!("table inet {table} is not there")?;
        Ok(1)
    }
}

/// Whether `err` is stdout's reader gone away (`| head`, `| grep -q`):
/// not a failure of the command, which said all anyone will read.
pub fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
