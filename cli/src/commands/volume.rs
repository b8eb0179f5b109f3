//! `rswarm volume create | ls | inspect | rm | prune`: the named volumes of
//! the node whose daemon answers (Docker's `local` driver, scope local),
//! through its Volumes API, with Docker's flags and output.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use clap::{Args, Subcommand};
use rswarm_proto::daemon::volumes_client::VolumesClient;
use rswarm_proto::daemon::*;

use crate::client::{status_error, ClientOpts};
use crate::compose::Problems;
use crate::format;
use crate::format::volumes::{parse_volume_filter, volume_matches, VolumeFilter};

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused local volumes
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name (only "local")
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options (none are supported)
    #[arg(short, long)]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", value_name = "NAME")]
    name_flag: Option<String>,
    #[arg(value_name = "VOLUME")]
    name: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long)]
    filter: Vec<String>,
    /// Pretty-print volumes using a Go template, or "json"
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    volumes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not fail when a volume does not exist
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    volumes: Vec<String>,
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

/// What `volume create` asks for; everything is checked before any call.
fn create_request(a: &CreateArgs) -> anyhow::Result<VolumeCreateRequest> {
    let name = match (&a.name, &a.name_flag) {
        (Some(p), Some(f)) if p != f => {
            anyhow::bail!(
                "conflicting options: either specify --name or provide positional arg, not both"
            )
        }
        (p, f) => p.clone().or(f.clone()).unwrap_or_default(),
    };
    if a.driver != "local" {
        anyhow::bail!(
            "volume driver {:?} is not supported: rswarm volumes use the local driver",
            a.driver
        );
    }
    if !a.opt.is_empty() {
        anyhow::bail!("--opt is not supported: the local driver takes no options in rswarm");
    }
    if !name.is_empty() {
        rswarm_proto::spec::mounts::check_volume_name(&name)
            .map_err(|e| anyhow::anyhow!("create {name}: {e}"))?;
    }
    Ok(VolumeCreateRequest {
        name,
        driver: a.driver.clone(),
        labels: key_values("label", &a.label)?,
        driver_opts: HashMap::new(),
    })
}

pub async fn run(opts: &ClientOpts, cmd: VolumeCommand) -> anyhow::Result<()> {
    // Validate before connecting.
    let create = match &cmd {
        VolumeCommand::Create(a) => Some(create_request(a)?),
        _ => None,
    };
    let filters: Vec<VolumeFilter> = match &cmd {
        VolumeCommand::Ls(a) => a
            .filter
            .iter()
            .map(|f| parse_volume_filter(f).map_err(|e| anyhow::anyhow!("{e}")))
            .collect::<anyhow::Result<_>>()?,
        _ => vec![],
    };
    let (ch, _) = opts.connect().await?;
    let mut client = VolumesClient::new(ch);
    match cmd {
        VolumeCommand::Create(_) => {
            let v = client
                .volume_create(create.unwrap_or_default())
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", v.name);
        }
        VolumeCommand::Ls(a) => {
            let volumes: Vec<VolumeInfo> = client
                .volume_list(VolumeListRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .volumes
                .into_iter()
                .filter(|v| volume_matches(v, &filters))
                .collect();
            print!(
                "{}",
                format::volumes::render_volume_list(&volumes, a.format.as_deref(), a.quiet)?
            );
        }
        VolumeCommand::Inspect(a) => {
            let mut values = vec![];
            for name in &a.volumes {
                let v = client
                    .volume_inspect(VolumeInspectRequest { name: name.clone() })
                    .await
                    .map_err(|s| no_such_volume(s, name))?
                    .into_inner();
                values.push(format::volumes::volume_inspect_json(&v));
            }
            print!(
                "{}",
                format::output::render_inspect(&values, a.format.as_deref())?
            );
        }
        VolumeCommand::Rm(a) => {
            let mut errors = vec![];
            for name in a.volumes {
                match client
                    .volume_remove(VolumeRemoveRequest {
                        name: name.clone(),
                        force: a.force,
                    })
                    .await
                {
                    Ok(_) => println!("{name}"),
                    Err(s) => errors.push(no_such_volume(s, &name).to_string()),
                }
            }
            if !errors.is_empty() {
                return Err(Problems(errors).into());
            }
        }
        VolumeCommand::Prune { force } => {
            if !force && !confirm("WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ")? {
                return Ok(());
            }
            let r = client
                .volume_prune(VolumePruneRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if !r.deleted.is_empty() {
                println!("Deleted Volumes:");
                for d in &r.deleted {
                    println!("{d}");
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                format::volumes::human_size(r.reclaimed_bytes)
            );
        }
    }
    Ok(())
}

/// Docker's words for a volume that is not there: `Error: No such volume: x`.
fn no_such_volume(s: tonic::Status, name: &str) -> anyhow::Error {
    if s.code() == tonic::Code::NotFound {
        anyhow::anyhow!("Error: No such volume: {name}")
    } else {
        status_error(s)
    }
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
        #[command(subcommand)]
        cmd: VolumeCommand,
    }

    fn create(args: &[&str]) -> anyhow::Result<VolumeCreateRequest> {
        let mut all = vec!["t", "create"];
        all.extend_from_slice(args);
        match T::try_parse_from(all).expect("parses").cmd {
            VolumeCommand::Create(a) => create_request(&a),
            _ => unreachable!("create"),
        }
    }

    #[test]
    fn create_checks_before_calling() {
        let r = create(&["--label", "a=1", "--label", "b", "data"]).expect("ok");
        assert_eq!(r.name, "data");
        assert_eq!(r.labels.get("a").map(String::as_str), Some("1"));
        assert_eq!(r.labels.get("b").map(String::as_str), Some(""));
        assert_eq!(create(&[]).expect("random").name, "");
        assert_eq!(create(&["--name", "x1"]).expect("flag").name, "x1");
        let e = |a: &[&str]| create(a).expect_err("refused").to_string();
        assert_eq!(
            e(&["--driver", "nfs", "x1"]),
            "volume driver \"nfs\" is not supported: rswarm volumes use the local driver"
        );
        assert_eq!(
            e(&["-o", "type=tmpfs", "x1"]),
            "--opt is not supported: the local driver takes no options in rswarm"
        );
        assert!(e(&["a/b"]).starts_with("create a/b: \"a/b\" includes invalid characters"));
        assert!(e(&["--name", "x1", "y1"]).starts_with("conflicting options"));
    }
}
