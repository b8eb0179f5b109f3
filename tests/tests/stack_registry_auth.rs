//! `stack deploy --with-registry-auth` on a one-node swarm with a private
//! registry (Debian's docker-registry with basic auth, as in
//! `registry_auth.rs`): after `rswarm login`, a stack of a private image
//! deployed without the flag fails to pull; with it, its service runs; a
//! redeploy with the flag changes nothing (the credentials are not a
//! change of the spec); nothing shows them.

use rswarm_tests::{wait_for, Cluster, CmdOutput};
use std::time::Duration;

mod private_registry;
use private_registry::{PASSWORD, USER};

#[test]
fn stack_deploy_with_registry_auth_sends_the_stored_credentials() {
    let cluster = Cluster::with_registry(1).expect("a host and a registry");
    cluster.init_swarm(1, 0).expect("a one-node swarm");
    let h1 = cluster.host(1);
    let private = private_registry::start(&cluster);
    let (image, server) = (private.image.clone(), private.server.clone());
    // The CLI as the user runs it, with its own HOME.
    let cli = |args: &str| -> CmdOutput { private.cli(h1, args) };
    let out = cli(&format!("login -u {USER} -p {PASSWORD} {server}"));
    assert!(out.success(), "{out}");

    let app = cluster.dir().join("app.yml");
    std::fs::write(
        &app,
        format!("services:\n  app:\n    image: \"{image}\"\n    command: [sleep, '600']\n"),
    )
    .expect("app.yml");
    let app = app.display().to_string();

    // Without the flag no credentials leave the client: the pull is refused.
    let out = cli(&format!("stack deploy -c {app} anon"));
    assert!(out.success(), "{out}");
    let error = wait_for(Duration::from_secs(60), "anon's pull error", || {
        let ps = h1.ok(&["stack", "ps", "anon", "--no-trunc"]);
        ps.contains("pull access denied").then_some(ps)
    });
    assert!(
        error.contains(&format!("pull access denied for {server}/app")),
        "{error}"
    );

    // With it, the service runs.
    let out = cli(&format!("stack deploy --with-registry-auth -c {app} shop"));
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout, "Creating network shop_default\nCreating service shop_app\n",
        "{out}"
    );
    h1.wait_running_tasks("shop_app", 1);
    // Again: the credentials alone do not make a change.
    let out = cli(&format!("stack deploy --with-registry-auth -c {app} shop"));
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    for args in [
        vec!["service", "inspect", "shop_app"],
        vec!["stack", "services", "shop"],
        vec!["stack", "ps", "shop", "--no-trunc"],
    ] {
        let shown = h1.ok(&args);
        assert!(!shown.contains(PASSWORD), "{args:?}: {shown}");
        assert!(
            !shown.contains("registry_auth") && !shown.contains("RegistryAuth"),
            "{args:?}: {shown}"
        );
    }
    let out = h1.rswarm(&["stack", "rm", "anon", "shop"]);
    assert!(out.success(), "{out}");
}
