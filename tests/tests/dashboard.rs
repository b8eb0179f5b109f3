//! The web dashboard every manager serves (`--dashboard-addr`, default
//! 127.0.0.1:9324), end to end on three hosts (two managers, one worker)
//! with a registry started by the test: without the token from `rswarm
//! dashboard token` every path answers 401 and shows nothing, and no action
//! happens; with it the state document lists every service and node with
//! Raft health, on either manager (the token is the cluster's); a scale
//! through the dashboard changes the service; a scale from the CLI shows in
//! the dashboard within 2 s; `--rotate` refuses the old token at once; a
//! worker has no dashboard (503). The page's load time and size are printed.
//! `--dashboard-addr` moves the listener. RSWARM_DASHBOARD_SCREENSHOT=FILE.png
//! saves how the page looks.
//! A second story drives the page in Debian's headless chromium (when it is
//! installed) through the DevTools protocol (`rswarm_tests::browser`).

use std::time::{Duration, Instant};

use rswarm_tests::browser as cdp;
use rswarm_tests::{wait_for, Cluster, Host};

const DASHBOARD: &str = "http://127.0.0.1:9324";

/// One HTTP request with curl from the host's namespace: (status, body).
fn http(
    h: &Host,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let url = format!("{DASHBOARD}{path}");
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut cmd: Vec<&str> = vec![
        "curl",
        "-s",
        "-m",
        "5",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ];
    if let Some(a) = &auth {
        cmd.extend(["-H", a]);
    }
    if let Some(b) = body {
        cmd.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    cmd.push(&url);
    let out = h.exec_timeout(&cmd, Duration::from_secs(10));
    assert!(out.success(), "{}: {out}", h.name());
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", &out.stdout));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn state(h: &Host, token: &str) -> serde_json::Value {
    let (code, body) = http(h, "GET", "/api/state", Some(token), None);
    assert_eq!(code, 200, "{}: {body}", h.name());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn service<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["services"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no service {name} in {s}"))
}

fn desired(h: &Host, service: &str) -> String {
    h.ok(&[
        "service",
        "inspect",
        service,
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ])
    .trim()
    .to_string()
}

/// Two managers and a worker, with `web` (2 replicas) and `api` (1)
/// running; `daemon_args` for every daemon.
fn swarm(daemon_args: &[&str]) -> Cluster {
    let cluster = Cluster::builder(3)
        .with_registry()
        .daemon_args(daemon_args)
        .start()
        .expect("three hosts and a registry");
    cluster.init_swarm(2, 1).expect("two managers and a worker");
    let h1 = cluster.host(1);
    let image = cluster.registry().busybox();
    for (name, n) in [("web", "2"), ("api", "1")] {
        h1.ok(&[
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--replicas",
            n,
            &image,
            "sleep",
            "3600",
        ]);
    }
    h1.wait_running_tasks("web", 2);
    h1.wait_running_tasks("api", 1);
    cluster
}

#[test]
fn the_dashboard_needs_the_token_shows_the_cluster_and_scales() {
    let cluster = swarm(&[]);
    let (h1, h2, h3) = (cluster.host(1), cluster.host(2), cluster.host(3));

    // No token made yet, none offered, a wrong one: nothing shown, nothing done.
    for token in [None, Some("RSWDT-0000")] {
        let (code, body) = http(h1, "GET", "/api/state", token, None);
        assert_eq!(code, 401, "{body}");
        assert!(!body.contains("web"), "{body}");
        let (code, body) = http(
            h1,
            "POST",
            "/api/services/web/scale",
            token,
            Some(r#"{"replicas":5}"#),
        );
        assert_eq!(code, 401, "{body}");
    }
    let (code, page) = http(h1, "GET", "/", None, None);
    assert_eq!(code, 401);
    assert!(
        page.contains("name=\"token\"") && !page.contains("web"),
        "{page}"
    );
    assert_eq!(desired(h1, "web"), "2", "the refused scale changed nothing");

    let token = h1.ok(&["dashboard", "token", "-q"]).trim().to_string();
    assert!(token.starts_with("RSWDT-"), "{token}");
    assert_eq!(
        h2.ok(&["dashboard", "token", "-q"]).trim(),
        token,
        "one token per cluster"
    );
    let shown = h1.ok(&["dashboard", "token"]);
    assert!(
        shown.contains(&token) && shown.contains("Authorization: Bearer"),
        "{shown}"
    );

    // Both managers show every service and node, and Raft health.
    for h in [h1, h2] {
        let s = state(h, &token);
        let web = service(&s, "web");
        assert_eq!(
            (web["desired"].as_u64(), web["running"].as_u64()),
            (Some(2), Some(2)),
            "{s}"
        );
        assert_eq!(service(&s, "api")["running"], 1, "{s}");
        let mut hosts: Vec<&str> = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["hostname"].as_str().unwrap())
            .collect();
        hosts.sort();
        assert_eq!(hosts, ["host1", "host2", "host3"], "{s}");
        assert!(
            s["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["state"] == "ready"),
            "{s}"
        );
        assert_eq!(s["raft"]["managers"], 2, "{s}");
        assert_eq!(s["raft"]["managers_reachable"], 2, "{s}");
        assert!(s["raft"]["leader"].is_string(), "{s}");
        let running = s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "running")
            .count();
        assert_eq!(running, 3, "{s}");
    }
    // The manager's own cluster events, as `rswarm events` has them: not
    // without the token, the services' creation and their tasks' start with it.
    let (code, body) = http(h1, "GET", "/api/events", None, None);
    assert_eq!(code, 401, "{body}");
    for h in [h1, h2] {
        let (code, body) = http(h, "GET", "/api/events", Some(&token), None);
        assert_eq!(code, 200, "{body}");
        let events: serde_json::Value = serde_json::from_str(&body).unwrap();
        let has = |ty: &str, action: &str, name: &str| {
            events.as_array().unwrap().iter().any(|e| {
                e["type"] == ty && e["action"] == action && e["name"].as_str() == Some(name)
            })
        };
        assert!(has("service", "create", "api"), "{body}");
        assert!(has("task", "start", "api.1"), "{body}");
    }
    let (code, body) = http(h3, "GET", "/api/state", Some(&token), None);
    assert_eq!(code, 503, "a worker has no dashboard: {body}");
    let err = h3.fails(&["dashboard", "token"]);
    assert!(err.contains("not a swarm manager"), "{err}");
    let (code, body) = http(h1, "GET", "/api/nosuch", Some(&token), None);
    assert_eq!(code, 404, "{body}");

    // A scale through the dashboard (on the follower manager) changes the service.
    let (code, body) = http(
        h2,
        "POST",
        "/api/services/web/scale",
        Some(&token),
        Some(r#"{"replicas":3}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(desired(h1, "web"), "3");
    h1.wait_running_tasks("web", 3);
    let (code, body) = http(
        h1,
        "POST",
        "/api/services/web/scale",
        Some(&token),
        Some(r#"{"replicas":20000}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("limit"), "{body}");

    // A scale from the CLI shows in the dashboard within 2 s.
    h1.ok(&["service", "scale", "--detach", "web=1"]);
    let start = Instant::now();
    wait_for(
        Duration::from_secs(2),
        "the CLI's scale in the dashboard",
        || (service(&state(h2, &token), "web")["desired"] == 1).then_some(()),
    );
    eprintln!("dashboard: CLI scale visible after {:?}", start.elapsed());

    // Force-update, roll back and drain, through the dashboard.
    let force = |h: &Host| {
        h.ok(&[
            "service",
            "inspect",
            "api",
            "--format",
            "{{.Spec.TaskTemplate.ForceUpdate}}",
        ])
        .trim()
        .to_string()
    };
    let (code, body) = http(
        h1,
        "POST",
        "/api/services/api/force-update",
        Some(&token),
        Some("{}"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(force(h1), "1");
    wait_for(
        Duration::from_secs(60),
        "the forced update to finish",
        || {
            let s = state(h1, &token);
            let api = service(&s, "api");
            (api["update"]["state"] == "completed" && api["running"] == 1).then_some(())
        },
    );
    let (code, body) = http(
        h1,
        "POST",
        "/api/services/api/rollback",
        Some(&token),
        Some("{}"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(force(h1), "0", "rolled back to the spec before the force");
    let h3_id = h3.node_id();
    let path = format!("/api/nodes/{h3_id}/availability");
    let (code, body) = http(
        h1,
        "POST",
        &path,
        Some(&token),
        Some(r#"{"availability":"drain"}"#),
    );
    assert_eq!(code, 200, "{body}");
    let availability = || {
        h1.ok(&[
            "node",
            "inspect",
            "host3",
            "--format",
            "{{.Spec.Availability}}",
        ])
        .trim()
        .to_string()
    };
    assert_eq!(availability(), "drain");
    let (code, body) = http(
        h1,
        "POST",
        &path,
        Some(&token),
        Some(r#"{"availability":"active"}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(availability(), "active");

    // The page and the state document: load time and size (curl from the host).
    for path in ["/", "/api/state"] {
        let auth = format!("Authorization: Bearer {token}");
        let url = format!("{DASHBOARD}{path}");
        let out = h1.exec_ok(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-H",
            &auth,
            "-w",
            "%{http_code} %{time_total} %{size_download}",
            &url,
        ]);
        eprintln!("dashboard figure: GET {path}: status, seconds, bytes = {out}");
        assert!(out.starts_with("200 "), "{out}");
    }

    // A rotation on one manager refuses the old token on the other at once.
    let new = h2
        .ok(&["dashboard", "token", "--rotate", "-q"])
        .trim()
        .to_string();
    assert_ne!(new, token);
    assert_eq!(http(h1, "GET", "/api/state", Some(&token), None).0, 401);
    assert_eq!(http(h1, "GET", "/api/state", Some(&new), None).0, 200);
}

#[test]
fn the_page_in_headless_chromium_shows_the_cluster_and_scales() {
    // No silent skip: the test packages (tests/packages.txt) include chromium.
    let browser = cdp::chromium()
        .expect("this test needs Debian's chromium: bash tests/install-packages.sh (or apt-get install -y chromium)");
    // The flag moves the dashboard (checked here: the other story uses the default).
    let cluster = swarm(&["--dashboard-addr", "127.0.0.1:9555"]);
    let h1 = cluster.host(1);
    let token = h1.ok(&["dashboard", "token", "-q"]).trim().to_string();
    let mut page = cdp::Browser::start(h1, &browser);

    // Without the credential: the login form only.
    let url = "http://127.0.0.1:9555/";
    page.open(url, None);
    let text = page.eval_string("document.body.innerText");
    assert!(
        text.contains("dashboard token") && !text.contains("web"),
        "{text}"
    );

    // With it: every service and node, within the first polls.
    page.open(url, Some(&token));
    let start = Instant::now();
    page.wait_true(
        "every service and node on the page",
        "['web','api'].every(s => document.querySelector(`tr[data-service=${s}]`)) && ['host1','host2','host3'].every(n => document.querySelector(`tr[data-node=${n}]`))",
        Duration::from_secs(10),
    );
    eprintln!(
        "dashboard figure: chromium shows every service and node {:?} after navigation",
        start.elapsed()
    );
    let nav = page.eval_string(
        "(() => { const n = performance.getEntriesByType('navigation')[0]; const r = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/state'))[0]; return `page ${n.duration.toFixed(1)} ms ${n.transferSize} bytes transferred (${n.decodedBodySize} decoded); first /api/state ${r ? r.duration.toFixed(1) + ' ms ' + r.transferSize + ' bytes' : 'n/a'}`; })()",
    );
    eprintln!("dashboard figure: {nav}");

    if let Ok(path) = std::env::var("RSWARM_DASHBOARD_SCREENSHOT") {
        page.screenshot(std::path::Path::new(&path));
    }

    // A scale from the CLI shows on the page within 2 s.
    h1.ok(&["service", "scale", "--detach", "web=3"]);
    let start = Instant::now();
    page.wait_true(
        "the CLI's scale on the page",
        "document.querySelector('td[data-replicas=web]').textContent.endsWith('/3')",
        Duration::from_secs(2),
    );
    eprintln!(
        "dashboard: CLI scale on the page after {:?}",
        start.elapsed()
    );
    // The cluster's events stream into the page's list: the scale is there.
    page.wait_true(
        "the scale's event in the page's list",
        "[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('service update web'))",
        Duration::from_secs(5),
    );

    // A scale from the page changes the service.
    page.eval_string(
        "(() => { const i = document.querySelector('input[data-service=web]'); i.value = '1'; i.nextElementSibling.click(); return 'clicked'; })()",
    );
    wait_for(
        Duration::from_secs(10),
        "the page's scale in the service",
        || (desired(h1, "web") == "1").then_some(()),
    );
}
