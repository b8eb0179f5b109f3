//! Unit tests of `services`.

use std::collections::{HashMap, HashSet};

use super::ls::{ports_cell, replicas_cell};
use super::pretty::go_duration;
use super::*;
use crate::servicespec::ServiceFlags;
use clap::Parser;
use rswarm_proto::types::port_config::{Protocol, PublishMode};
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{
    Endpoint, GlobalService, JobStatus, Meta, PortConfig, ReplicatedJob, ServiceSpec, Task,
    TaskSpec, TaskState, TaskStatus, Version, VirtualIp,
};
use serde_json::json;

#[derive(Parser)]
struct Create {
    #[command(flatten)]
    flags: ServiceFlags,
    #[arg(required = true, trailing_var_arg = true)]
    image_and_args: Vec<String>,
}

/// A service as the manager would return it for `service create <line>`.
fn service(id: &str, line: &str) -> Service {
    let argv = std::iter::once("create").chain(line.split_whitespace());
    let create = Create::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}"));
    let (image, args) = create
        .image_and_args
        .split_first()
        .unwrap_or_else(|| panic!("no image"));
    let spec = create
        .flags
        .to_spec(image, args)
        .unwrap_or_else(|e| panic!("{e}"));
    let ports = spec.endpoint.clone().map(|e| e.ports).unwrap_or_default();
    Service {
        id: id.into(),
        meta: Some(Meta {
            version: Some(Version { index: 19 }),
            created_at: 1_494_975_164_991_066_200,
            updated_at: 1_494_975_165_230_878_043,
            spec_version: None,
        }),
        endpoint: Some(Endpoint {
            spec: spec.endpoint.clone(),
            ports,
            virtual_ips: vec![],
        }),
        spec: Some(spec),
        ..Default::default()
    }
}

fn running_task(service_id: &str, slot: u64, node: &str, state: TaskState) -> Task {
    Task {
        id: format!("{service_id}-{slot}-{node}"),
        service_id: service_id.into(),
        slot,
        node_id: node.into(),
        desired_state: if state == TaskState::Complete {
            TaskState::Complete as i32
        } else {
            TaskState::Running as i32
        },
        status: Some(TaskStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

const WEB: &str = "--name web --replicas 6 --publish 8080:80 --constraint node.role==worker --limit-memory 64M registry.local:5000/busybox:1 httpd -f -p 80";

#[test]
fn service_ls_default_table() {
    let web = service("x7k2p9q4m1n8b3v6c5z0a2s4d", WEB);
    let mut db = service(
        "a1b2c3d4e5f6g7h8i9j0k1l2m",
        "--name db --mode global --publish mode=host,target=5432,published=5432 postgres:16",
    );
    db.endpoint = None;
    let mut job = service(
        "j0bj0bj0bj0bj0bj0bj0bj0bj",
        "--name migrate --mode replicated-job --replicas 5 --max-concurrent 2 busybox",
    );
    job.endpoint = None;

    let down = HashSet::from(["n3".to_string()]);
    let mut tasks: Vec<Task> = (1..=6)
        .map(|slot| running_task(&web.id, slot, "n1", TaskState::Running))
        .collect();
    // A running task on a node that is down does not count.
    tasks.push(running_task(&db.id, 0, "n1", TaskState::Running));
    tasks.push(running_task(&db.id, 0, "n2", TaskState::Running));
    tasks.push(running_task(&db.id, 0, "n3", TaskState::Running));
    tasks.push(running_task(&job.id, 1, "n1", TaskState::Complete));
    tasks.push(running_task(&job.id, 2, "n1", TaskState::Complete));
    tasks.push(running_task(&job.id, 3, "n1", TaskState::Complete));
    tasks.push(running_task(&job.id, 4, "n2", TaskState::Running));
    tasks.push(running_task(&job.id, 5, "n2", TaskState::Preparing));

    let services = [web, db, job];
    let counts: HashMap<String, ServiceCounts> = services
        .iter()
        .map(|s| (s.id.clone(), service_counts(s, &tasks, &down)))
        .collect();
    let out =
        render_service_list(&services, &counts, None, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        concat!(
            "ID             NAME      MODE             REPLICAS              IMAGE                           PORTS\n",
            "a1b2c3d4e5f6   db        global           2/3                   postgres:16                     \n",
            "j0bj0bj0bj0b   migrate   replicated job   1/2 (3/5 completed)   busybox                         \n",
            "x7k2p9q4m1n8   web       replicated       6/6                   registry.local:5000/busybox:1   *:8080->80/tcp\n",
        )
    );
    let quiet =
        render_service_list(&services, &counts, None, true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(quiet, "a1b2c3d4e5f6\nj0bj0bj0bj0b\nx7k2p9q4m1n8\n");
    let json = render_service_list(&services[1..2], &counts, Some("json"), false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        json,
        "{\"ID\":\"a1b2c3d4e5f6\",\"Image\":\"postgres:16\",\"Mode\":\"global\",\"Name\":\"db\",\"Ports\":\"\",\"Replicas\":\"2/3\"}\n"
    );
}

#[test]
fn replicas_cells() {
    let c = ServiceCounts {
        running: 2,
        desired: 3,
        completed: 4,
    };
    let spec = |mode: Mode, max: u64| ServiceSpec {
        mode: Some(mode),
        task: Some(TaskSpec {
            placement: Some(rswarm_proto::types::Placement {
                max_replicas: max,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        replicas_cell(
            Some(&spec(
                Mode::Replicated(rswarm_proto::types::ReplicatedService { replicas: 3 }),
                1
            )),
            c
        ),
        "2/3 (max 1 per node)"
    );
    assert_eq!(
        replicas_cell(Some(&spec(Mode::Global(GlobalService {}), 0)), c),
        "2/3"
    );
    assert_eq!(
        replicas_cell(
            Some(&spec(
                Mode::ReplicatedJob(ReplicatedJob {
                    max_concurrent: 3,
                    total_completions: 10
                }),
                0
            )),
            c
        ),
        "2/3 (4/10 completed)"
    );
    assert_eq!(
        replicas_cell(
            Some(&spec(Mode::GlobalJob(rswarm_proto::types::GlobalJob {}), 0)),
            c
        ),
        "2/3 (4/7 completed)"
    );
}

#[test]
fn ports_fold_into_ranges_like_docker() {
    let port = |p: u32, t: u32, proto: Protocol, mode: PublishMode| PortConfig {
        name: String::new(),
        protocol: proto as i32,
        target_port: t,
        published_port: p,
        publish_mode: mode as i32,
    };
    let svc = Service {
        endpoint: Some(Endpoint {
            spec: None,
            ports: vec![
                port(8081, 81, Protocol::Tcp, PublishMode::Ingress),
                port(8080, 80, Protocol::Tcp, PublishMode::Ingress),
                port(9000, 90, Protocol::Tcp, PublishMode::Ingress),
                port(53, 53, Protocol::Udp, PublishMode::Ingress),
                port(5000, 5000, Protocol::Tcp, PublishMode::Host),
            ],
            virtual_ips: vec![],
        }),
        ..Default::default()
    };
    assert_eq!(
        ports_cell(&svc),
        "*:8080-8081->80-81/tcp, *:9000->90/tcp, *:53->53/udp"
    );
}

#[test]
fn service_inspect_has_dockers_shape() {
    let mut web = service("x7k2p9q4m1n8b3v6c5z0a2s4d", WEB);
    if let Some(e) = web.endpoint.as_mut() {
        e.virtual_ips.push(VirtualIp {
            network_id: "ingressnetworkid".into(),
            addr: "10.0.0.7/24".into(),
        });
    }
    let expected = json!({
        "ID": "x7k2p9q4m1n8b3v6c5z0a2s4d",
        "Version": {"Index": 19},
        "CreatedAt": "2017-05-16T22:52:44.9910662Z",
        "UpdatedAt": "2017-05-16T22:52:45.230878043Z",
        "Spec": {
            "Name": "web",
            "Labels": {},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "registry.local:5000/busybox:1",
                    "Args": ["httpd", "-f", "-p", "80"],
                    "StopGracePeriod": 10000000000_i64,
                    "Isolation": "default"
                },
                "Resources": {
                    "Limits": {"MemoryBytes": 67108864},
                    "Reservations": {}
                },
                "RestartPolicy": {"Condition": "any", "Delay": 5000000000_i64, "MaxAttempts": 0},
                "Placement": {"Constraints": ["node.role==worker"]},
                "ForceUpdate": 0,
                "Runtime": "container"
            },
            "Mode": {"Replicated": {"Replicas": 6}},
            "UpdateConfig": {
                "Parallelism": 1,
                "FailureAction": "pause",
                "Monitor": 5000000000_i64,
                "MaxFailureRatio": 0,
                "Order": "stop-first"
            },
            "RollbackConfig": {
                "Parallelism": 1,
                "FailureAction": "pause",
                "Monitor": 5000000000_i64,
                "MaxFailureRatio": 0,
                "Order": "stop-first"
            },
            "EndpointSpec": {
                "Mode": "vip",
                "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}]
            }
        },
        "Endpoint": {
            "Spec": {
                "Mode": "vip",
                "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}]
            },
            "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}],
            "VirtualIPs": [{"NetworkID": "ingressnetworkid", "Addr": "10.0.0.7/24"}]
        }
    });
    let actual = service_inspect_json(&web);
    assert_eq!(actual, expected);
    // Field order is Docker's too: it shows in `inspect` output.
    assert_eq!(actual.to_string(), expected.to_string());

    let services = [web];
    let run = |f: &str| {
        render_service_inspect(&services, Some(f), false, 0).unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(run("{{.Spec.Name}} {{.Version.Index}}"), "web 19\n");
    assert_eq!(
        run("{{.Spec.TaskTemplate.ContainerSpec.Image}}"),
        "registry.local:5000/busybox:1\n"
    );
    assert_eq!(
        run("{{json .Spec.TaskTemplate.ContainerSpec.Args}}"),
        "[\"httpd\",\"-f\",\"-p\",\"80\"]\n"
    );
    assert_eq!(
        run("{{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}}"),
        "67108864\n"
    );
    assert_eq!(run("{{.Spec.Mode.Replicated.Replicas}}"), "6\n");
    assert_eq!(
        run("{{range .Endpoint.Ports}}{{.PublishedPort}}->{{.TargetPort}}{{end}}"),
        "8080->80\n"
    );
}

#[test]
fn inspect_shows_container_options_mounts_and_jobs() {
    let mut job = service(
        "j0bj0bj0bj0bj0bj0bj0bj0bj",
        "--name migrate --mode replicated-job --replicas 5 -e A=1 --init --read-only \
         --mount type=tmpfs,target=/t,tmpfs-size=64m --mount type=volume,source=vol,target=/d,volume-nocopy \
         --health-cmd true --health-interval 2s --ulimit nofile=1024:2048 --cap-add net_admin \
         --update-max-failure-ratio 0.1 --restart-window 1m busybox",
    );
    job.job_status = Some(JobStatus {
        job_iteration: 3,
        last_execution: 1_494_975_164_000_000_000,
    });
    let v = service_inspect_json(&job);
    let c = &v["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["Env"], json!(["A=1"]));
    assert_eq!(c["Init"], json!(true));
    assert_eq!(c["ReadOnly"], json!(true));
    assert_eq!(
        c["Mounts"],
        json!([
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 67108864}},
            {"Type": "volume", "Source": "vol", "Target": "/d", "VolumeOptions": {"NoCopy": true}}
        ])
    );
    assert_eq!(
        c["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "true"], "Interval": 2000000000_i64})
    );
    assert_eq!(
        c["Ulimits"],
        json!([{"Name": "nofile", "Hard": 2048, "Soft": 1024}])
    );
    assert_eq!(c["CapabilityAdd"], json!(["CAP_NET_ADMIN"]));
    assert_eq!(
        v["Spec"]["Mode"],
        json!({"ReplicatedJob": {"MaxConcurrent": 5, "TotalCompletions": 5}})
    );
    assert_eq!(
        v["Spec"]["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "on-failure", "Delay": 5000000000_i64, "MaxAttempts": 0, "Window": 60000000000_i64})
    );
    assert_eq!(
        v["Spec"]["UpdateConfig"]["MaxFailureRatio"].to_string(),
        "0.1"
    );
    assert_eq!(
        v["JobStatus"],
        json!({"JobIteration": {"Index": 3}, "LastExecution": "2017-05-16T22:52:44Z"})
    );
}

#[test]
fn pretty_matches_dockers_template() {
    let web = service("x7k2p9q4m1n8b3v6c5z0a2s4d", &format!("-l tier=front {WEB}"));
    let expected = concat!(
        "\n",
        "ID:\t\tx7k2p9q4m1n8b3v6c5z0a2s4d\n",
        "Name:\t\tweb\n",
        "Labels:\n",
        " tier=front\n",
        "Service Mode:\tReplicated\n",
        " Replicas:\t6\n",
        "Placement:\n",
        " Constraints:\t[node.role==worker]\n",
        "UpdateConfig:\n",
        " Parallelism:\t1\n",
        " On failure:\tpause\n",
        " Monitoring Period: 5s\n",
        " Max failure ratio: 0\n",
        " Update order:      stop-first\n",
        "RollbackConfig:\n",
        " Parallelism:\t1\n",
        " On failure:\tpause\n",
        " Monitoring Period: 5s\n",
        " Max failure ratio: 0\n",
        " Rollback order:    stop-first\n",
        "ContainerSpec:\n",
        " Image:\t\tregistry.local:5000/busybox:1\n",
        " Args:\t\thttpd -f -p 80 \n",
        "Resources:\n",
        " Limits:\n",
        "  Memory:\t64MiB\n",
        "Endpoint Mode:\tvip\n",
        "Ports:\n",
        " PublishedPort = 8080\n",
        "  Protocol = tcp\n",
        "  TargetPort = 80\n",
        "  PublishMode = ingress \n",
    );
    assert_eq!(service_pretty(&web, 0), expected);
    assert_eq!(
        render_service_inspect(std::slice::from_ref(&web), Some("pretty"), false, 0),
        Ok(expected.to_string())
    );
    assert!(render_service_inspect(&[web], Some("pretty {{.ID}}"), false, 0).is_err());
}

#[test]
fn go_durations() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(5_000_000_000), "5s");
    assert_eq!(go_duration(90_000_000_000), "1m30s");
    assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    assert_eq!(go_duration(1_500_000), "1.5ms");
    assert_eq!(go_duration(2_500_000_000), "2.5s");
    assert_eq!(go_duration(750), "750ns");
}

#[test]
fn secrets_and_configs_show_as_references() {
    let mut s = service(
        "s3cs3cs3cs3cs3cs3cs3cs3cs",
        "--name app --secret source=pw,target=db_pw,uid=100,mode=0400 --config src=conf,target=/etc/app.conf busybox",
    );
    if let Some(c) = s
        .spec
        .as_mut()
        .and_then(|s| s.task.as_mut())
        .and_then(|t| t.container.as_mut())
    {
        c.secrets[0].secret_id = "pwid".into();
        c.configs[0].config_id = "confid".into();
    }
    let v = service_inspect_json(&s);
    let c = &v["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(
        c["Secrets"],
        json!([{"File": {"Name": "db_pw", "UID": "100", "GID": "0", "Mode": 256}, "SecretID": "pwid", "SecretName": "pw"}])
    );
    assert_eq!(
        c["Configs"],
        json!([{"File": {"Name": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 292}, "ConfigID": "confid", "ConfigName": "conf"}])
    );
    let p = service_pretty(&s, 0);
    assert!(
        p.contains("Secrets:\n Target:\tdb_pw\n  Source:\tpw\nConfigs:\n Target:\t/etc/app.conf\n  Source:\tconf\n"),
        "{p}"
    );
}

#[test]
fn inspect_and_pretty_show_the_log_driver() {
    let svc = service(
        "l0gl0gl0gl0gl0gl0gl0gl0gl",
        "--name chatty --log-driver local --log-opt max-size=2k --log-opt max-file=3 busybox",
    );
    let v = service_inspect_json(&svc);
    let t = &v["Spec"]["TaskTemplate"];
    assert_eq!(
        t["LogDriver"],
        json!({"Name": "local", "Options": {"max-file": "3", "max-size": "2k"}})
    );
    // Docker's field order: after Placement and Networks, before ForceUpdate.
    let keys: Vec<&String> = t
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let at = |k: &str| keys.iter().position(|x| *x == k);
    assert!(at("Placement") < at("LogDriver") && at("LogDriver") < at("ForceUpdate"));
    let pretty = service_pretty(&svc, 0);
    assert!(
        pretty.contains("\nLog Driver:\n Name:\t\tlocal\n LogOpts:\n  max-file:\t\t3\n  max-size:\t\t2k\nEndpoint Mode:"),
        "{pretty}"
    );
    // No driver set: nothing shown, as Docker.
    let plain = service("p1a1np1a1np1a1np1a1np1a1n", "--name plain busybox");
    assert!(service_inspect_json(&plain)["Spec"]["TaskTemplate"]
        .get("LogDriver")
        .is_none());
    assert!(!service_pretty(&plain, 0).contains("Log Driver"));
}

#[test]
fn inspect_and_pretty_show_the_update_status() {
    use rswarm_proto::types::update_status::State;
    use rswarm_proto::types::UpdateStatus;
    let sec = 1_000_000_000i64;
    let now = 1_700_000_000 * sec;
    let mut svc = service("upd8upd8upd8upd8upd8upd8u", "--name web busybox");
    svc.update_status = Some(UpdateStatus {
        state: State::Completed as i32,
        started_at: now - 90 * sec,
        completed_at: now - 30 * sec,
        message: "update completed".into(),
    });
    let v = service_inspect_json(&svc);
    assert_eq!(v["UpdateStatus"]["State"], json!("completed"));
    assert_eq!(v["UpdateStatus"]["Message"], json!("update completed"));
    assert!(v["UpdateStatus"]["StartedAt"].is_string());
    assert!(v["UpdateStatus"]["CompletedAt"].is_string());
    let pretty = service_pretty(&svc, now);
    assert!(
        pretty.contains("\nUpdateStatus:\n State:\t\tcompleted\n Started:\tAbout a minute ago\n Completed:\t30 seconds ago\n Message:\tupdate completed\n"),
        "{pretty}"
    );
    // Docker's state words, and no Completed line before completion.
    let words = [
        (State::Updating, "updating"),
        (State::Paused, "paused"),
        (State::RollbackStarted, "rollback_started"),
        (State::RollbackPaused, "rollback_paused"),
        (State::RollbackCompleted, "rollback_completed"),
    ];
    for (state, word) in words {
        if let Some(u) = svc.update_status.as_mut() {
            u.state = state as i32;
        }
        assert_eq!(
            service_inspect_json(&svc)["UpdateStatus"]["State"],
            json!(word)
        );
        let pretty = service_pretty(&svc, now);
        assert!(pretty.contains(&format!(" State:\t\t{word}\n")), "{pretty}");
        assert!(!pretty.contains("Completed:"), "{pretty}");
    }
    // A service never updated has none.
    let plain = service("p1a1np1a1np1a1np1a1np1a1n", "--name plain busybox");
    assert!(service_inspect_json(&plain).get("UpdateStatus").is_none());
    assert!(!service_pretty(&plain, now).contains("UpdateStatus"));
}
