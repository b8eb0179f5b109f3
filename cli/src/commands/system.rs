//! `rswarm info` and `rswarm version`.

use clap::Args;
use rswarm_proto::daemon::daemon_client::DaemonClient;
use rswarm_proto::daemon::{InfoRequest, InfoResponse};
use rswarm_proto::types::NodeRole;
use serde_json::json;

use crate::client::{status_error, ClientOpts};
use crate::format;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format output using a Go template, or "json"
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format output using a Go template, or "json"
    #[arg(short, long)]
    format: Option<String>,
}

/// The info answer in the shape of Docker's `docker info --format` fields.
fn info_json(i: &InfoResponse) -> serde_json::Value {
    let raft = i.raft.clone().unwrap_or_default();
    json!({
        "Name": i.node_name,
        "ServerVersion": i.version,
        "DataDir": i.data_dir,
        "Swarm": {
            "NodeID": i.node_id,
            "NodeAddr": i.node_addr,
            "LocalNodeState": i.local_node_state,
            "ControlAvailable": i.control_available,
            "Error": i.error,
            "Cluster": { "ID": i.cluster_id },
            "Nodes": i.nodes,
            "Managers": i.manager_count,
            "RemoteManagers": i.managers.iter().map(|m| json!({"NodeID": m.node_id, "Addr": m.addr})).collect::<Vec<_>>(),
            "CertExpiresAt": i.cert_expires_at,
            "Raft": {
                "ID": raft.raft_id,
                "State": raft.state,
                "Term": raft.term,
                "Leader": raft.leader_raft_id,
                "LastLogIndex": raft.last_log_index,
                "Applied": raft.last_applied,
                "SnapshotIndex": raft.snapshot_index,
                "Voters": raft.voters,
                "Learners": raft.learners,
            },
        },
    })
}

pub async fn info(opts: &ClientOpts, a: InfoArgs) -> anyhow::Result<()> {
    let (ch, _) = opts.connect().await?;
    let i = DaemonClient::new(ch)
        .info(InfoRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(f) = &a.format {
        let v = info_json(&i);
        if f == "json" {
            println!("{v}");
        } else {
            println!("{}", format::template::render(f, &v)?);
        }
        return Ok(());
    }
    let mut out = String::new();
    out.push_str(&format!("Server Version: {}\n", i.version));
    out.push_str(&format!("Swarm: {}\n", i.local_node_state));
    if i.local_node_state != "inactive" {
        out.push_str(&format!(" NodeID: {}\n", i.node_id));
        if !i.error.is_empty() {
            out.push_str(&format!(" Error: {}\n", i.error));
        }
        out.push_str(&format!(
            " Is Manager: {}\n",
            i.role == NodeRole::Manager as i32
        ));
        out.push_str(&format!(" ClusterID: {}\n", i.cluster_id));
        if i.control_available {
            out.push_str(&format!(" Managers: {}\n", i.manager_count));
            out.push_str(&format!(" Nodes: {}\n", i.nodes));
            if let Some(r) = &i.raft {
                out.push_str(" Raft:\n");
                out.push_str(&format!("  ID: {:x}\n", r.raft_id));
                out.push_str(&format!("  State: {}\n", r.state));
                out.push_str(&format!("  Term: {}\n", r.term));
                out.push_str(&format!("  Leader: {:x}\n", r.leader_raft_id));
                out.push_str(&format!("  Last Log Index: {}\n", r.last_log_index));
                out.push_str(&format!("  Applied: {}\n", r.last_applied));
                out.push_str(&format!("  Snapshot Index: {}\n", r.snapshot_index));
                out.push_str(&format!("  Voters: {}\n", r.voters.len()));
                out.push_str(&format!("  Learners: {}\n", r.learners.len()));
            }
        }
        out.push_str(&format!(" Node Address: {}\n", i.node_addr));
        out.push_str(" Manager Addresses:\n");
        for m in &i.managers {
            out.push_str(&format!("  {}\n", m.addr));
        }
        if i.cert_expires_at > 0 {
            let at = chrono::DateTime::from_timestamp(i.cert_expires_at, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            out.push_str(&format!(" Certificate Expires: {at}\n"));
        }
    }
    out.push_str(&format!("Name: {}\n", i.node_name));
    out.push_str(&format!("Data Dir: {}\n", i.data_dir));
    print!("{out}");
    Ok(())
}

pub async fn version(opts: &ClientOpts, a: VersionArgs) -> anyhow::Result<()> {
    let client = json!({
        "Version": rswarm_proto::VERSION,
        "Os": std::env::consts::OS,
        "Arch": std::env::consts::ARCH,
    });
    let server = match opts.connect().await {
        Ok((ch, _)) => match DaemonClient::new(ch).info(InfoRequest {}).await {
            Ok(r) => Ok(
                json!({"Version": r.into_inner().version, "Os": std::env::consts::OS, "Arch": std::env::consts::ARCH}),
            ),
            Err(s) => Err(status_error(s)),
        },
        Err(e) => Err(e),
    };
    let v = json!({"Client": client, "Server": server.as_ref().ok()});
    if let Some(f) = &a.format {
        if f == "json" {
            println!("{v}");
        } else {
            println!("{}", format::template::render(f, &v)?);
        }
    } else {
        println!(
            "Client:\n Version:    {}\n OS/Arch:    {}/{}",
            rswarm_proto::VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        if let Ok(s) = &server {
            println!(
                "\nServer:\n Version:    {}\n OS/Arch:    {}/{}",
                s["Version"].as_str().unwrap_or(""),
                std::env::consts::OS,
                std::env::consts::ARCH
            );
        }
    }
    server.map(|_| ())
}
