//! `rswarm dashboard token [--rotate] [-q]`: print the credential of the
//! web dashboard every manager serves (`daemon --dashboard-addr`), made on
//! first use; `--rotate` replaces it and the old one stops working at once.

use clap::{Args, Subcommand};
use rswarm_proto::control::control_client::ControlClient;
use rswarm_proto::control::DashboardTokenRequest;

use crate::client::{status_error, ClientOpts};

#[derive(Subcommand, Debug)]
pub enum DashboardCommand {
    /// Display or rotate the dashboard's access token
    Token(TokenArgs),
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Only display the token
    #[arg(short, long)]
    quiet: bool,
    /// Make a new token; the old one stops working at once
    #[arg(long)]
    rotate: bool,
}

pub async fn run(opts: &ClientOpts, c: DashboardCommand) -> anyhow::Result<()> {
    match c {
        DashboardCommand::Token(a) => token(opts, a).await,
    }
}

async fn token(opts: &ClientOpts, a: TokenArgs) -> anyhow::Result<()> {
    let (ch, _) = opts.connect().await?;
    let token = ControlClient::new(ch)
        .dashboard_token(DashboardTokenRequest { rotate: a.rotate })
        .await
        .map_err(status_error)?
        .into_inner()
        .token;
    if a.quiet {
        println!("{token}");
        return Ok(());
    }
    if a.rotate {
        println!("Successfully rotated the dashboard token.\n");
    }
    println!(
        "To use the dashboard a manager serves (daemon --dashboard-addr, default http://127.0.0.1:9324/),\nenter this token in its login form or send it as \"Authorization: Bearer TOKEN\":\n\n    {token}\n"
    );
    Ok(())
}
