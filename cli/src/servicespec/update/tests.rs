//! Unit tests of `update`: flags to edits of a current spec.

use super::*;
use crate::servicespec::flags::read_local_file;
use crate::servicespec::flags::tests::{no_env, Create};
use clap::Parser;
use rswarm_proto::types::port_config::{Protocol, PublishMode};
use rswarm_proto::types::PortConfig;
use std::path::PathBuf;

/// `service update`'s shape: the flags, then SERVICE.
#[derive(Parser, Debug)]
struct Update {
    #[command(flatten)]
    flags: UpdateFlags,
    service: String,
}

fn local() -> LocalInputs<'static> {
    LocalInputs {
        env: &no_env,
        read_file: &read_local_file,
        cwd: PathBuf::from("/work"),
    }
}

fn created(line: &str) -> ServiceSpec {
    let argv = std::iter::once("create").chain(line.split_whitespace());
    let c = Create::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}"));
    let (image, args) = c.image_and_args.split_first().expect("image");
    c.flags
        .to_spec_with(image, args, &local())
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn updated(current: &ServiceSpec, line: &str) -> Result<ServiceSpec, String> {
    let argv = std::iter::once("update").chain(line.split_whitespace());
    let u = Update::try_parse_from(argv).map_err(|e| e.to_string())?;
    u.flags.check_rollback_alone().map_err(|e| e.to_string())?;
    u.flags
        .to_spec(current, &local())
        .map_err(|e| e.to_string())
}

fn container(s: &ServiceSpec) -> rswarm_proto::types::ContainerSpec {
    s.task
        .as_ref()
        .and_then(|t| t.container.clone())
        .unwrap_or_default()
}

#[test]
fn no_flag_changes_nothing() {
    let before = created("--name web -e A=1 -p 8080:80 --limit-memory 64M busybox:1 httpd");
    assert_eq!(updated(&before, "web"), Ok(before));
}

#[test]
fn image_and_args_replace_and_env_add_replaces_by_key() {
    let before = created("--name web -e A=1 -e B=2 busybox:1 httpd -f");
    let after = updated(
        &before,
        "--image busybox:2 --args=sleep --env-add A=3 --env-add C=4 --env-rm B web",
    )
    .expect("valid");
    let c = container(&after);
    assert_eq!(c.image, "busybox:2");
    assert_eq!(c.args, vec!["sleep".to_string()]);
    assert_eq!(c.env, vec!["A=3".to_string(), "C=4".to_string()]);
    // Nothing else moved.
    assert_eq!(after.update, before.update);
    assert_eq!(after.endpoint, before.endpoint);
}

#[test]
fn publish_add_and_rm_by_target_protocol_and_mode() {
    let before = created("--name web -p 8080:80 -p 53:53/udp busybox");
    let after = updated(
        &before,
        "--publish-add 9090:90 --publish-add 8080:80 --publish-rm 53/udp web",
    )
    .expect("valid");
    let ports: Vec<(u32, u32)> = after
        .endpoint
        .as_ref()
        .map(|e| {
            e.ports
                .iter()
                .map(|p| (p.published_port, p.target_port))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ports, vec![(8080, 80), (9090, 90)]);
    let removed_tcp = updated(&before, "--publish-rm 53 web").expect("valid");
    assert_eq!(
        removed_tcp.endpoint.map(|e| e.ports.len()),
        Some(2),
        "53/tcp is not 53/udp"
    );
    let p = PortConfig {
        target_port: 90,
        published_port: 9090,
        protocol: Protocol::Tcp as i32,
        publish_mode: PublishMode::Ingress as i32,
        name: String::new(),
    };
    assert!(after.endpoint.unwrap_or_default().ports.contains(&p));
}

#[test]
fn labels_constraints_mounts_and_dns_add_and_rm() {
    let before = created(
        "--name web -l a=1 --container-label x=1 --constraint node.role==worker --mount type=tmpfs,target=/t --dns 10.0.0.1 --host db:10.0.0.5 busybox",
    );
    let after = updated(
        &before,
        "--label-add a=2 --label-add b=3 --container-label-rm x --constraint-add node.labels.z==a --constraint-rm node.role==worker --mount-add type=tmpfs,target=/u --mount-rm /t --dns-add 10.0.0.2 --dns-rm 10.0.0.1 --host-rm db web",
    )
    .expect("valid");
    let labels = after.annotations.clone().unwrap_or_default().labels;
    assert_eq!(labels.get("a").map(String::as_str), Some("2"));
    assert_eq!(labels.get("b").map(String::as_str), Some("3"));
    let c = container(&after);
    assert!(c.labels.is_empty());
    assert_eq!(
        c.mounts
            .iter()
            .map(|m| m.target.as_str())
            .collect::<Vec<_>>(),
        vec!["/u"]
    );
    assert_eq!(
        c.dns_config.map(|d| d.nameservers),
        Some(vec!["10.0.0.2".to_string()])
    );
    assert!(c.hosts.is_empty());
    let constraints = after
        .task
        .and_then(|t| t.placement)
        .map(|p| p.constraints)
        .unwrap_or_default();
    assert_eq!(constraints, vec!["node.labels.z==a".to_string()]);
}

#[test]
fn secrets_are_replaced_by_name() {
    let before = created("--name web --secret s1 --secret s2 busybox");
    let after = updated(
        &before,
        "--secret-add source=s1,target=other --secret-rm s2 web",
    )
    .expect("valid");
    let secrets = container(&after).secrets;
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].secret_name, "s1");
    assert_eq!(
        secrets[0].file.as_ref().map(|f| f.name.as_str()),
        Some("other")
    );
}

#[test]
fn force_moves_the_counter_and_settings_change_one_field() {
    let before = created("--name web --replicas 2 busybox");
    let after = updated(
        &before,
        "--force --replicas 4 --update-parallelism 2 --update-order start-first --limit-cpu 0.5 web",
    )
    .expect("valid");
    let t = after.task.clone().unwrap_or_default();
    assert_eq!(t.force_update, 1);
    assert_eq!(
        after.mode,
        Some(Mode::Replicated(rswarm_proto::types::ReplicatedService {
            replicas: 4
        }))
    );
    let u = after.update.unwrap_or_default();
    assert_eq!((u.parallelism, u.order), (2, 1));
    assert_eq!(u.monitor_ns, before.update.unwrap_or_default().monitor_ns);
    assert_eq!(
        t.resources.and_then(|r| r.limits).map(|l| l.nano_cpus),
        Some(500_000_000)
    );
    let again = updated(&after, "--force web").expect("valid");
    assert_eq!(again.task.map(|t| t.force_update), Some(2));
}

#[test]
fn flags_that_do_not_apply_are_refused_in_dockers_words() {
    let global = created("--name g --mode global busybox");
    assert_eq!(
        updated(&global, "--replicas 3 g"),
        Err("replicas can only be used with replicated or replicated-job mode".to_string())
    );
    assert_eq!(
        updated(&global, "--replicas-max-per-node 1 g"),
        Err(
            "replicas-max-per-node can only be used with replicated or replicated-job mode"
                .to_string()
        )
    );
    let web = created("--name web busybox");
    assert_eq!(
        updated(&web, "--max-concurrent 2 web"),
        Err("max-concurrent can only be used with replicated-job mode".to_string())
    );
    assert_eq!(
        updated(&web, "--rollback --image x web"),
        Err("other flags may not be combined with --rollback".to_string())
    );
    assert_eq!(
        updated(&web, "--limit-memory 64X web"),
        Err(
            "invalid argument \"64X\" for \"--limit-memory\" flag: invalid size: '64X'".to_string()
        )
    );
    assert!(updated(&web, "--update-failure-action explode web")
        .is_err_and(|e| e.contains("--update-failure-action")));
    assert!(updated(&web, "--rollback-failure-action rollback web").is_err());
    assert!(
        updated(&web, "--image Bad:Ref:: web").is_err(),
        "validated whole"
    );
}

#[test]
fn health_flags_change_the_current_check() {
    let web = created("--name web --health-cmd true --health-interval 5s busybox");
    let after = updated(&web, "--health-retries 7 web").expect("valid");
    let h = container(&after).healthcheck.expect("check");
    assert_eq!(h.test, vec!["CMD-SHELL".to_string(), "true".to_string()]);
    assert_eq!((h.interval_ns, h.retries), (5_000_000_000, 7));
    let off = updated(&web, "--no-healthcheck web").expect("valid");
    assert_eq!(
        container(&off).healthcheck.map(|h| h.test),
        Some(vec!["NONE".to_string()])
    );
    assert_eq!(
        updated(&web, "--no-healthcheck --health-retries 2 web"),
        Err("--no-healthcheck conflicts with --health-* options".to_string())
    );
    let on = updated(&off, "--health-cmd false web").expect("valid");
    assert_eq!(
        container(&on).healthcheck.map(|h| h.test),
        Some(vec!["CMD-SHELL".to_string(), "false".to_string()])
    );
}

#[test]
fn booleans_can_be_set_and_unset() {
    let web = created("--name web --read-only busybox");
    let after = updated(&web, "--read-only=false --init web").expect("valid");
    let c = container(&after);
    assert!(!c.read_only);
    assert!(c.init);
}

#[test]
fn the_other_add_rm_pairs_change_their_lists() {
    let before = created(
        "--name web --config c1 --network front --group audio --ulimit nofile=10:20 --sysctl net.core.somaxconn=100 --placement-pref spread=node.labels.zone --dns-search a.example --dns-option ndots:2 busybox",
    );
    let after = updated(
        &before,
        "--config-add c2 --config-rm c1 --network-add back --network-rm front --group-add video --group-add audio --group-rm audio --ulimit-add nproc=5:6 --ulimit-rm nofile --sysctl-add net.ipv4.ip_forward=1 --sysctl-rm net.core.somaxconn --placement-pref-add spread=node.labels.rack --placement-pref-rm spread=node.labels.zone --dns-search-add b.example --dns-option-rm ndots:2 --host-add db:10.0.0.9 --host-add db:10.0.0.9 web",
    )
    .expect("valid");
    let c = container(&after);
    assert_eq!(
        c.configs
            .iter()
            .map(|r| r.config_name.as_str())
            .collect::<Vec<_>>(),
        vec!["c2"]
    );
    assert_eq!(c.groups, vec!["video".to_string()]);
    assert_eq!(
        c.ulimits
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        vec!["nproc"]
    );
    assert_eq!(
        c.sysctls.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["net.ipv4.ip_forward"]
    );
    assert_eq!(
        c.hosts,
        vec!["10.0.0.9 db".to_string()],
        "no duplicate line"
    );
    let dns = c.dns_config.unwrap_or_default();
    assert_eq!(
        dns.search,
        vec!["a.example".to_string(), "b.example".to_string()]
    );
    assert!(dns.options.is_empty());
    let t = after.task.unwrap_or_default();
    assert_eq!(
        t.networks
            .iter()
            .map(|n| n.target.as_str())
            .collect::<Vec<_>>(),
        vec!["back"]
    );
    assert_eq!(
        t.placement.map(|p| p
            .preferences
            .into_iter()
            .map(|x| x.spread_descriptor)
            .collect::<Vec<_>>()),
        Some(vec!["node.labels.rack".to_string()])
    );
}
