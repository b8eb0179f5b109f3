//! `rswarm login` and `rswarm logout`, as Docker's. The credentials are
//! checked by the daemon (its image store reaches the registry with the
//! rules of its pulls: insecure registries, basic or token auth), as dockerd
//! does for `docker login`, then stored by `registry_auth` in
//! `$HOME/.rswarm/config.json`. Without a server, Docker Hub.

use std::io::Read;

use clap::Args;
use rswarm_proto::daemon::images_client::ImagesClient;
use rswarm_proto::daemon::RegistryLoginRequest;

use crate::client::{status_error, ClientOpts};
use crate::registry_auth;

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long, value_name = "string")]
    pub username: Option<String>,
    /// Password
    #[arg(short, long, value_name = "string")]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// SERVER (default Docker Hub)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// SERVER (default Docker Hub)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

fn server_or_hub(server: Option<String>) -> String {
    server.unwrap_or_else(|| "docker.io".to_string())
}

pub async fn login(opts: &ClientOpts, a: LoginArgs) -> anyhow::Result<()> {
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => anyhow::bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| anyhow::anyhow!("reading the password from stdin: {e}"))?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => anyhow::bail!(
            "a password is needed: use --password-stdin (interactive login is not supported)"
        ),
    };
    let username = match a.username {
        Some(u) if !u.is_empty() => u,
        _ => anyhow::bail!("a username is needed: use -u USER"),
    };
    if a.password_stdin && password.is_empty() {
        anyhow::bail!("password is empty on stdin");
    }
    let server = server_or_hub(a.server);
    let (channel, _) = opts.connect().await?;
    let reply = ImagesClient::new(channel)
        .registry_login(RegistryLoginRequest {
            server: server.clone(),
            username: username.clone(),
            password: password.clone(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    registry_auth::store(&server, &username, &password)?;
    println!("{}", reply.status);
    Ok(())
}

pub fn logout(a: LogoutArgs) -> anyhow::Result<()> {
    let server = server_or_hub(a.server);
    let key = registry_auth::server_key(&server);
    if registry_auth::remove(&server)? {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(())
}
