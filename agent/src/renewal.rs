//! When a node renews its certificate before it expires: at a random point
//! between half and four fifths of the way from its NotBefore to its NotAfter
//! (swarmkit's `calculateRandomExpiry`), picked once per certificate, so that
//! nodes that joined together do not all renew at the same moment. The
//! session (`session.rs`) asks [`RenewalClock::due`] after each heartbeat.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// The earliest share of the validity at which a node renews.
pub(crate) const LOWER: f64 = 0.5;
/// The latest share of the validity at which a node renews.
pub(crate) const UPPER: f64 = 0.8;

/// The renewal time of the certificate the node holds, picked when it first
/// sees that certificate.
#[derive(Default)]
pub(crate) struct RenewalClock {
    cert_pem: String,
    /// Unix seconds; `None` when the certificate's dates cannot be read.
    at: Option<i64>,
}

impl RenewalClock {
    /// Whether the certificate `cert_pem` is due for renewal now.
    pub(crate) fn due(&mut self, cert_pem: &str) -> bool {
        if self.cert_pem != cert_pem {
            self.cert_pem = cert_pem.to_string();
            self.at = validity(cert_pem).and_then(|(not_before, not_after)| {
                renewal_point(
                    not_before,
                    not_after,
                    rand::thread_rng().gen_range(LOWER..UPPER),
                )
            });
            if let Some(at) = self.at {
                tracing::debug!(renew_at = at, "certificate renewal planned");
            }
        }
        self.at.is_some_and(|at| unix_now() >= at)
    }
}

/// The unix time `share` of the way from `not_before` to `not_after`; `None`
/// for a certificate that is never valid.
fn renewal_point(not_before: i64, not_after: i64, share: f64) -> Option<i64> {
    let validity = not_after.checked_sub(not_before).filter(|v| *v > 0)?;
    Some(not_before + (validity as f64 * share.clamp(LOWER, UPPER)) as i64)
}

/// The certificate's NotBefore and NotAfter (unix seconds).
fn validity(cert_pem: &str) -> Option<(i64, i64)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let v = cert.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_renewal_point_lies_between_half_and_four_fifths_of_the_validity() {
        let (not_before, not_after) = (1_000, 1_000 + 66);
        assert_eq!(renewal_point(not_before, not_after, LOWER), Some(1_033));
        assert_eq!(renewal_point(not_before, not_after, UPPER), Some(1_052));
        // A share out of range is brought back within the bounds.
        assert_eq!(renewal_point(not_before, not_after, 0.0), Some(1_033));
        assert_eq!(renewal_point(not_before, not_after, 1.0), Some(1_052));
        // A certificate that is never valid has no renewal point.
        assert_eq!(renewal_point(2_000, 2_000, 0.6), None);
        assert_eq!(renewal_point(2_000, 1_000, 0.6), None);
    }

    #[test]
    fn each_certificate_gets_a_random_point_within_the_bounds() {
        let now = unix_now();
        let (not_before, not_after) = (now - 10, now + 90 * 24 * 3600);
        let validity = (not_after - not_before) as f64;
        let lowest = not_before + (validity * LOWER) as i64;
        let highest = not_before + (validity * UPPER) as i64;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let at = renewal_point(
                not_before,
                not_after,
                rand::thread_rng().gen_range(LOWER..UPPER),
            )
            .expect("valid");
            assert!((lowest..=highest).contains(&at), "{at}");
            seen.insert(at);
        }
        // Not one fixed point: 200 draws over ~23 days of seconds differ.
        assert!(seen.len() > 150, "{}", seen.len());
    }

    #[test]
    fn an_unreadable_certificate_is_never_due() {
        let mut clock = RenewalClock::default();
        assert!(!clock.due("not a certificate"));
        assert!(clock.at.is_none());
    }
}
