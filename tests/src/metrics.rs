//! Scraping a test host's `/metrics` (its daemon's default `--metrics-addr`,
//! 127.0.0.1:9323 inside the host's namespace) and reading the samples:
//! shared by `tests/tests/metrics.rs` and the `bench-metrics` binary.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::Host;

/// Where the test daemons serve their metrics, in each host's namespace.
pub const METRICS_ADDR: &str = "127.0.0.1:9323";

/// One scrape: `name{labels}` → value, the exposition text and how long
/// the request took.
#[derive(Debug)]
pub struct Scrape {
    pub samples: BTreeMap<String, f64>,
    pub text: String,
    pub took: Duration,
}

impl Scrape {
    /// The sample `key` (`name` or `name{labels}` exactly as exposed).
    pub fn get(&self, key: &str) -> Option<f64> {
        self.samples.get(key).copied()
    }

    /// The sample `key`; panics with the whole text when it is missing.
    pub fn value(&self, key: &str) -> f64 {
        self.get(key)
            .unwrap_or_else(|| panic!("no sample {key} in:\n{}", self.text))
    }

    /// Every sample of family `name` (with any labels).
    pub fn family(&self, name: &str) -> Vec<(&str, f64)> {
        let open = format!("{name}{{");
        self.samples
            .iter()
            .filter(|(k, _)| *k == name || k.starts_with(&open))
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }

    /// Whether the family has a HELP line.
    pub fn has_help(&self, family: &str) -> bool {
        self.text.contains(&format!("# HELP {family} "))
    }
}

/// GET /metrics from the host's daemon.
pub fn try_scrape(h: &Host) -> anyhow::Result<Scrape> {
    let name = h.name().to_string();
    let started = Instant::now();
    let answer = h.in_netns(|| -> anyhow::Result<String> {
        let mut s = std::net::TcpStream::connect(METRICS_ADDR)
            .with_context(|| format!("connecting to {METRICS_ADDR} on {name}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })?;
    let took = started.elapsed();
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        bail!("{}: not an HTTP answer: {answer}", h.name());
    };
    if !head.contains(" 200 ") {
        bail!("{}: /metrics answered {head}", h.name());
    }
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse::<f64>().ok()?))
        })
        .collect();
    Ok(Scrape {
        samples,
        text: body.to_string(),
        took,
    })
}

/// [`try_scrape`], panicking on failure.
pub fn scrape(h: &Host) -> Scrape {
    try_scrape(h).unwrap_or_else(|e| panic!("scraping /metrics: {e:#}"))
}
