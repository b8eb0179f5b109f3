//! Compose's `depends_on` → the spec's `depends_on`, and the order a stack's
//! services are created in: a service after the services it depends on, so
//! the control API (which refuses a dependency that does not exist) takes
//! them in one pass. The cluster then holds a service's first tasks until
//! its dependencies are started, healthy or completed (see the manager's
//! `orchestrator::depends`).
//!
//! Checked here, with the file and key path: the service named is in the
//! project (unless `required: false`, then it is skipped), waiting for
//! completion needs a job, `restart: true` is refused (rswarm does not
//! restart a service when its dependency changes), and there is no cycle.

use indexmap::IndexMap;
use rswarm_proto::types::service_dependency::Condition;
use rswarm_proto::types::ServiceDependency;

use super::model::{Project, Service};

/// The dependencies of service `name`, named `<stack>_<dep>`; problems as
/// "FILE: services.NAME.depends_on.DEP: why" lines.
pub(super) fn dependencies(
    file: &str,
    stack: &str,
    project: &Project,
    name: &str,
    s: &Service,
) -> Result<Vec<ServiceDependency>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (dep, d) in &s.depends_on {
        let path = format!("{file}: services.{name}.depends_on.{dep}");
        let Some(target) = project.services.get(dep) else {
            if d.required {
                errors.push(format!(
                    "{path}: service {dep} is not defined in this file (a stack's services can only depend on each other)"
                ));
            }
            continue;
        };
        if dep == name {
            errors.push(format!("{path}: a service cannot depend on itself"));
            continue;
        }
        if d.restart {
            errors.push(format!(
                "{path}.restart: not supported: rswarm does not restart a service when its dependency is updated"
            ));
        }
        let condition = match d.condition.as_str() {
            "service_healthy" => Condition::Healthy,
            "service_completed_successfully" => {
                let job = matches!(
                    target.deploy.mode.as_deref(),
                    Some("replicated-job" | "global-job")
                );
                if !job {
                    errors.push(format!(
                        "{path}.condition: service_completed_successfully needs {dep} to be a job (deploy.mode: replicated-job or global-job); a service that is not a job never completes"
                    ));
                }
                Condition::CompletedSuccessfully
            }
            _ => Condition::Started,
        };
        out.push(ServiceDependency {
            service: format!("{stack}_{dep}"),
            condition: condition as i32,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The project's service names in an order where each comes after what it
/// depends on, keeping the file's order otherwise; a cycle is an error
/// naming it ("FILE: services.a.depends_on: dependency cycle: a -> b -> a").
pub(super) fn creation_order(file: &str, project: &Project) -> Result<Vec<String>, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        file: &str,
        project: &Project,
        name: &str,
        marks: &mut IndexMap<String, Mark>,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<(), String> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(name.to_string());
                return Err(format!(
                    "{file}: services.{name}.depends_on: dependency cycle: {}",
                    cycle.join(" -> ")
                ));
            }
            None => {}
        }
        marks.insert(name.to_string(), Mark::Visiting);
        path.push(name.to_string());
        if let Some(s) = project.services.get(name) {
            for dep in s.depends_on.keys() {
                if project.services.contains_key(dep) && dep != name {
                    visit(file, project, dep, marks, path, out)?;
                }
            }
        }
        path.pop();
        marks.insert(name.to_string(), Mark::Done);
        out.push(name.to_string());
        Ok(())
    }
    let mut marks = IndexMap::new();
    let mut out = Vec::new();
    for name in project.services.keys() {
        visit(file, project, name, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}
