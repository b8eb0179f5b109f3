//! `rswarm init`, `join`, `swarm join-token`, `swarm leave`, `swarm ca`,
//! `swarm update` (`--task-history-limit`, `--cert-expiry`, `--autolock`) and autolock's
//! `swarm unlock`, `swarm unlock-key`: calls to the
//! local daemon (and to the manager for tokens), printed as Docker does.

use clap::{Args, Subcommand};
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::{
    GetClusterRequest, RotateJoinTokenRequest, RotateRootCaRequest, UpdateClusterRequest,
};
use rswarm_proto::daemon::daemon_client::DaemonClient;
use rswarm_proto::daemon::{
    InfoRequest, InitRequest, JoinRequest, LeaveRequest, UnlockKeyRequest, UnlockRequest,
    UpdateAutolockRequest,
};
use rswarm_proto::types::{NodeAvailability, NodeRole};

use crate::client::{status_error, ClientOpts, Target};
use rswarm_proto::spec::units::parse_duration;

#[derive(Subcommand, Debug)]
pub enum SwarmCommand {
    /// Initialize a swarm
    Init(InitArgs),
    /// Join a swarm as a node and/or manager
    Join(JoinArgs),
    /// Manage join tokens
    JoinToken(JoinTokenArgs),
    /// Leave the swarm
    Leave(LeaveArgs),
    /// Display and rotate the root CA
    Ca(CaArgs),
    /// Unlock swarm
    Unlock,
    /// Manage the unlock key
    UnlockKey(UnlockKeyArgs),
    /// Update the swarm
    Update(UpdateArgs),
}

#[derive(Args, Debug)]
pub struct CaArgs {
    /// Rotate the swarm CA - if no certificate or key are provided, new ones will be generated
    #[arg(long)]
    rotate: bool,
    /// Exit immediately instead of waiting for the root rotation to converge
    #[arg(short, long)]
    detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct UnlockKeyArgs {
    /// Only display the key
    #[arg(short, long)]
    quiet: bool,
    /// Rotate the unlock key
    #[arg(long)]
    rotate: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Change manager autolocking setting (true|false)
    #[arg(long, value_name = "true|false", num_args = 0..=1, default_missing_value = "true")]
    autolock: Option<bool>,
    /// Task history retention limit
    #[arg(long, value_name = "int")]
    task_history_limit: Option<String>,
    /// Validity period for node certificates (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION")]
    cert_expiry: Option<String>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Advertised address (format: <ip>[:port])
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Listen address (format: <ip>[:port])
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: String,
    /// Force create a new cluster from current state
    #[arg(long)]
    force_new_cluster: bool,
    /// Dispatcher heartbeat period (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION")]
    dispatcher_heartbeat: Option<String>,
    /// Validity period for node certificates (ns|us|ms|s|m|h)
    #[arg(long, value_name = "DURATION")]
    cert_expiry: Option<String>,
    /// Number of log entries between Raft snapshots
    #[arg(long)]
    snapshot_interval: Option<u64>,
    /// Availability of the node ("active"|"pause"|"drain")
    #[arg(long, default_value = "active")]
    availability: String,
    /// Default address pool in CIDR format (repeatable)
    #[arg(long = "default-addr-pool", value_name = "CIDR")]
    default_addr_pool: Vec<String>,
    /// Default address pool subnet mask length
    #[arg(long = "default-addr-pool-mask-length", value_name = "uint32")]
    default_addr_pool_mask_length: Option<u32>,
    /// Enable manager autolocking (requiring an unlock key to start a stopped manager)
    #[arg(long)]
    autolock: bool,
    /// Task history retention limit (default 5)
    #[arg(long, value_name = "int")]
    task_history_limit: Option<String>,
}

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Token for entry into the swarm
    #[arg(long)]
    token: String,
    /// Advertised address (format: <ip>[:port])
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Listen address (format: <ip>[:port])
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: String,
    /// Availability of the node ("active"|"pause"|"drain")
    #[arg(long, default_value = "active")]
    availability: String,
    /// Address of a manager: HOST:PORT
    remote: String,
}

#[derive(Args, Debug)]
pub struct JoinTokenArgs {
    /// Only display token
    #[arg(short, long)]
    quiet: bool,
    /// Rotate join token
    #[arg(long)]
    rotate: bool,
    /// worker or manager
    role: String,
}

#[derive(Args, Debug)]
pub struct LeaveArgs {
    /// Force this node to leave the swarm, ignoring warnings
    #[arg(short, long)]
    force: bool,
}

pub fn parse_availability(s: &str) -> anyhow::Result<NodeAvailability> {
    match s.to_ascii_lowercase().as_str() {
        "active" => Ok(NodeAvailability::Active),
        "pause" => Ok(NodeAvailability::Pause),
        "drain" => Ok(NodeAvailability::Drain),
        _ => anyhow::bail!("invalid availability {s:?}: must be one of active, pause, drain"),
    }
}

fn opt_duration(flag: &str, v: &Option<String>) -> anyhow::Result<i64> {
    match v {
        None => Ok(0),
        Some(s) => {
            let d = parse_duration(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))?;
            if d.is_zero() {
                anyhow::bail!("--{flag}: must be greater than zero");
            }
            Ok(d.as_nanos() as i64)
        }
    }
}

/// `--cert-expiry`: a duration of at least a minute (0: not given).
fn cert_expiry(v: &Option<String>) -> anyhow::Result<i64> {
    let Some(s) = v else {
        return Ok(0);
    };
    let d = parse_duration(s).map_err(|e| anyhow::anyhow!("--cert-expiry: {e}"))?;
    rswarm_manager::certificates::check_cert_expiry(d)
        .map_err(|e| anyhow::anyhow!("--cert-expiry: {e}"))
}

async fn daemon_client(
    opts: &ClientOpts,
) -> anyhow::Result<DaemonClient<tonic::transport::Channel>> {
    let (ch, target) = opts.connect().await?;
    if let Target::Tcp(_) = target {
        anyhow::bail!(
            "init, join and leave are calls to the local daemon: use its unix socket, not {}",
            target.display()
        );
    }
    Ok(DaemonClient::new(ch))
}

pub async fn init(opts: &ClientOpts, a: InitArgs) -> anyhow::Result<()> {
    let task_history = a
        .task_history_limit
        .as_deref()
        .map(parse_task_history)
        .transpose()?;
    let req = InitRequest {
        advertise_addr: a.advertise_addr.unwrap_or_default(),
        listen_addr: a.listen_addr,
        force_new_cluster: a.force_new_cluster,
        heartbeat_period_ns: opt_duration("dispatcher-heartbeat", &a.dispatcher_heartbeat)?,
        node_cert_expiry_ns: cert_expiry(&a.cert_expiry)?,
        snapshot_interval: a.snapshot_interval.unwrap_or(0),
        availability: parse_availability(&a.availability)? as i32,
        default_addr_pool: a.default_addr_pool,
        default_addr_pool_mask_length: a.default_addr_pool_mask_length.unwrap_or(0),
        autolock: a.autolock,
        task_history_limit_set: task_history.is_some(),
        task_history_limit: task_history.unwrap_or(0),
    };
    let resp = daemon_client(opts)
        .await?
        .init(req)
        .await
        .map_err(status_error)?
        .into_inner();
    println!(
        "Swarm initialized: current node ({}) is now a manager.\n",
        resp.node_id
    );
    print!(
        "{}",
        join_instructions("worker", &resp.worker_token, &resp.manager_addr)
    );
    println!("To add a manager to this swarm, run 'rswarm swarm join-token manager' and follow the instructions.\n");
    if !resp.unlock_key.is_empty() {
        print!("{}", unlock_instructions(&resp.unlock_key));
    }
    Ok(())
}

/// Docker's words around an unlock key.
fn unlock_instructions(key: &str) -> String {
    format!(
        "To unlock a swarm manager after it restarts, run the `rswarm swarm unlock`\n\
         command and provide the following key:\n\n    {key}\n\n\
         Please remember to store this key in a password manager, since without it you\n\
         will not be able to restart the manager.\n"
    )
}

/// The unlock key: prompted for (without echo) on a terminal, else the first
/// line of stdin.
fn read_unlock_key() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Read, Write};
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        print!("Enter unlock key: ");
        std::io::stdout().flush()?;
        let fd = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(&fd).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet
                .local_flags
                .remove(nix::sys::termios::LocalFlags::ECHO);
            let _ = nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, &quiet);
        }
        let read = stdin.lock().read_line(&mut line);
        if let Some(t) = &saved {
            let _ = nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, t);
        }
        println!();
        read?;
    } else {
        // Bounded: a key is ~60 bytes.
        stdin.lock().take(4096).read_line(&mut line)?;
    }
    let key = line.trim().to_string();
    if key.is_empty() {
        anyhow::bail!("no unlock key given (type it, or pipe it to stdin)");
    }
    Ok(key)
}

async fn unlock(opts: &ClientOpts) -> anyhow::Result<()> {
    let unlock_key = read_unlock_key()?;
    daemon_client(opts)
        .await?
        .unlock(UnlockRequest { unlock_key })
        .await
        .map_err(status_error)?;
    Ok(())
}

async fn unlock_key(opts: &ClientOpts, a: UnlockKeyArgs) -> anyhow::Result<()> {
    let key = daemon_client(opts)
        .await?
        .unlock_key(UnlockKeyRequest { rotate: a.rotate })
        .await
        .map_err(status_error)?
        .into_inner()
        .unlock_key;
    if a.quiet {
        println!("{key}");
        return Ok(());
    }
    if a.rotate {
        println!("Successfully rotated manager unlock key.\n");
    }
    print!("{}", unlock_instructions(&key));
    Ok(())
}

/// `--task-history-limit`: a whole number within the manager's bound.
fn parse_task_history(v: &str) -> anyhow::Result<u32> {
    let n: u32 = v.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid argument {v:?} for \"--task-history-limit\" flag: must be a whole number from 0 to {}",
            rswarm_manager::controlapi::limits::MAX_TASK_HISTORY
        )
    })?;
    rswarm_manager::controlapi::limits::check_task_history(n).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `swarm update`: only the flags given change. Every value is checked before
/// anything is changed.
async fn update(opts: &ClientOpts, a: UpdateArgs) -> anyhow::Result<()> {
    if a.autolock.is_none() && a.task_history_limit.is_none() && a.cert_expiry.is_none() {
        anyhow::bail!(
            "nothing to update: give a setting such as --task-history-limit, --cert-expiry or --autolock=true|false"
        );
    }
    let history = a
        .task_history_limit
        .as_deref()
        .map(parse_task_history)
        .transpose()?;
    let node_cert_expiry_ns = cert_expiry(&a.cert_expiry)?;
    if history.is_some() || node_cert_expiry_ns != 0 {
        let (ch, _) = opts.connect().await?;
        ControlClient::new(ch)
            .update_cluster(UpdateClusterRequest {
                task_history_limit_set: history.is_some(),
                task_history_limit: history.unwrap_or(0),
                node_cert_expiry_ns,
            })
            .await
            .map_err(status_error)?;
    }
    let mut key = String::new();
    if let Some(autolock) = a.autolock {
        key = daemon_client(opts)
            .await?
            .update_autolock(UpdateAutolockRequest { autolock })
            .await
            .map_err(status_error)?
            .into_inner()
            .unlock_key;
    }
    println!("Swarm updated.");
    if !key.is_empty() {
        print!("{}", unlock_instructions(&key));
    }
    Ok(())
}

pub async fn join(opts: &ClientOpts, a: JoinArgs) -> anyhow::Result<()> {
    let req = JoinRequest {
        remote_addr: a.remote,
        token: a.token,
        advertise_addr: a.advertise_addr.unwrap_or_default(),
        listen_addr: a.listen_addr,
        availability: parse_availability(&a.availability)? as i32,
    };
    let resp = daemon_client(opts)
        .await?
        .join(req)
        .await
        .map_err(status_error)?
        .into_inner();
    if resp.role == NodeRole::Manager as i32 {
        println!("This node joined a swarm as a manager.");
    } else {
        println!("This node joined a swarm as a worker.");
    }
    Ok(())
}

fn join_instructions(role: &str, token: &str, addr: &str) -> String {
    format!("To add a {role} to this swarm, run the following command:\n\n    rswarm join --token {token} {addr}\n\n")
}

pub async fn run(opts: &ClientOpts, cmd: SwarmCommand) -> anyhow::Result<()> {
    match cmd {
        SwarmCommand::Init(a) => init(opts, a).await,
        SwarmCommand::Join(a) => join(opts, a).await,
        SwarmCommand::Leave(a) => {
            daemon_client(opts)
                .await?
                .leave(LeaveRequest { force: a.force })
                .await
                .map_err(status_error)?;
            println!("Node left the swarm.");
            Ok(())
        }
        SwarmCommand::JoinToken(a) => join_token(opts, a).await,
        SwarmCommand::Ca(a) => ca(opts, a).await,
        SwarmCommand::Unlock => unlock(opts).await,
        SwarmCommand::UnlockKey(a) => unlock_key(opts, a).await,
        SwarmCommand::Update(a) => update(opts, a).await,
    }
}

/// `swarm ca`: print the root CA certificate; with `--rotate`, start a root
/// rotation and (unless `--detach`) wait until every node has a certificate
/// from the new root and the old one is gone, showing progress as Docker does.
async fn ca(opts: &ClientOpts, a: CaArgs) -> anyhow::Result<()> {
    if !a.rotate && a.detach {
        anyhow::bail!("--detach is only applicable when rotating the CA (--rotate)");
    }
    let (ch, _) = opts.connect().await?;
    let mut control = ControlClient::new(ch);
    if !a.rotate {
        let cluster = control
            .get_cluster(GetClusterRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        print!("{}", root_pem(&cluster));
        return Ok(());
    }
    let started = control
        .rotate_root_ca(RotateRootCaRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if a.detach {
        return Ok(());
    }
    let key_id = started
        .root_ca
        .as_ref()
        .map(|r| r.rotation_key_id.clone())
        .unwrap_or_default();
    let new_root = started
        .root_ca
        .as_ref()
        .map(|r| r.rotation_ca_cert_pem.clone())
        .unwrap_or_default();
    let mut last = None;
    loop {
        let nodes = crate::commands::lists::all_nodes(&mut control).await?;
        let done = nodes
            .iter()
            .filter(|n| {
                n.description
                    .as_ref()
                    .and_then(|d| d.tls_info.as_ref())
                    .is_some_and(|t| t.cert_issuer_key_id == key_id)
            })
            .count();
        let cluster = control
            .get_cluster(GetClusterRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        let root = cluster.root_ca.clone().unwrap_or_default();
        let finished = root.rotation_ca_cert_pem.is_empty();
        if !a.quiet && last != Some((done, nodes.len(), finished)) {
            println!(
                "rotated TLS certificates: {} {done}/{} nodes",
                progress_bar(done, nodes.len()),
                nodes.len()
            );
            println!(
                "rotated CA certificates: {} {}/1",
                progress_bar(usize::from(finished), 1),
                usize::from(finished)
            );
            last = Some((done, nodes.len(), finished));
        }
        if finished {
            if root.ca_cert_pem != new_root {
                anyhow::bail!(
                    "the root CA rotation was replaced by another one before it finished"
                );
            }
            print!("{}", root_pem(&cluster));
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn root_pem(cluster: &rswarm_proto::types::Cluster) -> String {
    let pem = cluster
        .root_ca
        .as_ref()
        .map(|r| r.ca_cert_pem.trim_end().to_string())
        .unwrap_or_default();
    format!("{pem}\n")
}

/// A 50-column bar as Docker's progress shows: `[=====>     ]`.
fn progress_bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 50;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(0).min(WIDTH);
    let arrow = if filled > 0 && filled < WIDTH {
        ">"
    } else {
        ""
    };
    let equals = if arrow.is_empty() { filled } else { filled - 1 };
    format!(
        "[{}{arrow}{}]",
        "=".repeat(equals),
        " ".repeat(WIDTH - equals - arrow.len())
    )
}

async fn join_token(opts: &ClientOpts, a: JoinTokenArgs) -> anyhow::Result<()> {
    let worker = match a.role.as_str() {
        "worker" => true,
        "manager" => false,
        other => anyhow::bail!("unknown role {other}: use worker or manager"),
    };
    let (ch, target) = opts.connect().await?;
    let mut control = ControlClient::new(ch.clone());
    if a.rotate {
        control
            .rotate_join_token(RotateJoinTokenRequest {
                worker,
                manager: !worker,
            })
            .await
            .map_err(status_error)?;
        if !a.quiet {
            println!("Successfully rotated {} join token.\n", a.role);
        }
    }
    let cluster = control
        .get_cluster(GetClusterRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let tokens = cluster
        .root_ca
        .and_then(|c| c.join_tokens)
        .unwrap_or_default();
    let token = if worker {
        tokens.worker
    } else {
        tokens.manager
    };
    if a.quiet {
        println!("{token}");
        return Ok(());
    }
    let addr = match target {
        Target::Unix(_) => {
            DaemonClient::new(ch)
                .info(InfoRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .node_addr
        }
        Target::Tcp(a) => a,
    };
    print!("{}", join_instructions(&a.role, &token, &addr));
    Ok(())
}

#[cfg(test)]
mod ca_tests {
    use super::progress_bar;

    #[test]
    fn the_progress_bar_fills_as_docker_draws_it() {
        assert_eq!(progress_bar(0, 3), format!("[{}]", " ".repeat(50)));
        assert_eq!(progress_bar(3, 3), format!("[{}]", "=".repeat(50)));
        let third = progress_bar(1, 3);
        assert_eq!(third.len(), 52);
        // 50 / 3 = 16 columns done: 15 `=` and the arrow head.
        assert_eq!(
            third,
            format!("[{}>{}]", "=".repeat(15), " ".repeat(34)),
            "{third}"
        );
        assert_eq!(progress_bar(0, 0), format!("[{}]", " ".repeat(50)));
    }
}

#[cfg(test)]
mod history_tests {
    use super::parse_task_history;

    #[test]
    fn task_history_limit_is_a_bounded_whole_number() {
        assert_eq!(parse_task_history("0").ok(), Some(0));
        assert_eq!(parse_task_history("5").ok(), Some(5));
        let msg = |v| parse_task_history(v).map_err(|e| e.to_string()).err();
        assert_eq!(
            msg("101").as_deref(),
            Some("task history limit 101 is over the limit of 100")
        );
        assert_eq!(
            msg("-1").as_deref(),
            Some("invalid argument \"-1\" for \"--task-history-limit\" flag: must be a whole number from 0 to 100")
        );
    }
}

#[cfg(test)]
mod cert_expiry_tests {
    use super::cert_expiry;

    #[test]
    fn cert_expiry_is_a_duration_of_at_least_a_minute() {
        assert_eq!(cert_expiry(&None).ok(), Some(0));
        assert_eq!(cert_expiry(&Some("1m".into())).ok(), Some(60_000_000_000));
        assert_eq!(
            cert_expiry(&Some("2160h".into())).ok(),
            Some(2160 * 3600 * 1_000_000_000)
        );
        let msg = |v: &str| {
            cert_expiry(&Some(v.into()))
                .map_err(|e| e.to_string())
                .err()
        };
        assert_eq!(
            msg("30s").as_deref(),
            Some("--cert-expiry: certificate expiry 30s is too short: it must be at least 60s")
        );
        assert!(msg("soon").is_some_and(|m| m.starts_with("--cert-expiry: invalid duration")));
    }
}
