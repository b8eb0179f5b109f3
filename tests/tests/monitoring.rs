//! The monitoring stack (`stack-examples/monitoring`): its Grafana dashboard
//! is valid dashboard JSON naming the provisioned data source; a real
//! Prometheus (Debian's `prometheus`) given the example's `prometheus.yml`
//! and the node list its `targets.sh` writes scrapes every node of a 3-host
//! cluster with every target `up`, evaluates every query of the dashboard,
//! every metric those queries use is served by the nodes' `/metrics`, and
//! the overview shows the cluster as it is (3 nodes ready, 1 leader, a
//! service's 3 running replicas). Then the stack itself is deployed (its
//! Prometheus is Debian's binary mounted into the test image, Grafana a
//! stand-in that only shows its provisioning files): its Prometheus, on the
//! labelled manager, has every node up, asked through the routing mesh.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rswarm_tests::{try_wait_for, Cluster, Host};
use serde_json::Value;

/// Where the daemons of the e2e test serve their metrics (every address of
/// the host: Prometheus runs on host1 and scrapes host2 and host3 too).
const METRICS_PORT: u16 = 9323;
/// Where the test's own Prometheus listens, in host1's namespace (not
/// 9090: the stack publishes that one on every node).
const PROMETHEUS_ADDR: &str = "127.0.0.1:19090";

/// Metrics Prometheus makes itself for every target (not served by a node).
const PROMETHEUS_OWN: [&str; 2] = ["up", "scrape_duration_seconds"];

/// The rows the issue asks the dashboard for.
const ROWS: [&str; 5] = [
    "Cluster overview",
    "Services",
    "Nodes",
    "Raft",
    "DNS and routing mesh",
];

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack-examples/monitoring")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn dashboard() -> Value {
    let path = example_dir().join("grafana/rswarm.json");
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel, those inside collapsed rows included.
fn all_panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels is a list") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// Every PromQL expression of the dashboard.
fn exprs(dash: &Value) -> Vec<String> {
    all_panels(dash)
        .iter()
        .filter_map(|p| p["targets"].as_array())
        .flatten()
        .map(|t| {
            t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("a target without expr: {t}"))
                .to_string()
        })
        .collect()
}

/// The first query of the panel titled `title`.
fn panel_expr(dash: &Value, title: &str) -> String {
    all_panels(dash)
        .into_iter()
        .find(|p| p["title"] == title)
        .and_then(|p| p["targets"][0]["expr"].as_str())
        .unwrap_or_else(|| panic!("no panel {title:?} with a query"))
        .to_string()
}

/// The metric names an expression uses: its identifiers outside label
/// matchers (`{...}`), grouping (`by (...)`) and strings that are neither
/// PromQL functions and keywords nor numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const NOT_METRICS: [&str; 17] = [
        "sum",
        "max",
        "min",
        "avg",
        "count",
        "rate",
        "increase",
        "histogram_quantile",
        "by",
        "without",
        "or",
        "and",
        "unless",
        "vector",
        "on",
        "ignoring",
        "offset",
    ];
    let mut names = BTreeSet::new();
    let mut depth_braces = 0;
    let mut in_string = false;
    let mut after_by = false;
    let mut word = String::new();
    let mut grouping = 0; // parentheses depth of a `by (...)` list, 0 outside
    let mut parens = 0;
    let chars: Vec<char> = expr.chars().chain([' ']).collect();
    for &c in &chars {
        if in_string {
            in_string = c != '"';
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            let w = std::mem::take(&mut word);
            let is_number = w.chars().next().is_some_and(|f| f.is_ascii_digit());
            if w == "by" || w == "without" || w == "on" || w == "ignoring" {
                after_by = true;
            } else if depth_braces == 0
                && grouping == 0
                && !is_number
                && !NOT_METRICS.contains(&w.as_str())
            {
                names.insert(w);
            }
        }
        match c {
            '"' => in_string = true,
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => depth_braces += 1, // a range: `[5m]`
            ']' => depth_braces -= 1,
            '(' => {
                parens += 1;
                if after_by {
                    grouping = parens;
                    after_by = false;
                }
            }
            ')' => {
                if grouping == parens {
                    grouping = 0;
                }
                parens -= 1;
            }
            _ => {}
        }
    }
    names
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let got = metric_names(
        r#"histogram_quantile(0.95, sum by (le, instance) (rate(rswarm_x_bucket{a="b c",d!="sum"}[5m]))) / max(up) or vector(0)"#,
    );
    assert_eq!(
        got,
        BTreeSet::from(["rswarm_x_bucket".to_string(), "up".to_string()])
    );
    assert_eq!(
        metric_names("rswarm_raft_commit_index - rswarm_raft_applied_index"),
        BTreeSet::from([
            "rswarm_raft_applied_index".to_string(),
            "rswarm_raft_commit_index".to_string()
        ])
    );
}

#[test]
fn the_dashboard_is_valid_grafana_json_on_the_provisioned_data_source() {
    let dash = dashboard();
    assert!(dash["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty() && u.len() <= 40));
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion: {}",
        dash["schemaVersion"]
    );
    // The data source the panels name is the one provisioned for Grafana.
    let datasource = read(&example_dir().join("grafana/datasource.yml"));
    assert!(datasource.contains("uid: prometheus"), "{datasource}");
    assert!(datasource.contains("type: prometheus"), "{datasource}");
    assert!(
        datasource.contains("url: http://prometheus:9090"),
        "the stack's service name and port: {datasource}"
    );
    let provider = read(&example_dir().join("grafana/dashboards.yml"));
    let app = read(&example_dir().join("app.yml"));
    assert!(
        provider.contains("path: /etc/grafana/dashboards"),
        "{provider}"
    );
    assert!(
        app.contains("target: /etc/grafana/dashboards/rswarm.json"),
        "app.yml mounts the dashboard where the provider reads: {app}"
    );

    let panels = all_panels(&dash);
    let mut ids = BTreeSet::new();
    let mut rows = Vec::new();
    let mut queries = 0;
    for p in &panels {
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel without id: {p}"));
        assert!(ids.insert(id), "panel id {id} twice");
        let kind = p["type"].as_str().unwrap_or_default();
        assert!(
            ["row", "stat", "timeseries", "gauge", "table", "bargauge"].contains(&kind),
            "panel {id}: type {kind:?}"
        );
        assert!(
            p["title"].as_str().is_some_and(|t| !t.is_empty()),
            "panel {id}: no title"
        );
        let g = &p["gridPos"];
        let (x, w, h) = (g["x"].as_u64(), g["w"].as_u64(), g["h"].as_u64());
        assert!(
            matches!((x, w, h, g["y"].as_u64()), (Some(x), Some(w), Some(h), Some(_)) if w > 0 && h > 0 && x + w <= 24),
            "panel {id}: gridPos {g}"
        );
        if kind == "row" {
            rows.push(p["title"].as_str().unwrap_or_default().to_string());
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "prometheus", "panel {id}");
        let targets = p["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("panel {id} has no query"));
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "prometheus", "panel {id}: {t}");
            let r = t["refId"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {id}: no refId"));
            assert!(refs.insert(r.to_string()), "panel {id}: refId {r} twice");
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(
                !metric_names(expr).is_empty(),
                "panel {id}: {expr:?} uses no metric"
            );
            queries += 1;
        }
    }
    assert_eq!(rows, ROWS, "the dashboard's rows");
    assert!(queries >= 30, "only {queries} queries");
}

/// GET `url` from host `h`'s namespace.
fn get(h: &Host, url: &str) -> Option<String> {
    let out = h.exec(&["curl", "-sSf", "-m", "5", url]);
    out.success().then_some(out.stdout)
}

/// The sample names a node's `/metrics` can show: each family's name as its
/// `# TYPE` line declares it (with `_total`, `_bucket`, … as its type adds
/// them), so families without a sample yet count too, and every sample's.
fn served_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            for s in suffixes {
                names.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#') {
            if let Some(name) = line.split(['{', ' ']).next().filter(|n| !n.is_empty()) {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Prometheus's HTTP API answer to GET `path` (with `query` url-encoded).
fn api(h: &Host, path: &str, query: Option<&str>) -> Value {
    let url = format!("http://{PROMETHEUS_ADDR}{path}");
    let mut cmd = vec!["curl", "-sS", "-m", "10", "-G", url.as_str()];
    let arg;
    if let Some(q) = query {
        arg = format!("query={q}");
        cmd.extend(["--data-urlencode", arg.as_str()]);
    }
    let out = h.exec(&cmd);
    serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn prometheus_scrapes_every_node_and_the_dashboard_queries_only_served_metrics() {
    let listen = format!("0.0.0.0:{METRICS_PORT}");
    let cluster = Cluster::builder(3)
        .with_registry()
        .daemon_args(&["--metrics-addr", &listen])
        .start()
        .unwrap();
    cluster.init_swarm(1, 2).unwrap();
    let h1 = cluster.host(1);
    // Work for every family the dashboard reads (a family without a sample
    // is not served at all): tasks on every node with a memory limit and a
    // health check, behind a VIP and the mesh, asking the embedded DNS; and
    // a task no node can take (pending, with its reason).
    let image = cluster.registry().busybox();
    h1.ok(&["network", "create", "--subnet", "10.31.0.0/24", "backend"]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--network",
        "backend",
        "--replicas",
        "3",
        "--publish",
        "8080:80",
        "--limit-memory",
        "64M",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        &image,
        "sh",
        "-c",
        "while true; do nslookup web >/dev/null 2>&1; sleep 1; done",
    ]);
    h1.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "stuck",
        "--constraint",
        "node.labels.nowhere==true",
        &image,
        "sleep",
        "3600",
    ]);
    h1.wait_running_tasks("web", 3);

    // The Compose file loads, with the images interpolated.
    let app = example_dir().join("app.yml").display().to_string();
    let socket = format!("unix://{}", h1.socket().display());
    let binary = h1.binary().display().to_string();
    let config = h1.exec(&[
        "env",
        "PROMETHEUS_IMAGE=registry.local:5000/prom/prometheus:v2.53.0",
        &binary,
        "-H",
        &socket,
        "stack",
        "config",
        "-c",
        &app,
    ]);
    assert!(config.success(), "stack config: {config}");
    assert!(
        config
            .stdout
            .contains("image: registry.local:5000/prom/prometheus:v2.53.0")
            && config.stdout.contains("image: grafana/grafana:"),
        "{config}"
    );

    // The example's targets.sh lists the nodes from host1 (a manager).
    let dir = cluster.dir().join("monitoring");
    std::fs::create_dir_all(dir.join("targets")).unwrap();
    let targets_file = dir.join("targets/rswarm.json");
    let rswarm = format!("{binary} -H {socket}");
    let script = example_dir().join("targets.sh").display().to_string();
    let out = h1.exec(&[
        "env",
        &format!("RSWARM={rswarm}"),
        "sh",
        &script,
        &targets_file.display().to_string(),
    ]);
    assert!(out.success(), "targets.sh: {out}");
    let listed: Value = serde_json::from_str(&read(&targets_file))
        .unwrap_or_else(|e| panic!("targets.sh wrote no JSON ({e}): {}", read(&targets_file)));
    let want: BTreeSet<String> = cluster
        .hosts()
        .iter()
        .map(|h| format!("{}:{METRICS_PORT}", h.addr()))
        .collect();
    let got: BTreeSet<String> = listed
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    assert_eq!(got, want, "targets.sh wrote {listed}");

    // The example's prometheus.yml, pointed at this file and scraping often.
    let example = read(&example_dir().join("prometheus.yml"));
    let mut config = example.clone();
    for (from, to) in [
        (
            "/etc/prometheus/targets/",
            format!("{}/", dir.join("targets").display()),
        ),
        ("scrape_interval: 15s", "scrape_interval: 1s".to_string()),
    ] {
        assert!(
            config.contains(from),
            "prometheus.yml has no {from:?}: {example}"
        );
        config = config.replace(from, &to);
    }
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let check = h1.exec(&[
        "promtool",
        "check",
        "config",
        &config_path.display().to_string(),
    ]);
    assert!(check.success(), "promtool check config: {check}");

    let mut prometheus = h1.spawn_in_background(&[
        "prometheus",
        &format!("--config.file={}", config_path.display()),
        &format!("--storage.tsdb.path={}", dir.join("data").display()),
        &format!("--web.listen-address={PROMETHEUS_ADDR}"),
    ]);

    // Every node is a target, and every target is up.
    let hostnames: BTreeSet<String> = cluster
        .hosts()
        .iter()
        .map(|h| h.name().to_string())
        .collect();
    let mut last = Value::Null;
    let waited = try_wait_for(Duration::from_secs(60), "all three targets up", || {
        last = api(h1, "/api/v1/targets", None);
        let active = last["data"]["activeTargets"].as_array()?;
        let up: BTreeSet<String> = active
            .iter()
            .filter(|t| t["health"] == "up")
            .filter_map(|t| t["labels"]["instance"].as_str().map(str::to_string))
            .collect();
        (active.len() == 3 && up == hostnames).then_some(())
    });
    if let Err(e) = waited {
        let log = prometheus.output();
        panic!("{e}: last /api/v1/targets {last}\nprometheus log:\n{log}");
    }
    let urls: BTreeSet<String> = last["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["scrapeUrl"].as_str().map(str::to_string))
        .collect();
    let want_urls: BTreeSet<String> = want.iter().map(|t| format!("http://{t}/metrics")).collect();
    assert_eq!(urls, want_urls);
    let up = api(h1, "/api/v1/query", Some("sum(up{job=\"rswarm\"})"));
    assert_eq!(up["data"]["result"][0]["value"][1], "3", "{up}");

    // Every query of the dashboard is PromQL this Prometheus evaluates.
    let dash = dashboard();
    for expr in exprs(&dash) {
        let answer = api(h1, "/api/v1/query", Some(&expr));
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
    }

    // Every metric the dashboard uses is served by the nodes (a family shows
    // from its first sample on: a DNS query, a pull, a pending pass).
    let used: BTreeSet<String> = exprs(&dash).iter().flat_map(|e| metric_names(e)).collect();
    let mut missing = Vec::new();
    let served = try_wait_for(
        Duration::from_secs(30),
        "the dashboard's metrics to be served",
        || {
            let mut served: BTreeSet<String> = PROMETHEUS_OWN.map(str::to_string).into();
            for h in cluster.hosts() {
                let url = format!("http://{}:{METRICS_PORT}/metrics", h.addr());
                served.extend(served_names(&get(h1, &url)?));
            }
            missing = used.difference(&served).cloned().collect();
            missing.is_empty().then_some(())
        },
    );
    assert!(
        served.is_ok(),
        "the dashboard queries metrics no node serves: {missing:?}"
    );

    // The overview's stats show the cluster as it is.
    for (title, want) in [
        ("Nodes ready", "3"),
        ("Managers", "1"),
        ("Raft leaders", "1"),
        ("Nodes scraped", "1"),
    ] {
        let expr = panel_expr(&dash, title);
        let mut got = Value::Null;
        let seen = try_wait_for(Duration::from_secs(30), title, || {
            got = api(h1, "/api/v1/query", Some(&expr));
            (got["data"]["result"][0]["value"][1] == want).then_some(())
        });
        assert!(seen.is_ok(), "{title} ({expr}) is not {want}: {got}");
    }
    let running = panel_expr(&dash, "Running replicas");
    let mut got = Value::Null;
    let seen = try_wait_for(Duration::from_secs(30), "web's running replicas", || {
        got = api(h1, "/api/v1/query", Some(&running));
        let web = got["data"]["result"]
            .as_array()?
            .iter()
            .find(|r| r["metric"]["service"] == "web")?;
        (web["value"][1] == "3").then_some(())
    });
    assert!(seen.is_ok(), "web does not show 3 running replicas: {got}");

    // The stack itself, its Prometheus in a task: the test registry has no
    // prom/prometheus, so an override runs Debian's binary (and the libc it
    // links) mounted into the busybox image; everything else (the config,
    // the targets mount, the placement, port 9090) is app.yml's.
    h1.ok(&["node", "update", "--label-add", "monitoring=true", "host1"]);
    let override_file = dir.join("override.yml");
    std::fs::write(
        &override_file,
        "services:\n  prometheus:\n    entrypoint: [/usr/bin/prometheus]\n    volumes:\n\
         \x20     - {type: bind, source: /usr/bin/prometheus, target: /usr/bin/prometheus, read_only: true}\n\
         \x20     - {type: bind, source: /lib/x86_64-linux-gnu, target: /lib/x86_64-linux-gnu, read_only: true}\n\
         \x20     - {type: bind, source: /lib64, target: /lib64, read_only: true}\n\
         \x20 grafana:\n    command: [sleep, \"3600\"]\n",
    )
    .unwrap();
    let deploy = h1.exec(&[
        "env",
        &format!("PROMETHEUS_IMAGE={image}"),
        &format!("GRAFANA_IMAGE={image}"),
        &format!("MONITORING_TARGETS_DIR={}", dir.join("targets").display()),
        &binary,
        "-H",
        &socket,
        "stack",
        "deploy",
        "-c",
        &app,
        "-c",
        &override_file.display().to_string(),
        "mon",
    ]);
    assert!(deploy.success(), "stack deploy: {deploy}");
    let h2 = cluster.host(2);
    let mut last = String::new();
    let waited = try_wait_for(
        Duration::from_secs(90),
        "the stack's Prometheus to have every node up",
        || {
            let out = h2.exec(&[
                "curl",
                "-sS",
                "-m",
                "5",
                "http://127.0.0.1:9090/api/v1/targets",
            ]);
            last = out.to_string();
            let v: Value = serde_json::from_str(&out.stdout).ok()?;
            let active = v["data"]["activeTargets"].as_array()?;
            let up: BTreeSet<String> = active
                .iter()
                .filter(|t| t["health"] == "up")
                .filter_map(|t| t["labels"]["instance"].as_str().map(str::to_string))
                .collect();
            (active.len() == 3 && up == hostnames).then_some(())
        },
    );
    if let Err(e) = waited {
        let ps = h1.rswarm(&["stack", "ps", "--no-trunc", "mon"]);
        panic!("{e}: last answer through the mesh on host2: {last}\n{ps}");
    }
    let placed = h1.ok(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}}",
        "mon_prometheus",
    ]);
    assert_eq!(placed.trim(), "host1", "on the labelled manager");
    // Grafana's task finds its provisioning where Grafana reads it.
    h1.wait_running_tasks("mon_grafana", 1);
    for (inside, file) in [
        (
            "/etc/grafana/provisioning/datasources/rswarm.yml",
            "grafana/datasource.yml",
        ),
        (
            "/etc/grafana/provisioning/dashboards/rswarm.yml",
            "grafana/dashboards.yml",
        ),
        ("/etc/grafana/dashboards/rswarm.json", "grafana/rswarm.json"),
    ] {
        let got = h1.ok(&["exec", "mon_grafana.1", "cat", inside]);
        assert!(
            got == read(&example_dir().join(file)),
            "{inside} is not {file}"
        );
    }

    assert!(
        prometheus.is_running(),
        "prometheus died:\n{}",
        prometheus.output()
    );
    prometheus.kill();
}
