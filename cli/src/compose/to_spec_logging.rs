//! Compose's `logging: {driver, options}` as the edit of `service create
//! --log-driver` with its `--log-opt`s: a missing driver is `json-file`
//! (Compose's default), and driver and options are checked by the same
//! `rswarm_proto::spec::logging` rules, refused with the key path.

use rswarm_proto::spec::logging::{settings, DEFAULT_DRIVER};
use rswarm_proto::types::Driver;

use super::super::model::Service;
use super::Conv;
use crate::servicespec::edits::SpecEdit;

impl Conv<'_> {
    /// The log driver of service `name`, if its file sets one.
    pub(super) fn logging(&mut self, name: &str, s: &Service, edits: &mut Vec<SpecEdit>) {
        let Some(l) = &s.logging else { return };
        let driver = Driver {
            name: l.driver.clone().unwrap_or_else(|| DEFAULT_DRIVER.into()),
            options: l.options.clone().into_iter().collect(),
        };
        if let Err(e) = settings(Some(&driver)) {
            let known = matches!(driver.name.as_str(), "json-file" | "local" | "none");
            let key = if !known {
                "logging.driver"
            } else if l.options.is_empty() {
                "logging"
            } else {
                "logging.options"
            };
            self.refuse(&format!("services.{name}.{key}"), &e.0);
            return;
        }
        edits.push(SpecEdit::LogDriver {
            name: driver.name,
            options: l.options.clone().into_iter().collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::compose::to_spec::plan;
    use crate::compose::{load, Source};

    fn plan_of(text: &str) -> Result<super::super::StackPlan, Vec<String>> {
        let sources = [Source {
            name: "app.yml".into(),
            text: text.into(),
        }];
        let loaded = load(&sources, Path::new("/srv/app"), None, &|_| None)?;
        plan(&loaded.project, "shop", "app.yml")
    }

    fn driver(text: &str) -> Option<(String, Vec<(String, String)>)> {
        let p = plan_of(text).unwrap_or_else(|e| panic!("converts: {e:?}"));
        let d = p.services[0].task.clone().unwrap_or_default().log_driver?;
        let mut options: Vec<(String, String)> = d.options.into_iter().collect();
        options.sort();
        Some((d.name, options))
    }

    #[test]
    fn logging_becomes_the_log_driver() {
        assert_eq!(driver("services:\n  web:\n    image: busybox\n"), None);
        assert_eq!(
            driver(
                "services:
  web:
    image: busybox
    logging:
      driver: local
      options:
        max-size: 2k
        max-file: \"3\"
"
            ),
            Some((
                "local".into(),
                vec![
                    ("max-file".into(), "3".into()),
                    ("max-size".into(), "2k".into())
                ]
            ))
        );
        // No driver: json-file, as Compose.
        assert_eq!(
            driver(
                "services:
  web:
    image: busybox
    logging:
      options: {max-file: 4}
"
            ),
            Some(("json-file".into(), vec![("max-file".into(), "4".into())]))
        );
        assert_eq!(
            driver(
                "services:\n  web:\n    image: busybox\n    logging: {options: {compress: \"true\"}}\n"
            ),
            Some(("json-file".into(), vec![("compress".into(), "true".into())]))
        );
        assert_eq!(
            driver("services:\n  web:\n    image: busybox\n    logging: {driver: none}\n"),
            Some(("none".into(), vec![]))
        );
    }

    #[test]
    fn unsupported_drivers_and_options_are_refused_with_their_key_path() {
        let e = plan_of(
            "services:
  web:
    image: busybox
    logging:
      driver: syslog
      options: {syslog-address: \"udp://1.2.3.4:514\"}
  api:
    image: busybox
    logging:
      options: {max-size: 10x}
  db:
    image: busybox
    logging:
      driver: json-file
      options: {tag: \"{{.Name}}\"}
",
        )
        .err()
        .unwrap_or_default();
        assert_eq!(
            e,
            [
                "app.yml: services.web.logging.driver: logging driver \"syslog\" is not supported: rswarm keeps task logs on the node (json-file, local or none)",
                "app.yml: services.api.logging.options: invalid log opt max-size \"10x\": invalid size: '10x'",
                "app.yml: services.db.logging.options: log opt 'tag' of the json-file log driver is not supported yet (rswarm takes max-size, max-file and compress)",
            ]
        );
    }
}
