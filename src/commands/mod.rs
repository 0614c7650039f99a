//! One module per subcommand; `dispatch` runs the chosen one and returns
//! the exit code.

pub mod client;
pub mod demo;
pub mod test;

use crate::cli::Command;
use crate::config::{config_path, Config};
use crate::firewall::render_ruleset;

/// Run a subcommand; `Ok(code)` is the exit code, `Err` exits with 2.
pub fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Run(c) => {
            let config = Config::load(&config_path(c.config.as_deref()))?;
            crate::logging::init(&config.log)?;
            let firewall = crate::firewall::open_kernel()?;
            crate::daemon::run(config, firewall, true)?;
            Ok(0)
        }
        Command::Check(c) => {
            let path = config_path(c.config.as_deref());
            let config = Config::load(&path)?;
            println!("{}: OK", path.display());
            println!(
                "logs go to: {}",
                match config.log.target.as_str() {
                    "stderr" => "stderr (under systemd: the journal)".to_string(),
                    "journald" => "the systemd journal (journalctl -t nftban)".to_string(),
                    "syslog" => format!("syslog via {} (facility daemon, tag nftban)", crate::logging::DEV_LOG),
                    path => format!("the file {path}"),
                }
            );
            println!("control socket: {}", config.socket.display());
            for j in &config.jails {
                println!(
                    "jail {}: ruleset {}, {} file(s), ban after {} failures within {} for {}",
                    j.name,
                    j.ruleset,
                    j.files.len(),
                    j.maxretry,
                    crate::config::format_duration(j.findtime),
                    crate::config::format_duration(j.bantime)
                );
            }
            Ok(0)
        }
        Command::Ruleset(c) => {
            let config = Config::load(&config_path(c.config.as_deref()))?;
            print!("{}", render_ruleset(&config.table_spec()));
            Ok(0)
        }
        Command::Status { jail, json, config } => client::status(jail, json, &config),
        Command::Ban {
            addrs,
            jail,
            bantime,
            config,
        } => client::ban(addrs, jail, bantime, &config),
        Command::Unban { addrs, jail, config } => client::unban(addrs, jail, &config),
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
    }
}
