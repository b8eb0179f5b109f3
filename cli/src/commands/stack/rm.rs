//! `stack rm STACK…`: removes the services, then the secrets, the configs
//! and the networks labelled with each stack (Docker's order), with
//! Docker's lines ("Removing service shop_web", "Removing secret
//! shop_db_password", "Removing network shop_default"). A network is
//! removed once the removed services' tasks have let go of it: its removal
//! is retried while the manager says a task uses it, for a bounded time (a
//! minute). A secret or config still used by a service of another stack is
//! not removed (the manager's words say which). Nothing without the stack's
//! label is touched. In `rm_stack`, each kind of object is one list and one
//! remove call.

use std::time::{Duration, Instant};

use rswarm_proto::control::configs_client::ConfigsClient;
use rswarm_proto::control::networks_client::NetworksClient;
use rswarm_proto::control::secrets_client::SecretsClient;
use rswarm_proto::control::services_client::ServicesClient;
use rswarm_proto::control::{
    ListConfigsRequest, ListNetworksRequest, ListSecretsRequest, RemoveConfigRequest,
    RemoveNetworkRequest, RemoveSecretRequest, RemoveServiceRequest,
};
use rswarm_proto::types::Annotations;
use tonic::transport::Channel;

use super::diff::{namespace, network_stack, service_stack};
use super::RmArgs;
use crate::client::{status_error, ClientOpts};
use crate::commands::lists::all_services;
use crate::compose::Problems;

/// How long a network's removal waits for the stack's tasks to go away.
const NETWORK_RELEASE_TIMEOUT: Duration = Duration::from_secs(60);
const NETWORK_RETRY_INTERVAL: Duration = Duration::from_millis(500);

pub(super) async fn rm(opts: &ClientOpts, a: RmArgs) -> anyhow::Result<()> {
    let (channel, _) = opts.connect().await?;
    let mut errors = Vec::new();
    for stack in &a.stacks {
        match rm_stack(channel.clone(), stack).await {
            Ok(true) => {}
            Ok(false) => errors.push(format!(
                "failed to remove some resources from stack: {stack}"
            )),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problems(errors).into())
    }
}

/// (ID, name) pairs sorted by name.
type Objects = Vec<(String, String)>;

fn sorted(mut list: Objects) -> Objects {
    list.sort_by(|a, b| a.1.cmp(&b.1));
    list
}

/// (ID, name) of the objects whose annotations put them in `stack`.
fn of_stack<'a>(
    stack: &str,
    objects: impl IntoIterator<Item = (String, Option<&'a Annotations>)>,
) -> Objects {
    sorted(
        objects
            .into_iter()
            .filter(|(_, a)| namespace(a.map(|a| &a.labels)) == stack)
            .map(|(id, a)| (id, a.map(|a| a.name.clone()).unwrap_or_default()))
            .collect(),
    )
}

/// Removes one stack; `Ok(false)` when some object could not be removed
/// (each said on stderr).
async fn rm_stack(channel: Channel, stack: &str) -> anyhow::Result<bool> {
    let mut services = ServicesClient::new(channel.clone());
    let mut secrets = SecretsClient::new(channel.clone());
    let mut configs = ConfigsClient::new(channel.clone());
    let mut networks = NetworksClient::new(channel);
    let my_services = sorted(
        all_services(&mut services)
            .await?
            .into_iter()
            .filter(|s| service_stack(s) == stack)
            .map(|s| {
                let name = s
                    .spec
                    .as_ref()
                    .and_then(|sp| sp.annotations.as_ref())
                    .map(|an| an.name.clone())
                    .unwrap_or_default();
                (s.id, name)
            })
            .collect(),
    );
    let my_networks = sorted(
        networks
            .list_networks(ListNetworksRequest {})
            .await
            .map_err(status_error)?
            .into_inner()
            .networks
            .into_iter()
            .filter(|n| network_stack(n) == stack)
            .map(|n| {
                let name = n
                    .spec
                    .as_ref()
                    .and_then(|sp| sp.annotations.as_ref())
                    .map(|an| an.name.clone())
                    .unwrap_or_default();
                (n.id, name)
            })
            .collect(),
    );
    let all_secrets = secrets
        .list_secrets(ListSecretsRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .secrets;
    let my_secrets = of_stack(
        stack,
        all_secrets.iter().map(|s| {
            let a = s.spec.as_ref().and_then(|sp| sp.annotations.as_ref());
            (s.id.clone(), a)
        }),
    );
    let all_configs = configs
        .list_configs(ListConfigsRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .configs;
    let my_configs = of_stack(
        stack,
        all_configs.iter().map(|c| {
            let a = c.spec.as_ref().and_then(|sp| sp.annotations.as_ref());
            (c.id.clone(), a)
        }),
    );
    if my_services.is_empty()
        && my_networks.is_empty()
        && my_secrets.is_empty()
        && my_configs.is_empty()
    {
        eprintln!("Nothing found in stack: {stack}");
        return Ok(true);
    }
    let mut ok = remove_services(&mut services, &my_services).await;
    for (id, name) in &my_secrets {
        println!("Removing secret {name}");
        let r = secrets
            .remove_secret(RemoveSecretRequest {
                secret_ref: id.clone(),
            })
            .await;
        ok &= removed("secret", name, r.map(drop));
    }
    for (id, name) in &my_configs {
        println!("Removing config {name}");
        let r = configs
            .remove_config(RemoveConfigRequest {
                config_ref: id.clone(),
            })
            .await;
        ok &= removed("config", name, r.map(drop));
    }
    ok &= remove_networks(&mut networks, &my_networks).await;
    Ok(ok)
}

/// Whether a remove call did what was asked (an object removed meanwhile
/// counts); a failure is said on stderr, in Docker's words.
fn removed(kind: &str, name: &str, r: Result<(), tonic::Status>) -> bool {
    match r {
        Ok(()) => true,
        Err(s) if s.code() == tonic::Code::NotFound => true,
        Err(s) => {
            eprintln!("Failed to remove {kind} {name}: {}", status_error(s));
            false
        }
    }
}

async fn remove_services(services: &mut ServicesClient<Channel>, list: &Objects) -> bool {
    let mut ok = true;
    for (id, name) in list {
        println!("Removing service {name}");
        let r = services
            .remove_service(RemoveServiceRequest {
                service_ref: id.clone(),
            })
            .await;
        match r {
            Ok(_) => {}
            // Removed meanwhile: what was asked holds.
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => {
                eprintln!("Failed to remove service {name}: {}", status_error(s));
                ok = false;
            }
        }
    }
    ok
}

async fn remove_networks(networks: &mut NetworksClient<Channel>, list: &Objects) -> bool {
    let mut ok = true;
    let deadline = Instant::now() + NETWORK_RELEASE_TIMEOUT;
    for (id, name) in list {
        println!("Removing network {name}");
        loop {
            let r = networks
                .remove_network(RemoveNetworkRequest {
                    network_ref: id.clone(),
                })
                .await;
            match r {
                Ok(_) => break,
                Err(s) if s.code() == tonic::Code::NotFound => break,
                // The removed services' tasks still hold it: wait for them
                // (a service that still uses it is an error at once).
                Err(s)
                    if s.code() == tonic::Code::FailedPrecondition
                        && s.message().contains("in use by task")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(NETWORK_RETRY_INTERVAL).await;
                }
                Err(s) => {
                    eprintln!("Failed to remove network {name}: {}", status_error(s));
                    ok = false;
                    break;
                }
            }
        }
    }
    ok
}
