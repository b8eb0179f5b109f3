//! `rswarm network create | ls | inspect | rm | prune`: overlay networks as
//! cluster objects, with Docker's flags, columns and JSON shape.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use clap::{Args, Subcommand};
use rswarm_proto::control::networks_client::NetworksClient;
use rswarm_proto::control::*;
use rswarm_proto::types::{Annotations, IpamConfig, NetworkSpec};

use crate::client::{status_error, ClientOpts};
use crate::format;

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short, long, default_value = "overlay")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 Gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Create swarm routing-mesh network
    #[arg(long)]
    ingress: bool,
    /// Set metadata on a network
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long)]
    opt: Vec<String>,
    name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
    /// Pretty-print networks using a Go template, or "json"
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long)]
    no_trunc: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    networks: Vec<String>,
}

fn key_values(flag: &str, items: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for i in items {
        let (k, v) = i.split_once('=').unwrap_or((i.as_str(), ""));
        if k.is_empty() {
            anyhow::bail!("invalid argument {i:?} for \"--{flag}\" flag: empty key");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Build the spec from the flags; everything is checked before any call.
fn spec_from(a: &CreateArgs) -> anyhow::Result<NetworkSpec> {
    if a.driver != "overlay" {
        anyhow::bail!(
            "network driver {:?} is not supported: rswarm networks are overlay networks",
            a.driver
        );
    }
    if a.gateway.len() > a.subnet.len() || a.ip_range.len() > a.subnet.len() {
        anyhow::bail!("every --gateway and --ip-range needs its own --subnet");
    }
    let mut ipam = vec![];
    for (i, subnet) in a.subnet.iter().enumerate() {
        check_cidr("subnet", subnet)?;
        let gateway = a.gateway.get(i).cloned().unwrap_or_default();
        if !gateway.is_empty() && gateway.parse::<std::net::Ipv4Addr>().is_err() {
            anyhow::bail!(
                "invalid argument {gateway:?} for \"--gateway\" flag: not an IPv4 address"
            );
        }
        let ip_range = a.ip_range.get(i).cloned().unwrap_or_default();
        if !ip_range.is_empty() {
            check_cidr("ip-range", &ip_range)?;
        }
        ipam.push(IpamConfig {
            subnet: subnet.clone(),
            gateway,
            ip_range,
        });
    }
    Ok(NetworkSpec {
        annotations: Some(Annotations {
            name: a.name.clone(),
            labels: key_values("label", &a.label)?,
        }),
        driver: a.driver.clone(),
        options: key_values("opt", &a.opt)?,
        internal: a.internal,
        attachable: a.attachable,
        ingress: a.ingress,
        ipam,
    })
}

fn check_cidr(flag: &str, s: &str) -> anyhow::Result<()> {
    let bad = || {
        anyhow::anyhow!("invalid argument {s:?} for \"--{flag}\" flag: invalid CIDR address: {s}")
    };
    let (ip, len) = s.split_once('/').ok_or_else(bad)?;
    ip.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    Ok(())
}

pub async fn run(opts: &ClientOpts, cmd: NetworkCommand) -> anyhow::Result<()> {
    // Validate before connecting.
    let spec = match &cmd {
        NetworkCommand::Create(a) => Some(spec_from(a)?),
        _ => None,
    };
    let (ch, _) = opts.connect().await?;
    let mut client = NetworksClient::new(ch);
    match cmd {
        NetworkCommand::Create(_) => {
            let n = client
                .create_network(CreateNetworkRequest { spec })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", n.id);
        }
        NetworkCommand::Ls(a) => {
            let nets = client
                .list_networks(ListNetworksRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .networks;
            print!(
                "{}",
                format::networks::render_network_list(
                    &nets,
                    a.format.as_deref(),
                    a.quiet,
                    a.no_trunc
                )?
            );
        }
        NetworkCommand::Inspect(a) => {
            let mut values = vec![];
            for r in &a.networks {
                let n = client
                    .get_network(GetNetworkRequest {
                        network_ref: r.clone(),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                values.push(format::networks::network_inspect_json(&n));
            }
            print!(
                "{}",
                format::output::render_inspect(&values, a.format.as_deref())?
            );
        }
        NetworkCommand::Rm { networks } => {
            let mut failed = false;
            for r in networks {
                match client
                    .remove_network(RemoveNetworkRequest {
                        network_ref: r.clone(),
                    })
                    .await
                {
                    Ok(_) => println!("{r}"),
                    Err(s) => {
                        eprintln!("{}", status_error(s));
                        failed = true;
                    }
                }
            }
            if failed {
                anyhow::bail!("failed to remove one or more networks");
            }
        }
        NetworkCommand::Prune { force } => {
            if !force && !confirm("WARNING! This will remove all custom networks not used by at least one service.\nAre you sure you want to continue? [y/N] ")? {
                return Ok(());
            }
            let removed = client
                .prune_networks(PruneNetworksRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .removed;
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for r in removed {
                    println!("{r}");
                }
            }
        }
    }
    Ok(())
}

fn confirm(prompt: &str) -> anyhow::Result<bool> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CreateArgs,
    }

    fn spec(args: &str) -> anyhow::Result<NetworkSpec> {
        let t = T::try_parse_from(std::iter::once("x").chain(args.split_whitespace()))?;
        spec_from(&t.a)
    }

    #[test]
    fn flags_to_spec() {
        let s = spec(
            "-d overlay --subnet 10.20.0.0/24 --gateway 10.20.0.1 --attachable --label a=b backend",
        )
        .unwrap();
        assert_eq!(s.annotations.unwrap().name, "backend");
        assert_eq!(s.ipam[0].subnet, "10.20.0.0/24");
        assert_eq!(s.ipam[0].gateway, "10.20.0.1");
        assert!(s.attachable && !s.internal);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(spec("--subnet 10.20.0.0/33 x").is_err());
        assert!(spec("--subnet banana x").is_err());
        assert!(spec("--gateway 10.0.0.1 x").is_err());
        assert!(spec("-d bridge x").is_err());
        assert!(spec("--subnet 10.20.0.0/24 --gateway nope x").is_err());
    }
}
