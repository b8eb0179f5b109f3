//! Unit tests of `flags`.

use super::*;
use clap::Parser;
use rswarm_proto::types::endpoint_spec::ResolutionMode;
use rswarm_proto::types::mount::Type as MountType;
use rswarm_proto::types::port_config::{Protocol, PublishMode};
use rswarm_proto::types::restart_policy::Condition;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_config::{FailureAction, UpdateOrder};
use rswarm_proto::types::{
    Annotations, ContainerSpec, EndpointSpec, GlobalService, Mount, Placement, PortConfig,
    ReplicatedService, ResourceLimits, ResourceRequirements, RestartPolicy, TaskSpec, Ulimit,
    UpdateConfig,
};
use std::collections::HashMap;

use crate::servicespec::policy::default_update_config;

/// `service create`'s shape: the flags, then IMAGE [COMMAND] [ARG...].
#[derive(Parser, Debug)]
pub(crate) struct Create {
    #[command(flatten)]
    pub flags: ServiceFlags,
    #[arg(required = true, trailing_var_arg = true)]
    pub image_and_args: Vec<String>,
}

pub(crate) fn no_env(_: &str) -> Option<String> {
    None
}

fn spec_from(line: &str) -> Result<ServiceSpec, String> {
    let argv = std::iter::once("create").chain(line.split_whitespace());
    let create = Create::try_parse_from(argv).map_err(|e| e.to_string())?;
    let (image, args) = create
        .image_and_args
        .split_first()
        .ok_or_else(|| "no image".to_string())?;
    let local = LocalInputs {
        env: &no_env,
        read_file: &read_local_file,
        cwd: PathBuf::from("/work"),
    };
    create
        .flags
        .to_spec_with(image, args, &local)
        .map_err(|e| e.to_string())
}

fn spec(line: &str) -> ServiceSpec {
    spec_from(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn err(line: &str) -> String {
    match spec_from(line) {
        Ok(s) => panic!("{line}: expected an error, got {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_issues_example_becomes_this_spec() {
    let s = spec("--name web --replicas 6 --publish 8080:80 --constraint node.role==worker --limit-memory 64M registry.local:5000/busybox:1 httpd -f -p 80");
    let expected = ServiceSpec {
        annotations: Some(Annotations {
            name: "web".into(),
            labels: HashMap::new(),
        }),
        task: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: "registry.local:5000/busybox:1".into(),
                args: vec!["httpd".into(), "-f".into(), "-p".into(), "80".into()],
                ..Default::default()
            }),
            resources: Some(ResourceRequirements {
                limits: Some(ResourceLimits {
                    nano_cpus: 0,
                    memory_bytes: 64 * 1024 * 1024,
                    pids: 0,
                }),
                reservations: Some(ResourceLimits::default()),
            }),
            restart: Some(RestartPolicy {
                condition: Condition::Any as i32,
                delay_ns: 5_000_000_000,
                max_attempts: 0,
                window_ns: 0,
                delay_set: true,
            }),
            placement: Some(Placement {
                constraints: vec!["node.role==worker".into()],
                ..Default::default()
            }),
            networks: vec![],
            force_update: 0,
            log_driver: None,
        }),
        mode: Some(Mode::Replicated(ReplicatedService { replicas: 6 })),
        update: Some(UpdateConfig {
            parallelism: 1,
            delay_ns: 0,
            failure_action: FailureAction::Pause as i32,
            monitor_ns: 5_000_000_000,
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst as i32,
        }),
        rollback: Some(default_update_config()),
        endpoint: Some(EndpointSpec {
            mode: ResolutionMode::Vip as i32,
            ports: vec![PortConfig {
                name: String::new(),
                protocol: Protocol::Tcp as i32,
                target_port: 80,
                published_port: 8080,
                publish_mode: PublishMode::Ingress as i32,
            }],
        }),
        depends_on: vec![],
    };
    assert_eq!(s, expected);
}

#[test]
fn container_flags_fill_the_container_spec() {
    let s = spec("--name api -e A=1 -e B= -l tier=front --container-label c=1 \
         --mount type=bind,source=./data,target=/data,readonly --mount type=tmpfs,target=/t,tmpfs-size=64m \
         -w /srv -u app:app --group audio --hostname {{.Service.Name}}-{{.Task.Slot}} \
         --entrypoint /bin/sh --stop-signal SIGQUIT --stop-grace-period 30s --init --read-only -t \
         --health-cmd true --health-interval 2s --health-start-interval 500ms --health-retries 3 --ulimit nofile=1024:2048 \
         --sysctl net.core.somaxconn=1024 --cap-add net_admin --cap-drop chown --network backend \
         busybox:1 -c true");
    let task = s.task.unwrap_or_default();
    let c = task.container.unwrap_or_default();
    assert_eq!(c.env, vec!["A=1".to_string(), "B=".into()]);
    assert_eq!(
        s.annotations
            .unwrap_or_default()
            .labels
            .get("tier")
            .map(String::as_str),
        Some("front")
    );
    assert_eq!(c.labels.get("c").map(String::as_str), Some("1"));
    assert_eq!(
        c.mounts,
        vec![
            Mount {
                r#type: MountType::Bind as i32,
                source: "/work/data".into(),
                target: "/data".into(),
                read_only: true,
                ..Default::default()
            },
            Mount {
                r#type: MountType::Tmpfs as i32,
                target: "/t".into(),
                tmpfs_size_bytes: 64 << 20,
                ..Default::default()
            }
        ]
    );
    assert_eq!((c.dir.as_str(), c.user.as_str()), ("/srv", "app:app"));
    assert_eq!(c.groups, vec!["audio".to_string()]);
    assert_eq!(c.hostname, "{{.Service.Name}}-{{.Task.Slot}}");
    assert_eq!(c.command, vec!["/bin/sh".to_string()]);
    assert_eq!(c.args, vec!["-c".to_string(), "true".into()]);
    assert_eq!(c.stop_signal, "SIGQUIT");
    assert_eq!(c.stop_grace_period_ns, 30_000_000_000);
    assert!(c.init && c.read_only && c.tty);
    let h = c.healthcheck.unwrap_or_default();
    assert_eq!(h.test, vec!["CMD-SHELL".to_string(), "true".into()]);
    assert_eq!((h.interval_ns, h.retries), (2_000_000_000, 3));
    assert_eq!(h.start_interval_ns, 500_000_000);
    assert_eq!(
        c.ulimits,
        vec![Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048
        }]
    );
    assert_eq!(
        c.sysctls.get("net.core.somaxconn").map(String::as_str),
        Some("1024")
    );
    assert_eq!(c.cap_add, vec!["CAP_NET_ADMIN".to_string()]);
    assert_eq!(c.cap_drop, vec!["CAP_CHOWN".to_string()]);
    assert_eq!(task.networks[0].target, "backend");
}

#[test]
fn policy_flags() {
    let s = spec("--mode global --restart-condition on-failure --restart-delay 1s --restart-max-attempts 3 \
         --restart-window 1m --update-parallelism 2 --update-delay 10s --update-failure-action rollback \
         --update-monitor 30s --update-max-failure-ratio 0.25 --update-order start-first \
         --rollback-parallelism 0 --rollback-failure-action continue --limit-cpu 0.5 --reserve-cpu 0.25 \
         --reserve-memory 32M --limit-pids 100 --placement-pref spread=node.labels.zone \
         --endpoint-mode dnsrr -p mode=host,target=80,published=8080 busybox");
    assert_eq!(s.mode, Some(Mode::Global(GlobalService {})));
    let task = s.task.clone().unwrap_or_default();
    assert_eq!(
        task.restart,
        Some(RestartPolicy {
            condition: Condition::OnFailure as i32,
            delay_ns: 1_000_000_000,
            max_attempts: 3,
            window_ns: 60_000_000_000,
            delay_set: true,
        })
    );
    assert_eq!(
        s.update,
        Some(UpdateConfig {
            parallelism: 2,
            delay_ns: 10_000_000_000,
            failure_action: FailureAction::Rollback as i32,
            monitor_ns: 30_000_000_000,
            max_failure_ratio: 0.25,
            order: UpdateOrder::StartFirst as i32,
        })
    );
    let rollback = s.rollback.unwrap_or_default();
    assert_eq!(
        (rollback.parallelism, rollback.failure_action()),
        (0, FailureAction::Continue)
    );
    let r = task.resources.unwrap_or_default();
    assert_eq!(
        r.limits,
        Some(ResourceLimits {
            nano_cpus: 500_000_000,
            memory_bytes: 0,
            pids: 100
        })
    );
    assert_eq!(
        r.reservations,
        Some(ResourceLimits {
            nano_cpus: 250_000_000,
            memory_bytes: 32 << 20,
            pids: 0
        })
    );
    let placement = task.placement.unwrap_or_default();
    assert_eq!(
        placement.preferences[0].spread_descriptor,
        "node.labels.zone"
    );
    let endpoint = s.endpoint.unwrap_or_default();
    assert_eq!(endpoint.mode(), ResolutionMode::Dnsrr);
    assert_eq!(endpoint.ports[0].publish_mode(), PublishMode::Host);
}

#[test]
fn jobs_default_to_on_failure_and_fill_completions() {
    let s = spec("--mode replicated-job --replicas 5 --max-concurrent 2 busybox true");
    assert_eq!(
        s.mode,
        Some(Mode::ReplicatedJob(rswarm_proto::types::ReplicatedJob {
            max_concurrent: 2,
            total_completions: 5
        }))
    );
    let restart = s.task.and_then(|t| t.restart).unwrap_or_default();
    assert_eq!(restart.condition(), Condition::OnFailure);
}

#[test]
fn env_files_come_before_env_flags() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("app.env");
    std::fs::write(&path, "# settings\nA=from-file\nB=2\n").unwrap_or_else(|e| panic!("{e}"));
    let s = spec(&format!(
        "--env-file {} -e A=from-flag busybox",
        path.display()
    ));
    let env = s
        .task
        .and_then(|t| t.container)
        .map(|c| c.env)
        .unwrap_or_default();
    assert_eq!(
        env,
        vec![
            "A=from-file".to_string(),
            "B=2".into(),
            "A=from-flag".into()
        ]
    );
    assert_eq!(
        err("--env-file /nonexistent/app.env busybox"),
        "open /nonexistent/app.env: no such file or directory"
    );
}

#[test]
fn invalid_values_name_their_flag() {
    assert_eq!(
        err("--publish abc busybox"),
        "invalid argument \"abc\" for \"-p, --publish\" flag: invalid containerPort: abc"
    );
    assert_eq!(
        err("--limit-memory 64X busybox"),
        "invalid argument \"64X\" for \"--limit-memory\" flag: invalid size: '64X'"
    );
    assert_eq!(
        err("--replicas six busybox"),
        "invalid argument \"six\" for \"--replicas\" flag: strconv.ParseUint: parsing \"six\": invalid syntax"
    );
    assert_eq!(
        err("--constraint node.role=worker busybox"),
        "invalid argument \"node.role=worker\" for \"--constraint\" flag: constraint expected one operator from ==, !="
    );
    assert_eq!(
        err("--limit-cpu lots busybox"),
        "invalid argument \"lots\" for \"--limit-cpu\" flag: failed to parse lots as a rational number"
    );
    assert_eq!(
        err("--restart-delay 5 busybox"),
        "invalid argument \"5\" for \"--restart-delay\" flag: invalid duration \"5\": missing unit (ns, us, ms, s, m, h)"
    );
    assert_eq!(
        err("--restart-condition always busybox"),
        "invalid argument \"always\" for \"--restart-condition\" flag: must be \"none\", \"on-failure\" or \"any\""
    );
    assert_eq!(
        err("--update-max-failure-ratio 2 busybox"),
        "invalid argument \"2\" for \"--update-max-failure-ratio\" flag: must be a fraction between 0 and 1"
    );
    assert_eq!(
        err("--rollback-failure-action rollback busybox"),
        "invalid argument \"rollback\" for \"--rollback-failure-action\" flag: must be \"pause\" or \"continue\""
    );
    assert_eq!(
        err("--ulimit nofile=2:1 busybox"),
        "invalid argument \"nofile=2:1\" for \"--ulimit\" flag: ulimit soft limit must be less than or equal to hard limit: 2 > 1"
    );
    assert_eq!(
        err("--mount type=bind,source=/x busybox"),
        "invalid argument \"type=bind,source=/x\" for \"--mount\" flag: target is required"
    );
    assert_eq!(
        err("--endpoint-mode rr busybox"),
        "invalid argument \"rr\" for \"--endpoint-mode\" flag: must be \"vip\" or \"dnsrr\""
    );
    assert_eq!(
        err("--stop-signal SIGNOPE busybox"),
        "invalid argument \"SIGNOPE\" for \"--stop-signal\" flag: Invalid signal: SIGNOPE"
    );
}

#[test]
fn invalid_combinations_are_refused() {
    assert_eq!(
        err("--mode global --replicas 3 busybox"),
        "replicas can only be used with replicated or replicated-job mode"
    );
    assert_eq!(
        err("--max-concurrent 2 busybox"),
        "max-concurrent can only be used with replicated-job mode"
    );
    assert_eq!(
        err("--mode global --replicas-max-per-node 1 busybox"),
        "replicas-max-per-node can only be used with replicated or replicated-job mode"
    );
    assert_eq!(
        err("--no-healthcheck --health-cmd true busybox"),
        "--no-healthcheck conflicts with --health-* options"
    );
    assert_eq!(
        err("--endpoint-mode dnsrr -p 8080:80 busybox"),
        "EndpointSpec: port published with ingress mode can't be used with dnsrr mode"
    );
    assert_eq!(
        err("-p 8080:80 -p 8080:81 busybox"),
        "EndpointSpec: duplicate published ports provided (8080)"
    );
    assert_eq!(
        err("--name web.1 busybox"),
        "invalid name \"web.1\": name must be valid as a DNS name component"
    );
    assert_eq!(
        err("--limit-memory 1M busybox"),
        "invalid memory value 1048576: Must be at least 6MiB"
    );
    assert_eq!(
        err("--limit-memory 64M --reserve-memory 128M busybox"),
        "memory reservation (128MiB) must not exceed the memory limit (64MiB)"
    );
    assert_eq!(
        err("--mount type=bind,source=/x,target=/d --mount type=volume,target=/d busybox"),
        "ContainerSpec: duplicate mount point: /d"
    );
    assert_eq!(
        err("--mode replicated-job --restart-condition any busybox"),
        "restart condition \"any\" cannot be used with jobs (a completed job would run again): use on-failure or none"
    );
    assert_eq!(
        err("Busybox"),
        "ContainerSpec: \"Busybox\" is not a valid repository/tag: invalid reference format: repository name must be lowercase"
    );
    assert_eq!(
        err("--health-interval 10us --health-cmd true busybox"),
        "Interval in Healthcheck cannot be less than 1ms"
    );
    assert_eq!(
        err("--health-start-interval 10us --health-cmd true busybox"),
        "StartInterval in Healthcheck cannot be less than 1ms"
    );
    assert_eq!(
        err("--no-healthcheck --health-start-interval 1s busybox"),
        "--no-healthcheck conflicts with --health-* options"
    );
}

#[test]
fn no_healthcheck_disables_the_images() {
    let s = spec("--no-healthcheck busybox");
    let h = s.task.and_then(|t| t.container).and_then(|c| c.healthcheck);
    assert_eq!(h.map(|h| h.test), Some(vec!["NONE".to_string()]));
}

#[test]
fn network_long_syntax() {
    assert_eq!(
        parse_network("name=backend,alias=db,alias=pg"),
        Ok(NetworkAttachmentConfig {
            target: "backend".into(),
            aliases: vec!["db".into(), "pg".into()]
        })
    );
    assert_eq!(
        parse_network("alias=db").map_err(|e| e.to_string()),
        Err("network name/id is not specified".into())
    );
}

#[test]
fn secrets_and_configs_by_name_with_their_files() {
    let s = spec("--secret db_pw --secret source=tls,target=/etc/tls.key,uid=100,gid=101,mode=0400 --config src=app.conf,target=/etc/app.conf busybox");
    let c = s.task.and_then(|t| t.container).unwrap_or_default();
    let secrets: Vec<(String, String, String, String, u32)> = c
        .secrets
        .iter()
        .map(|r| {
            let f = r.file.clone().unwrap_or_default();
            (r.secret_name.clone(), f.name, f.uid, f.gid, f.mode)
        })
        .collect();
    assert_eq!(
        secrets,
        vec![
            (
                "db_pw".into(),
                "db_pw".into(),
                "0".into(),
                "0".into(),
                0o444
            ),
            (
                "tls".into(),
                "/etc/tls.key".into(),
                "100".into(),
                "101".into(),
                0o400
            ),
        ]
    );
    assert!(c.secrets.iter().all(|r| r.secret_id.is_empty()));
    assert_eq!(c.configs.len(), 1);
    assert_eq!(c.configs[0].config_name, "app.conf");
    assert_eq!(
        c.configs[0].file.as_ref().map(|f| f.name.as_str()),
        Some("/etc/app.conf")
    );
    assert_eq!(
        err("--secret target=x busybox"),
        "invalid argument \"target=x\" for \"--secret\" flag: source is required"
    );
    assert_eq!(
        err("--config src=a,mode=0999 busybox"),
        "invalid argument \"src=a,mode=0999\" for \"--config\" flag: invalid mode specified: strconv.ParseUint: parsing \"0999\": invalid syntax"
    );
    assert_eq!(
        err("--secret a --secret src=b,target=a busybox"),
        "secret \"b\": target /run/secrets/a is used more than once"
    );
}

#[test]
fn log_driver_and_log_opts() {
    let log = |line: &str| {
        spec(line).task.and_then(|t| t.log_driver).map(|d| {
            let mut options: Vec<(String, String)> = d.options.into_iter().collect();
            options.sort();
            (d.name, options)
        })
    };
    assert_eq!(log("busybox"), None);
    assert_eq!(
        log("--log-driver local --log-opt max-size=2k --log-opt max-file=3 busybox"),
        Some((
            "local".into(),
            vec![
                ("max-file".into(), "3".into()),
                ("max-size".into(), "2k".into())
            ]
        ))
    );
    // Options alone are the default driver's.
    assert_eq!(
        log("--log-opt max-file=3 busybox"),
        Some(("json-file".into(), vec![("max-file".into(), "3".into())]))
    );
    assert_eq!(
        log("--log-driver none busybox"),
        Some(("none".into(), vec![]))
    );
    assert_eq!(
        err("--log-driver syslog busybox"),
        "logging driver \"syslog\" is not supported: rswarm keeps task logs on the node (json-file, local or none)"
    );
    assert_eq!(
        err("--log-opt max-file=0 busybox"),
        "max-file cannot be less than 1"
    );
    assert_eq!(
        err("--log-opt =1 busybox"),
        "invalid argument \"=1\" for \"--log-opt\" flag: invalid log opt \"=1\": expected key=value"
    );
}
