//! What the data plane measures, for the daemon's Prometheus registry:
//!
//! - `rswarm_dns_queries_total{type,result,source}`: queries the embedded
//!   DNS server answered, by query type (A, AAAA, PTR, …, `other`), response
//!   code (`noerror`, `nxdomain`, `servfail`, …) and where the answer came
//!   from (`cluster`: the record table, `upstream`: forwarded);
//! - `rswarm_dns_answers_total{type,source}`: the answer records sent;
//! - `rswarm_service_backends{service,kind}`: the backends of each service
//!   in this node's data plane, `kind=vip` (the VIP as this node's tasks see
//!   it) or `kind=mesh` (the routing mesh of its published ports). The agent
//!   sets the whole set with [`OverlayMetrics::set_backends`] each time it
//!   applies the network state; it is read at scrape time, so a service
//!   that is gone has no series.
//!
//! [`OverlayMetrics::register`] puts them in a registry once per daemon; a
//! `Default` value measures into handles no registry reads (tests, tools).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a DNS query.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsLabels {
    /// The query type, from a bounded set (`other` for the rest).
    pub r#type: String,
    /// The response code, lower case.
    pub result: String,
    /// `cluster` or `upstream`.
    pub source: String,
}

/// Labels of the answer records sent.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabels {
    pub r#type: String,
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    service: String,
    kind: String,
}

/// Backends of one service in this node's data plane, keyed by (service
/// name, kind).
pub type BackendCounts = BTreeMap<(String, BackendKind), u64>;

/// Which part of the data plane balances over the backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackendKind {
    /// The service's VIP, seen from this node's tasks.
    Vip,
    /// The routing mesh of the service's published ports.
    Mesh,
}

impl BackendKind {
    fn as_str(self) -> &'static str {
        match self {
            BackendKind::Vip => "vip",
            BackendKind::Mesh => "mesh",
        }
    }
}

/// The data plane's metric handles (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct OverlayMetrics {
    dns_queries: Family<DnsLabels, Counter>,
    dns_answers: Family<AnswerLabels, Counter>,
    backends: Arc<Mutex<BackendCounts>>,
}

/// Reads the backend counts at scrape time.
#[derive(Debug)]
struct BackendCollector(Arc<Mutex<BackendCounts>>);

impl Collector for BackendCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = Family::<BackendLabels, Gauge>::default();
        {
            let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
            for ((service, kind), n) in counts.iter() {
                family
                    .get_or_create(&BackendLabels {
                        service: service.clone(),
                        kind: kind.as_str().into(),
                    })
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
        }
        let m = encoder.encode_descriptor(
            "service_backends",
            "Backends of each service in this node's data plane (kind=vip: its VIP as this node's tasks see it; kind=mesh: the routing mesh of its published ports)",
            None,
            family.metric_type(),
        )?;
        family.encode(m)
    }
}

impl OverlayMetrics {
    /// Makes the handles and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "dns_queries",
            "DNS queries answered by the embedded DNS server, by query type, response code and source (cluster table or upstream)",
            m.dns_queries.clone(),
        );
        registry.register(
            "dns_answers",
            "Answer records sent by the embedded DNS server, by query type and source",
            m.dns_answers.clone(),
        );
        registry.register_collector(Box::new(BackendCollector(m.backends.clone())));
        m
    }

    /// Counts one answered query.
    pub fn dns_query(&self, qtype: &str, result: &str, source: &str, answers: usize) {
        let qtype = bounded_type(qtype);
        self.dns_queries
            .get_or_create(&DnsLabels {
                r#type: qtype.into(),
                result: result.to_ascii_lowercase(),
                source: source.into(),
            })
            .inc();
        if answers > 0 {
            self.dns_answers
                .get_or_create(&AnswerLabels {
                    r#type: qtype.into(),
                    source: source.into(),
                })
                .inc_by(answers as u64);
        }
    }

    /// Replaces the backend counts with `counts` (the whole set).
    pub fn set_backends(&self, counts: BackendCounts) {
        *self.backends.lock().unwrap_or_else(|p| p.into_inner()) = counts;
    }

    /// The queries counted with these labels so far (for tests).
    pub fn dns_queries_counted(&self, qtype: &str, result: &str, source: &str) -> u64 {
        self.dns_queries
            .get(&DnsLabels {
                r#type: qtype.into(),
                result: result.into(),
                source: source.into(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }
}

/// Query types as a bounded label set: a client cannot make new series by
/// asking odd types.
fn bounded_type(t: &str) -> &'static str {
    const KNOWN: [&str; 12] = [
        "A", "AAAA", "PTR", "SRV", "MX", "TXT", "CNAME", "NS", "SOA", "ANY", "HTTPS", "SVCB",
    ];
    KNOWN.into_iter().find(|k| *k == t).unwrap_or("other")
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn queries_and_backends_encode_with_prefix_and_bounded_types() {
        let mut reg = Registry::with_prefix("rswarm");
        let m = OverlayMetrics::register(&mut reg);
        m.dns_query("A", "NoError", "cluster", 2);
        m.dns_query("TYPE65280", "NXDomain", "cluster", 0);
        let mut counts = BackendCounts::new();
        counts.insert(("web".into(), BackendKind::Mesh), 3);
        counts.insert(("web".into(), BackendKind::Vip), 2);
        m.set_backends(counts);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        assert!(out
            .contains(r#"rswarm_dns_queries_total{type="A",result="noerror",source="cluster"} 1"#));
        assert!(out.contains(
            r#"rswarm_dns_queries_total{type="other",result="nxdomain",source="cluster"} 1"#
        ));
        assert!(out.contains(r#"rswarm_dns_answers_total{type="A",source="cluster"} 2"#));
        assert!(out.contains(r#"rswarm_service_backends{service="web",kind="mesh"} 3"#));
        assert!(out.contains(r#"rswarm_service_backends{service="web",kind="vip"} 2"#));
        assert!(out.contains("# HELP rswarm_service_backends "));
        // A service that is gone has no series.
        m.set_backends(BackendCounts::new());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        assert!(!out.contains(r#"service="web""#));
    }
}
