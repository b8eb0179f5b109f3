//! Stacks end to end on a 3-host cluster (one manager, two workers) with a
//! registry the test starts: a Compose file the test writes is deployed with
//! `stack deploy`, listed with `stack ls | services | ps`, its services reach
//! each other by their short Compose names, a redeploy changes only the
//! service that changed, `--prune` removes what the file dropped, bad files
//! and a deploy that fails halfway say what they did, and `stack rm` removes
//! the stack's services and networks and nothing else.

use std::path::Path;
use std::time::Duration;

use rswarm_tests::lists::{parse_tasks, TASK_FORMAT};
use rswarm_tests::{wait_for, Cluster, Host};

/// How long a deploy that waits for its services may take.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(150);

/// The stack: a web server (2 replicas), a cache answering with its ROLE
/// (`$$` keeps the `$` from interpolation), and a client to look from.
fn app(image: &str, role: &str, with_client: bool) -> String {
    let mut text = format!(
        "services:
  web:
    image: \"{image}\"
    build: .
    command: [sh, -c, 'mkdir -p /www && echo web > /www/index.html && exec httpd -f -p 80 -h /www']
    deploy:
      replicas: 2
  cache:
    image: \"{image}\"
    environment:
      ROLE: {role}
    command: [sh, -c, 'mkdir -p /www && echo cache $$ROLE > /www/index.html && exec httpd -f -p 80 -h /www']
"
    );
    if with_client {
        text.push_str(&format!(
            "  client:
    image: \"{image}\"
    command: [sleep, '3600']
"
        ));
    }
    text
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.display().to_string()
}

/// One HTTP GET from inside `task` to `host` (a service name) with busybox
/// nc; the last line of the body.
fn get_in_task(h: &Host, task: &str, host: &str) -> Option<String> {
    let req = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {host} 80");
    let out = h.rswarm(&["exec", task, "sh", "-c", &req]);
    let last = out.stdout.lines().last()?.trim().to_string();
    (out.success() && !last.is_empty()).then_some(last)
}

/// Waits until `task` gets `want` from the service named `host`.
fn wait_answer(h: &Host, task: &str, host: &str, want: &str) {
    let mut last = None;
    rswarm_tests::try_wait_for(
        Duration::from_secs(45),
        &format!("{task} to get {want:?} from {host}"),
        || {
            last = get_in_task(h, task, host);
            (last.as_deref() == Some(want)).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}; the last answer was {last:?}"));
}

/// Names of every service, sorted.
fn service_names(h: &Host) -> Vec<String> {
    let mut names: Vec<String> = h
        .ok(&["service", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    names
}

fn network_names(h: &Host) -> Vec<String> {
    let mut names: Vec<String> = h
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    names
}

/// The running tasks of a stack's service: (task ID, name), sorted.
fn running_tasks(h: &Host, service: &str) -> Vec<(String, String)> {
    let mut tasks: Vec<(String, String)> = parse_tasks(&h.ok(&[
        "stack",
        "ps",
        "shop",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        TASK_FORMAT,
    ]))
    .into_iter()
    .filter(|t| t.is_running() && t.name.starts_with(&format!("{service}.")))
    .map(|t| (t.id, t.name))
    .collect();
    tasks.sort();
    tasks
}

#[test]
fn a_stack_is_deployed_updated_pruned_and_removed_and_nothing_else_is_touched() {
    let cluster = Cluster::with_registry(3).unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    let dir = cluster.dir();

    // Objects outside the stack, which nothing below may touch.
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "outsider",
        "--publish",
        "8080:80",
        &image,
        "sleep",
        "3600",
    ]);
    h1.ok(&["network", "create", "elsewhere"]);
    let services_before = service_names(h1);
    let networks_before = network_names(h1);

    // Bad files: the exact lines, exit 1, nothing created.
    let bad = write(
        dir,
        "bad.yml",
        &format!(
            "services:\n  web:\n    image: \"{image}\"\n    ports: [\"8080:80\", \"80:abc\"]\n"
        ),
    );
    let out = h1.rswarm(&["stack", "deploy", "-c", &bad, "shop"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(
        out.stderr,
        format!("{bad}: services.web.ports[1]: invalid port \"80:abc\"\n"),
        "{out}"
    );
    let ext = write(
        dir,
        "ext.yml",
        &format!(
            "services:\n  web:\n    image: \"{image}\"\n    networks: [outside]\nnetworks:\n  outside:\n    external: true\n"
        ),
    );
    let out = h1.rswarm(&["stack", "deploy", "-c", &ext, "shop"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(
        out.stderr,
        "network \"outside\" is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed\n",
        "{out}"
    );
    let out = h1.rswarm(&[
        "stack",
        "deploy",
        "-c",
        &ext,
        "--resolve-image",
        "sometimes",
        "shop",
    ]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(
        out.stderr,
        "invalid value \"sometimes\" for --resolve-image: must be always, changed or never\n",
        "{out}"
    );
    assert_eq!(service_names(h1), services_before);
    assert_eq!(network_names(h1), networks_before);
    assert_eq!(h1.ok(&["stack", "ls"]), "NAME      SERVICES\n");

    // Deploy, waiting for the services to converge.
    let app_yml = write(dir, "app.yml", &app(&image, "one", true));
    let out = h1.rswarm_timeout(
        &["stack", "deploy", "-c", &app_yml, "--detach=false", "shop"],
        DEPLOY_TIMEOUT,
    );
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stderr, "Ignoring unsupported options: build\n\n",
        "{out}"
    );
    assert!(
        out.stdout.starts_with(
            "Creating network shop_default\nCreating service shop_web\nCreating service shop_cache\nCreating service shop_client\n"
        ),
        "{out}"
    );
    assert_eq!(
        out.stdout.matches("verify: Service converged").count(),
        3,
        "{out}"
    );

    assert_eq!(h1.ok(&["stack", "ls"]), "NAME      SERVICES\nshop      3\n");
    let services = h1.ok(&["stack", "services", "shop"]);
    let mut lines = services.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]),
        "{services}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let row = |name: &str| -> Vec<&str> {
        rows.iter()
            .find(|r| r.get(1) == Some(&name))
            .map(|r| r[2..].to_vec())
            .unwrap_or_else(|| panic!("{name} is not in\n{services}"))
    };
    assert_eq!(row("shop_web"), ["replicated", "2/2", image.as_str()]);
    assert_eq!(row("shop_cache"), ["replicated", "1/1", image.as_str()]);
    assert_eq!(row("shop_client"), ["replicated", "1/1", image.as_str()]);
    assert_eq!(rows.len(), 3, "{services}");
    let ps = h1.ok(&["stack", "ps", "shop"]);
    assert_eq!(
        ps.lines()
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec![
            "ID", "NAME", "IMAGE", "NODE", "DESIRED", "STATE", "CURRENT", "STATE", "ERROR", "PORTS"
        ]),
        "{ps}"
    );
    let mut names: Vec<&str> = ps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["shop_cache.1", "shop_client.1", "shop_web.1", "shop_web.2"],
        "{ps}"
    );
    assert_eq!(
        h1.ok(&["stack", "services", "-q", "shop"]).lines().count(),
        3
    );

    // Services reach each other by their short Compose names.
    wait_answer(h1, "shop_client.1", "cache", "cache one");
    wait_answer(h1, "shop_client.1", "web", "web");

    // The same file again changes nothing.
    let web_tasks = running_tasks(h1, "shop_web");
    assert_eq!(web_tasks.len(), 2);
    let out = h1.rswarm(&["stack", "deploy", "-c", &app_yml, "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "", "{out}");

    // One service's environment changed: only that service is updated.
    let cache_id = h1
        .ok(&["service", "inspect", "shop_cache", "--format", "{{.ID}}"])
        .trim()
        .to_string();
    let app2 = write(dir, "app2.yml", &app(&image, "two", true));
    let out = h1.rswarm(&["stack", "deploy", "-c", &app2, "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout,
        format!("Updating service shop_cache (id: {cache_id})\n"),
        "{out}"
    );
    wait_answer(h1, "shop_client.1", "cache", "cache two");
    assert_eq!(running_tasks(h1, "shop_web"), web_tasks);
    // An updated service keeps its previous spec; the others were never written.
    let previous = |name: &str| {
        h1.ok(&["service", "inspect", name])
            .contains("\"PreviousSpec\"")
    };
    assert!(previous("shop_cache"));
    assert!(!previous("shop_web") && !previous("shop_client"));

    // --prune removes the service the file no longer has.
    let app3 = write(dir, "app3.yml", &app(&image, "two", false));
    let out = h1.rswarm(&["stack", "deploy", "-c", &app3, "--prune", "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "Removing service shop_client\n", "{out}");
    assert_eq!(h1.ok(&["stack", "ls"]), "NAME      SERVICES\nshop      2\n");

    // A deploy that fails halfway (the port is the outsider's) says what it
    // changed and what not.
    let half = write(
        dir,
        "half.yml",
        &format!(
            "services:\n  a:\n    image: \"{image}\"\n    command: [sleep, '3600']\n  b:\n    image: \"{image}\"\n    ports: [\"8080:80\"]\n"
        ),
    );
    let out = h1.rswarm(&["stack", "deploy", "-c", &half, "half"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(
        out.stdout,
        "Creating network half_default\nCreating service half_a\nCreating service half_b\n",
        "{out}"
    );
    let err: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(err.len(), 3, "{out}");
    assert!(
        err[0].starts_with("failed to create service half_b: Error response from daemon: port '8080' is already in use by service 'outsider'"),
        "{out}"
    );
    assert_eq!(
        &err[1..],
        [
            "changed: created network half_default, created service half_a",
            "not changed: service half_b (create failed)"
        ],
        "{out}"
    );

    // --detach=false fails, with the task's reason, when a service does not
    // converge.
    let broken = write(
        dir,
        "broken.yml",
        &format!("services:\n  x:\n    image: \"{image}\"\n    command: [sh, -c, 'exit 3']\n"),
    );
    let out = h1.rswarm_timeout(
        &[
            "stack",
            "deploy",
            "-c",
            &broken,
            "--detach=false",
            "-q",
            "broken",
        ],
        DEPLOY_TIMEOUT,
    );
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(
        out.stdout, "Creating network broken_default\nCreating service broken_x\n",
        "{out}"
    );
    assert!(
        out.stderr
            .starts_with("service broken_x did not converge: task broken_x.1 (")
            && out.stderr.ends_with(") failed: task: non-zero exit (3)\n"),
        "{out}"
    );

    // stack rm: the stacks' services and networks, nothing else.
    let out = h1.rswarm_timeout(&["stack", "rm", "shop", "half", "broken"], DEPLOY_TIMEOUT);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout,
        "Removing service shop_cache\nRemoving service shop_web\nRemoving network shop_default\n\
         Removing service half_a\nRemoving network half_default\n\
         Removing service broken_x\nRemoving network broken_default\n",
        "{out}"
    );
    assert_eq!(service_names(h1), services_before);
    assert_eq!(network_names(h1), networks_before);
    assert_eq!(h1.ok(&["stack", "ls"]), "NAME      SERVICES\n");
    let out = h1.rswarm(&["stack", "rm", "shop"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stderr, "Nothing found in stack: shop\n", "{out}");
    assert_eq!(
        h1.fails(&["stack", "ps", "shop"]),
        "nothing found in stack: shop\n"
    );
    // The outsider still runs.
    wait_for(Duration::from_secs(30), "the outsider to run", || {
        h1.ok(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"])
            .contains("outsider 1/1")
            .then_some(())
    });
}
