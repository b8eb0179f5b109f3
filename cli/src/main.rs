//! `rswarm`: the node daemon (`rswarm daemon`) and the command-line client
//! for everything else. The binary is thin: commands parse flags, call a
//! daemon's gRPC API and print Docker-style output; the daemon wires the
//! manager and agent crates together.

mod client;
mod commands;
mod compose;
mod daemon;
mod format;
mod registry_auth;
mod servicespec;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "rswarm", version = rswarm_proto::VERSION, about = "A multi-host container orchestrator in the Docker Swarm mould")]
struct Cli {
    /// Daemon to talk to: unix:///path/to.sock or tcp://host:2377. Given
    /// before the subcommand only, as Docker's: `--host` after it is
    /// `service create`'s add-host.
    #[arg(short = 'H', long = "host", env = "RSWARM_HOST", value_name = "HOST")]
    host: Option<String>,
    /// CA certificate for tcp:// hosts
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/rswarm/certificates/ca.crt",
        value_name = "FILE"
    )]
    tlscacert: PathBuf,
    /// Client certificate for tcp:// hosts
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/rswarm/certificates/node.crt",
        value_name = "FILE"
    )]
    tlscert: PathBuf,
    /// Client key for tcp:// hosts
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/rswarm/certificates/node.key",
        value_name = "FILE"
    )]
    tlskey: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node process (agent, and manager on manager nodes)
    Daemon(daemon::DaemonArgs),
    /// Initialize a swarm (same as `swarm init`)
    Init(commands::swarm::InitArgs),
    /// Join a swarm as a node and/or manager (same as `swarm join`)
    Join(commands::swarm::JoinArgs),
    /// Manage the swarm
    #[command(subcommand)]
    Swarm(commands::swarm::SwarmCommand),
    /// Manage swarm nodes
    #[command(subcommand)]
    Node(commands::node::NodeCommand),
    /// Manage services
    #[command(subcommand)]
    Service(commands::service::ServiceCommand),
    /// Manage stacks (applications described in Compose files)
    #[command(subcommand)]
    Stack(commands::stack::StackCommand),
    /// Manage images on the node
    #[command(subcommand)]
    Image(commands::image::ImageCommand),
    /// Execute a command in a running task
    Exec(commands::exec::ExecArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(commands::network::NetworkCommand),
    /// Manage Swarm secrets
    #[command(subcommand)]
    Secret(commands::secret::SecretCommand),
    /// Manage Swarm configs
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Manage the web dashboard served by managers
    #[command(subcommand)]
    Dashboard(commands::dashboard::DashboardCommand),
    /// Manage volumes on the node
    #[command(subcommand)]
    Volume(commands::volume::VolumeCommand),
    /// Get real time events from the swarm
    Events(commands::events::EventsArgs),
    /// Return low-level information on tasks
    Inspect(commands::inspect::InspectArgs),
    /// Log in to a registry
    Login(commands::login::LoginArgs),
    /// Log out from a registry
    Logout(commands::login::LogoutArgs),
    /// Display system-wide information
    Info(commands::system::InfoArgs),
    /// Show the rswarm version information
    Version(commands::system::VersionArgs),
    /// PID 1 of a container started with --init (used inside containers)
    #[command(hide = true)]
    ContainerInit {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => exit_on_usage_error(e),
    };
    let opts = client::ClientOpts {
        host: cli.host,
        tlscacert: cli.tlscacert,
        tlscert: cli.tlscert,
        tlskey: cli.tlskey,
    };
    let result = match cli.command {
        Command::Daemon(args) => daemon::run(args),
        Command::ContainerInit { args } => {
            let args = match args.first().map(String::as_str) {
                Some("--") => args[1..].to_vec(),
                _ => args,
            };
            rswarm_agent::runtime::container_init_main(args)
        }
        other => run_client(opts, other),
    };
    if let Err(e) = result {
        match e.downcast_ref::<compose::Problems>() {
            // Every problem of a Compose file, one line each.
            Some(problems) => problems.0.iter().for_each(|p| eprintln!("{p}")),
            None => eprintln!("{}", one_line(&e)),
        }
        std::process::exit(1);
    }
}

/// Help and version print as clap renders them; a usage error is one line
/// (what is wrong, and where to read more), exit code 2.
fn exit_on_usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let rendered = e.render().to_string();
    let first = first_usage_line(&rendered);
    let usage = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| {
            // The command words, up to the first argument or option.
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['-', '<', '[']))
                .collect::<Vec<_>>()
                .join(" ")
        });
    match usage {
        Some(u) => eprintln!("{first} (see '{u} --help')"),
        None => eprintln!("{first}"),
    }
    std::process::exit(2);
}

/// The line a usage error prints: clap's first line, with the names it lists
/// below that line (the missing arguments) joined onto it, so the message says
/// which argument is missing.
fn first_usage_line(rendered: &str) -> String {
    let mut lines = rendered.lines().skip_while(|l| l.trim().is_empty());
    let first = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .trim_end()
        .to_string();
    if !first.ends_with(':') {
        return first;
    }
    let listed: Vec<&str> = lines
        .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    if listed.is_empty() {
        first
    } else {
        format!("{first} {}", listed.join(", "))
    }
}

/// Errors print as one line: the outermost context and its causes.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = vec![];
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

fn run_client(opts: client::ClientOpts, command: Command) -> anyhow::Result<()> {
    rswarm_proto::identity::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match command {
            Command::Init(a) => commands::swarm::init(&opts, a).await,
            Command::Join(a) => commands::swarm::join(&opts, a).await,
            Command::Swarm(c) => commands::swarm::run(&opts, c).await,
            Command::Node(c) => commands::node::run(&opts, c).await,
            Command::Service(c) => commands::service::run(&opts, c).await,
            Command::Stack(c) => commands::stack::run(&opts, c).await,
            Command::Image(c) => commands::image::run(&opts, c).await,
            Command::Exec(a) => commands::exec::run(&opts, a).await,
            Command::Network(c) => commands::network::run(&opts, c).await,
            Command::Volume(c) => commands::volume::run(&opts, c).await,
            Command::Dashboard(c) => commands::dashboard::run(&opts, c).await,
            Command::Secret(c) => commands::secret::run(&opts, c).await,
            Command::Config(c) => commands::config::run(&opts, c).await,
            Command::Events(a) => commands::events::run(&opts, a).await,
            Command::Inspect(a) => commands::inspect::run(&opts, a).await,
            Command::Login(a) => commands::login::login(&opts, a).await,
            Command::Logout(a) => commands::login::logout(a),
            Command::Info(a) => commands::system::info(&opts, a).await,
            Command::Version(a) => commands::system::version(&opts, a).await,
            Command::Daemon(_) | Command::ContainerInit { .. } => {
                unreachable!("handled before the client runtime")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_error(args: &[&str]) -> String {
        match Cli::try_parse_from(args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(e) => first_usage_line(&e.render().to_string()),
        }
    }

    #[test]
    fn a_missing_argument_is_named() {
        let line = usage_error(&["rswarm", "service", "scale"]);
        assert!(
            line.starts_with("the following required arguments were not provided: <"),
            "{line}"
        );
        let line = usage_error(&["rswarm", "network", "create"]);
        assert!(line.contains("<NAME>"), "{line}");
        let line = usage_error(&["rswarm", "node", "ls", "--nope"]);
        assert!(line.contains("'--nope'"), "{line}");
    }

    #[test]
    fn the_daemon_address_comes_before_the_subcommand() {
        let cli = Cli::try_parse_from(["rswarm", "-H", "unix:///x.sock", "node", "ls"])
            .expect("-H before the subcommand");
        assert_eq!(cli.host.as_deref(), Some("unix:///x.sock"));
        // After it, -H is not the daemon's address...
        let line = usage_error(&["rswarm", "node", "ls", "-H", "unix:///x.sock"]);
        assert!(line.contains("'-H'"), "{line}");
        // ...and `service create --host` is Docker's add-host.
        let cli = Cli::try_parse_from([
            "rswarm",
            "service",
            "create",
            "--host",
            "db:10.0.0.9",
            "busybox",
        ])
        .expect("--host of service create");
        assert_eq!(cli.host, None);
    }
}
