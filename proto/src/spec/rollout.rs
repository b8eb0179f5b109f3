//! Which of a service's tasks a rolling update has reached: the one rule the
//! manager's updater and the CLI's progress display share.

use crate::types::{Service, Task};

/// The task runs the service's current task template: it was made from the
/// service's `spec_version` (or a newer one), or from an older one with the
/// same template (after a rollback, the tasks an update never reached are
/// current again). Docker's "up-to-date" tasks.
pub fn runs_current_template(task: &Task, service: &Service) -> bool {
    task.spec_version >= service.spec_version
        || task.spec.as_ref() == service.spec.as_ref().and_then(|s| s.task.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ContainerSpec, ServiceSpec, TaskSpec};

    fn template(image: &str) -> TaskSpec {
        TaskSpec {
            container: Some(ContainerSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_task_of_an_older_version_is_current_only_with_the_same_template() {
        let svc = Service {
            spec: Some(ServiceSpec {
                task: Some(template("a:1")),
                ..Default::default()
            }),
            spec_version: 3,
            ..Default::default()
        };
        let task = |image: &str, v: u64| Task {
            spec: Some(template(image)),
            spec_version: v,
            ..Default::default()
        };
        assert!(runs_current_template(&task("b:2", 3), &svc));
        assert!(runs_current_template(&task("a:1", 1), &svc));
        assert!(!runs_current_template(&task("b:2", 2), &svc));
    }
}
