//! `rswarm init`, `join`, `swarm join-token`, `swarm leave`, `swarm update`: calls to the
//! local daemon (and to the manager for tokens), printed as Docker does.

use clap::{Args, Subcommand};
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::{GetClusterRequest, RotateJoinTokenRequest, UpdateClusterRequest};
use rswarm_proto::daemon::daemon_client::DaemonClient;
use rswarm_proto::daemon::{InfoRequest, InitRequest, JoinRequest, LeaveRequest};
use rswarm_proto::types::{NodeAvailability, NodeRole};

use crate::client::{status_error, ClientOpts, Target};
use crate::duration;

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
    /// Update the swarm
    Update(UpdateArgs),
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Task history retention limit
    #[arg(long, value_name = "int")]
    task_history_limit: Option<String>,
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
            let d = duration::parse(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))?;
            if d.is_zero() {
                anyhow::bail!("--{flag}: must be greater than zero");
            }
            Ok(d.as_nanos() as i64)
        }
    }
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

/// `swarm update`: only the flags given change.
pub async fn update(opts: &ClientOpts, a: UpdateArgs) -> anyhow::Result<()> {
    let Some(limit) = a.task_history_limit.as_deref() else {
        anyhow::bail!("nothing to update: give a setting such as --task-history-limit");
    };
    let req = UpdateClusterRequest {
        task_history_limit_set: true,
        task_history_limit: parse_task_history(limit)?,
    };
    let (ch, _) = opts.connect().await?;
    ControlClient::new(ch)
        .update_cluster(req)
        .await
        .map_err(status_error)?;
    println!("Swarm updated.");
    Ok(())
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
        node_cert_expiry_ns: opt_duration("cert-expiry", &a.cert_expiry)?,
        snapshot_interval: a.snapshot_interval.unwrap_or(0),
        availability: parse_availability(&a.availability)? as i32,
        default_addr_pool: a.default_addr_pool,
        default_addr_pool_mask_length: a.default_addr_pool_mask_length.unwrap_or(0),
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
        SwarmCommand::Update(a) => update(opts, a).await,
    }
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
