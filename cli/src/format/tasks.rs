//! Tasks in Docker's shapes: the `service ps` / `node ps` rows (ID, NAME with
//! a slot's older tasks indented under ` \_ `, IMAGE, NODE, DESIRED STATE,
//! CURRENT STATE as "Running 3 seconds ago", ERROR quoted and truncated,
//! PORTS), and Docker's `units.HumanDuration` wording for ages.
//!
//! Reads `rswarm_proto::types::Task` plus the node and service names the
//! command looked up; `output` does `--format` / `-q`.

use std::cmp::Ordering;
use std::collections::HashMap;

use rswarm_proto::types::port_config::Protocol;
use rswarm_proto::types::{PortConfig, Task, TaskState};
use serde_json::{Map, Value};

use super::humanize::{natural_cmp, pretty_print};
use super::output::{render_list, ListFormat};
use super::table::HeaderNames;
use super::FormatError;
use crate::servicespec::reference::display_image;

/// Docker's default `service ps` / `node ps` table.
pub const TASK_PS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}";

/// Docker's column titles for the task fields.
pub const TASK_PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("Image", "IMAGE"),
    ("Node", "NODE"),
    ("DesiredState", "DESIRED STATE"),
    ("CurrentState", "CURRENT STATE"),
    ("Error", "ERROR"),
    ("Ports", "PORTS"),
];

/// `service ps` / `node ps` for [`render_list`].
pub const TASK_PS: ListFormat<'static> = ListFormat {
    default_table: TASK_PS_TABLE,
    headers: HeaderNames::new(TASK_PS_HEADERS),
    row_type: "task",
};

/// Docker truncates IDs to this many characters unless `--no-trunc`.
pub const SHORT_ID_LEN: usize = 12;
/// Docker truncates task errors to this width unless `--no-trunc`.
const MAX_ERROR_LEN: usize = 30;

/// The first 12 characters of an ID (Docker's `stringid.TruncateID`).
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(SHORT_ID_LEN) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// The word swarm uses for a task state (`running`, `complete`, …).
pub fn task_state_word(state: TaskState) -> &'static str {
    match state {
        TaskState::New => "new",
        TaskState::Pending => "pending",
        TaskState::Assigned => "assigned",
        TaskState::Accepted => "accepted",
        TaskState::Preparing => "preparing",
        TaskState::Ready => "ready",
        TaskState::Starting => "starting",
        TaskState::Running => "running",
        TaskState::Complete => "complete",
        TaskState::Shutdown => "shutdown",
        TaskState::Failed => "failed",
        TaskState::Rejected => "rejected",
        TaskState::Remove => "remove",
        TaskState::Orphaned => "orphaned",
    }
}

/// go-units' `HumanDuration`: "Less than a second", "1 second",
/// "About a minute", "3 hours", "2 weeks", … for a span in nanoseconds.
pub fn human_duration(nanos: i64) -> String {
    let d = nanos.max(0) as f64 / 1e9;
    let seconds = d as i64;
    if seconds < 1 {
        return "Less than a second".to_string();
    }
    if seconds == 1 {
        return "1 second".to_string();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (d / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d / 3600.0 + 0.5) as i64;
    if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", (d / 3600.0) as i64 / 24 / 365)
    }
}

/// Docker's `formatter.Ellipsis`: at most `max` characters, the last one an
/// ellipsis when something was cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The word for a port protocol (`tcp`, `udp`, `sctp`).
pub fn protocol_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// Host-mode ports a task holds, as `service ps` shows them
/// (`*:8080->80/tcp,*:53->53/udp`).
pub fn task_ports(ports: &[PortConfig]) -> String {
    ports
        .iter()
        .map(|p| {
            format!(
                "*:{}->{}/{}",
                p.published_port,
                p.target_port,
                protocol_word(p.protocol())
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What a task list needs besides the tasks: names to show for node and
/// service IDs, the time "ago" counts from, and the `--no-trunc` /
/// `--no-resolve` choices.
#[derive(Debug, Clone, Copy)]
pub struct TaskView<'a> {
    /// Node ID → hostname.
    pub node_names: &'a HashMap<String, String>,
    /// Service ID → name, for tasks that do not carry their service's name.
    pub service_names: &'a HashMap<String, String>,
    /// Unix nanoseconds of "now".
    pub now: i64,
    pub no_trunc: bool,
    pub no_resolve: bool,
}

fn service_name<'a>(task: &'a Task, view: &TaskView<'a>) -> &'a str {
    let carried = task
        .service_annotations
        .as_ref()
        .map_or("", |a| a.name.as_str());
    if !carried.is_empty() && !view.no_resolve {
        return carried;
    }
    if view.no_resolve {
        return &task.service_id;
    }
    view.service_names
        .get(&task.service_id)
        .map_or(task.service_id.as_str(), String::as_str)
}

/// A task's name in `service ps`: `web.1` for a slot, `web.<node ID>` for a
/// global service's task.
pub fn task_display_name(task: &Task, view: &TaskView<'_>) -> String {
    let service = service_name(task, view);
    if task.slot != 0 {
        format!("{service}.{}", task.slot)
    } else {
        format!("{service}.{}", task.node_id)
    }
}

fn state(task: &Task) -> TaskState {
    task.status.as_ref().map(|s| s.state()).unwrap_or_default()
}

/// "Running 3 seconds ago", from the task's last state change. A running
/// task with a health check says how it is, as `docker ps` does ("Running 3
/// seconds ago (healthy)", "(health: starting)", "(unhealthy)"); Docker's
/// `service ps` does not show health, rswarm's does.
pub fn current_state(task: &Task, now: i64) -> String {
    let text = state_since(task, now);
    let health = task
        .status
        .as_ref()
        .map(|s| s.health.as_str())
        .unwrap_or("");
    match (state(task), health) {
        (TaskState::Running, "starting") => format!("{text} (health: starting)"),
        (TaskState::Running, "healthy" | "unhealthy") => format!("{text} ({health})"),
        _ => text,
    }
}

fn state_since(task: &Task, now: i64) -> String {
    let word = pretty_print(task_state_word(state(task)));
    let since = task
        .status
        .as_ref()
        .map(|s| s.timestamp)
        .filter(|t| *t != 0)
        .or_else(|| task.meta.as_ref().map(|m| m.updated_at).filter(|t| *t != 0));
    match since {
        Some(t) => format!("{word} {} ago", human_duration(now - t).to_lowercase()),
        None => word,
    }
}

/// The error to show: the task's error, or for a task still pending the
/// scheduler's reason ("no suitable node (…)").
pub fn task_error(task: &Task) -> &str {
    let Some(status) = &task.status else {
        return "";
    };
    if !status.err.is_empty() {
        return &status.err;
    }
    if status.state() == TaskState::Pending && !status.message.starts_with("pending task") {
        return &status.message;
    }
    ""
}

/// Docker's order for a task list: by name (`web.1` … `web.10`, naturally),
/// the newest task of a slot first.
fn sort_tasks<'a>(tasks: &'a [Task], view: &TaskView<'_>) -> Vec<(String, &'a Task)> {
    let mut named: Vec<(String, &Task)> = tasks
        .iter()
        .map(|t| (task_display_name(t, view), t))
        .collect();
    let created = |t: &Task| t.meta.as_ref().map_or(0, |m| m.created_at);
    named.sort_by(|(na, a), (nb, b)| match natural_cmp(na, nb) {
        Ordering::Equal => created(b).cmp(&created(a)).then_with(|| a.id.cmp(&b.id)),
        other => other,
    });
    named
}

/// One task row with Docker's template fields, in `--format json` order:
/// `CurrentState`, `DesiredState`, `Error`, `ID`, `Image`, `Name`, `Node`,
/// `Ports`. `name` is the NAME cell (already indented for history rows).
pub fn task_ps_row(task: &Task, name: &str, view: &TaskView<'_>) -> Value {
    let image = task
        .spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map_or("", |c| c.image.as_str());
    let image = if view.no_trunc {
        image.to_string()
    } else {
        display_image(image)
    };
    let node = if view.no_resolve {
        task.node_id.clone()
    } else {
        view.node_names
            .get(&task.node_id)
            .cloned()
            .unwrap_or_else(|| task.node_id.clone())
    };
    let error = task_error(task);
    let error = if view.no_trunc {
        error.to_string()
    } else {
        ellipsis(error, MAX_ERROR_LEN)
    };
    let error = if error.is_empty() {
        error
    } else {
        format!("\"{error}\"")
    };
    let id = if view.no_trunc {
        task.id.as_str()
    } else {
        short_id(&task.id)
    };
    let ports = task
        .status
        .as_ref()
        .map_or_else(String::new, |s| task_ports(&s.ports));
    let mut row = Map::new();
    row.insert("CurrentState".into(), current_state(task, view.now).into());
    row.insert(
        "DesiredState".into(),
        pretty_print(task_state_word(task.desired_state())).into(),
    );
    row.insert("Error".into(), error.into());
    row.insert("ID".into(), id.into());
    row.insert("Image".into(), image.into());
    row.insert("Name".into(), name.into());
    row.insert("Node".into(), node.into());
    row.insert("Ports".into(), ports.into());
    Value::Object(row)
}

/// The rows of a task list in Docker's order. In a table (`indent`), a
/// slot's older tasks follow its newest as ` \_ web.1`.
pub fn task_ps_rows(tasks: &[Task], view: &TaskView<'_>, indent: bool) -> Vec<Value> {
    let mut previous = String::new();
    sort_tasks(tasks, view)
        .into_iter()
        .map(|(name, task)| {
            let shown = if indent && name == previous {
                format!(" \\_ {name}")
            } else {
                name.clone()
            };
            previous = name;
            task_ps_row(task, &shown, view)
        })
        .collect()
}

/// Whether `--format`/`-q` make a table (Docker indents history only there).
fn is_table(format: Option<&str>, quiet: bool) -> bool {
    !quiet && format.is_none_or(|f| f.is_empty() || f.starts_with("table"))
}

/// Everything `service ps` and `node ps` print for `--format` / `-q`. With
/// `-q` the IDs are whole, as Docker prints them for scripts.
pub fn render_task_list(
    tasks: &[Task],
    view: &TaskView<'_>,
    format: Option<&str>,
    quiet: bool,
) -> Result<String, FormatError> {
    let mut view = *view;
    if quiet {
        view.no_trunc = true;
    }
    let rows = task_ps_rows(tasks, &view, is_table(format, quiet));
    render_list(&rows, format, quiet, &TASK_PS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::port_config::PublishMode;
    use rswarm_proto::types::{Annotations, ContainerSpec, Meta, TaskSpec, TaskStatus};

    const NOW: i64 = 1_700_000_000_000_000_000;
    const SEC: i64 = 1_000_000_000;

    #[allow(clippy::too_many_arguments)]
    fn task(
        id: &str,
        slot: u64,
        node: &str,
        desired: TaskState,
        state: TaskState,
        age_secs: i64,
        created: i64,
        err: &str,
    ) -> Task {
        Task {
            id: id.into(),
            meta: Some(Meta {
                version: None,
                created_at: created,
                updated_at: created,
                spec_version: None,
            }),
            spec: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "registry.local:5000/busybox:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            service_id: "svc1".into(),
            slot,
            node_id: node.into(),
            service_annotations: Some(Annotations {
                name: "web".into(),
                labels: HashMap::new(),
            }),
            status: Some(TaskStatus {
                timestamp: NOW - age_secs * SEC,
                state: state as i32,
                err: err.into(),
                ..Default::default()
            }),
            desired_state: desired as i32,
            ..Default::default()
        }
    }

    fn nodes() -> HashMap<String, String> {
        [("n1", "host1"), ("n2", "host2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn history() -> Vec<Task> {
        vec![
            task(
                "t2aaaaaaaaaaaaaaaaaaaaaaa",
                2,
                "n2",
                TaskState::Running,
                TaskState::Running,
                3,
                20,
                "",
            ),
            task(
                "t10aaaaaaaaaaaaaaaaaaaaaa",
                10,
                "n1",
                TaskState::Running,
                TaskState::Running,
                90,
                30,
                "",
            ),
            task(
                "t1newaaaaaaaaaaaaaaaaaaaa",
                1,
                "n1",
                TaskState::Running,
                TaskState::Running,
                3,
                40,
                "",
            ),
            task(
                "t1oldaaaaaaaaaaaaaaaaaaaa",
                1,
                "n2",
                TaskState::Shutdown,
                TaskState::Failed,
                7200,
                10,
                "task: non-zero exit (1): the process was killed by the kernel",
            ),
        ]
    }

    #[test]
    fn service_ps_table_shows_history_under_its_slot() {
        let names = nodes();
        let services = HashMap::new();
        let view = TaskView {
            node_names: &names,
            service_names: &services,
            now: NOW,
            no_trunc: false,
            no_resolve: false,
        };
        let out =
            render_task_list(&history(), &view, None, false).unwrap_or_else(|e| panic!("{e}"));
        let expected = concat!(
            "ID             NAME        IMAGE                           NODE      DESIRED STATE   CURRENT STATE                ERROR                              PORTS\n",
            "t1newaaaaaaa   web.1       registry.local:5000/busybox:1   host1     Running         Running 3 seconds ago                                           \n",
            "t1oldaaaaaaa    \\_ web.1   registry.local:5000/busybox:1   host2     Shutdown        Failed 2 hours ago           \"task: non-zero exit (1): the …\"   \n",
            "t2aaaaaaaaaa   web.2       registry.local:5000/busybox:1   host2     Running         Running 3 seconds ago                                           \n",
            "t10aaaaaaaaa   web.10      registry.local:5000/busybox:1   host1     Running         Running about a minute ago                                      \n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn quiet_prints_whole_ids_and_formats_do_not_indent() {
        let names = nodes();
        let services = HashMap::new();
        let view = TaskView {
            node_names: &names,
            service_names: &services,
            now: NOW,
            no_trunc: false,
            no_resolve: false,
        };
        let quiet =
            render_task_list(&history(), &view, None, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            quiet,
            "t1newaaaaaaaaaaaaaaaaaaaa\nt1oldaaaaaaaaaaaaaaaaaaaa\nt2aaaaaaaaaaaaaaaaaaaaaaa\nt10aaaaaaaaaaaaaaaaaaaaaa\n"
        );
        let names_only = render_task_list(&history(), &view, Some("{{.Name}} {{.Node}}"), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            names_only,
            "web.1 host1\nweb.1 host2\nweb.2 host2\nweb.10 host1\n"
        );
    }

    #[test]
    fn no_trunc_and_no_resolve() {
        let names = nodes();
        let services = HashMap::new();
        let view = TaskView {
            node_names: &names,
            service_names: &services,
            now: NOW,
            no_trunc: true,
            no_resolve: true,
        };
        let rows = task_ps_rows(&history()[3..], &view, true);
        assert_eq!(rows[0]["ID"], "t1oldaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(rows[0]["Name"], "svc1.1");
        assert_eq!(rows[0]["Node"], "n2");
        assert_eq!(
            rows[0]["Error"],
            "\"task: non-zero exit (1): the process was killed by the kernel\""
        );
        assert!(rows[0]["Image"]
            .as_str()
            .is_some_and(|i| i.contains("@sha256:")));
    }

    #[test]
    fn global_tasks_are_named_by_node_and_pending_shows_the_reason() {
        let names = nodes();
        let services = HashMap::new();
        let view = TaskView {
            node_names: &names,
            service_names: &services,
            now: NOW,
            no_trunc: false,
            no_resolve: false,
        };
        let mut pending = task(
            "tp",
            3,
            "",
            TaskState::Running,
            TaskState::Pending,
            0,
            1,
            "",
        );
        if let Some(s) = pending.status.as_mut() {
            s.message = "no suitable node (insufficient memory on 3 nodes)".into();
        }
        let global = task(
            "tg",
            0,
            "n1",
            TaskState::Running,
            TaskState::Running,
            0,
            1,
            "",
        );
        let rows = task_ps_rows(&[global, pending], &view, true);
        assert_eq!(rows[0]["Name"], "web.3");
        assert_eq!(rows[0]["Node"], "");
        assert_eq!(rows[0]["Error"], "\"no suitable node (insufficien…\"");
        assert_eq!(rows[0]["CurrentState"], "Pending less than a second ago");
        assert_eq!(rows[1]["Name"], "web.n1");
        assert_eq!(rows[1]["Error"], "");
    }

    #[test]
    fn human_durations_match_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(SEC), "1 second");
        assert_eq!(human_duration(59 * SEC), "59 seconds");
        assert_eq!(human_duration(60 * SEC), "About a minute");
        assert_eq!(human_duration(119 * SEC), "About a minute");
        assert_eq!(human_duration(120 * SEC), "2 minutes");
        assert_eq!(human_duration(3600 * SEC), "About an hour");
        assert_eq!(human_duration(47 * 3600 * SEC), "47 hours");
        assert_eq!(human_duration(48 * 3600 * SEC), "2 days");
        assert_eq!(human_duration(15 * 24 * 3600 * SEC), "2 weeks");
        assert_eq!(human_duration(61 * 24 * 3600 * SEC), "2 months");
        assert_eq!(human_duration(800 * 24 * 3600 * SEC), "2 years");
        assert_eq!(human_duration(-5 * SEC), "Less than a second");
    }

    #[test]
    fn ports_and_ellipsis() {
        let p = PortConfig {
            name: String::new(),
            protocol: Protocol::Udp as i32,
            target_port: 53,
            published_port: 5353,
            publish_mode: PublishMode::Host as i32,
        };
        assert_eq!(task_ports(&[p.clone(), p]), "*:5353->53/udp,*:5353->53/udp");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
    }

    #[test]
    fn a_running_task_with_a_check_shows_its_health() {
        let mut t = task(
            "t1",
            1,
            "n1",
            TaskState::Running,
            TaskState::Running,
            5,
            0,
            "",
        );
        let with = |t: &mut Task, h: &str| {
            if let Some(s) = t.status.as_mut() {
                s.health = h.into();
            }
        };
        assert_eq!(current_state(&t, NOW), "Running 5 seconds ago");
        with(&mut t, "starting");
        assert_eq!(
            current_state(&t, NOW),
            "Running 5 seconds ago (health: starting)"
        );
        with(&mut t, "healthy");
        assert_eq!(current_state(&t, NOW), "Running 5 seconds ago (healthy)");
        with(&mut t, "unhealthy");
        assert_eq!(current_state(&t, NOW), "Running 5 seconds ago (unhealthy)");
        // Once ended, the error says why; the state is the state.
        let mut failed = task(
            "t2",
            1,
            "n1",
            TaskState::Shutdown,
            TaskState::Failed,
            5,
            0,
            "task: non-zero exit (137): dockerexec: unhealthy container",
        );
        with(&mut failed, "unhealthy");
        assert_eq!(current_state(&failed, NOW), "Failed 5 seconds ago");
    }
}
