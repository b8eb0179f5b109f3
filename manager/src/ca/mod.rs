//! The cluster root CA: created by `rswarm init`, it signs every node certificate.
//!
//! A node certificate's subject says who the node is (CN = node ID, OU = role,
//! O = cluster ID; read back by `rswarm_proto::identity::cert`), and its DNS names
//! say what it may serve: `swarm-manager` (the name every client verifies) or
//! `swarm-worker`, plus the node ID. Certificates are good for both ends of a TLS
//! connection. What the node asked for in its CSR other than its public key is
//! ignored: the manager decides identity and role.
//!
//! Also here: the random IDs Swarm gives nodes and clusters. Deciding *whether* to
//! sign (join tokens, renewal) belongs to the CA service, not to this module.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use rswarm_proto::identity::cert::role_ou;
use rswarm_proto::types::NodeRole;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

#[cfg(test)]
mod loopback_tests;
pub(crate) mod rotation;

/// Subject CN of the root CA certificate.
pub const CA_COMMON_NAME: &str = "swarm-ca";
/// How long a root CA is valid: 20 years.
pub const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 60 * 60);
/// Certificates start this long before they are made, so that clocks a little
/// behind the manager's still accept them; a node certificate by at most a
/// tenth of its validity ([`backdate`]).
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// How long before its making a node certificate valid for `validity` starts:
/// [`BACKDATE`], but no more than a tenth of the validity, so that a short
/// validity (`--cert-expiry 1m`) is not mostly spent before the certificate is
/// even made (its holder renews at a share of NotBefore..NotAfter).
pub fn backdate(validity: Duration) -> Duration {
    BACKDATE.min(validity / 10)
}

/// Why the CA could not be created, loaded or sign a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid certificate validity: {0}")]
    InvalidValidity(String),
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    #[error("the root CA is unusable: {0}")]
    BadRootCa(String),
    #[error("generate the root CA: {0}")]
    Generate(String),
    #[error("sign the certificate of node {node_id}: {reason}")]
    Sign { node_id: String, reason: String },
}

/// The cluster root CA: its self-signed certificate and its private key (PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct RootCa {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[hidden]")
            .finish()
    }
}

impl RootCa {
    /// A new self-signed root CA for the cluster `cluster_id`: ECDSA P-256,
    /// CN `swarm-ca`, O = cluster ID, valid for [`CA_VALIDITY`]. It may sign node
    /// certificates only (path length 0).
    pub fn generate(cluster_id: &str) -> Result<RootCa, CaError> {
        check_cluster_id(cluster_id)?;
        let generate_error = |e: rcgen::Error| CaError::Generate(e.to_string());
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;

        let now = unix_now();
        let params = ca_params(cluster_id, now - secs(BACKDATE), now + secs(CA_VALIDITY))
            .map_err(CaError::Generate)?;
        let cert = params.self_signed(&key).map_err(generate_error)?;
        Ok(RootCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// `new`'s certificate signed by this (older) root: same subject, same
    /// public key, same validity, issued by this root. A node certificate
    /// signed by `new` and sent with this cross-signed certificate chains up to
    /// this root, so nodes that trust only this root accept it (how a root CA
    /// rotation keeps the swarm connected, see [`rotation`]).
    pub fn cross_sign(&self, new: &RootCa) -> Result<String, CaError> {
        let bad = |reason: String| CaError::BadRootCa(reason);
        let (old_issuer, _) = self.issuer()?;
        new.issuer()?;
        let new_key = KeyPair::from_pem(&new.key_pem).map_err(|e| bad(format!("key: {e}")))?;
        let der = rswarm_proto::identity::cert::first_cert_der(&new.cert_pem)
            .map_err(|e| bad(e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| bad(format!("certificate: {e}")))?;
        let cluster_id = cert
            .subject()
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .ok_or_else(|| bad("the new root names no cluster (subject O)".into()))?
            .to_string();
        let params = ca_params(
            &cluster_id,
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        )
        .map_err(bad)?;
        let cross = params
            .signed_by(&new_key, &old_issuer)
            .map_err(|e| bad(format!("cross-signing: {e}")))?;
        Ok(cross.pem())
    }

    /// The subject key identifier of this root's certificate: what the
    /// authority key identifier of every certificate it signs holds.
    pub fn key_id(&self) -> Result<Vec<u8>, CaError> {
        let der = rswarm_proto::identity::cert::first_cert_der(&self.cert_pem)
            .map_err(|e| CaError::BadRootCa(e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| CaError::BadRootCa(format!("certificate: {e}")))?;
        cert.extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(id.0.to_vec())
                }
                _ => None,
            })
            .ok_or_else(|| {
                CaError::BadRootCa("the certificate has no subject key identifier".into())
            })
    }

    /// A root CA loaded from storage, checked: the certificate parses, is a CA, and
    /// belongs to the key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<RootCa, CaError> {
        let ca = RootCa {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        };
        ca.issuer()?;
        Ok(ca)
    }

    /// Signs a node certificate for the public key in `csr_pem`.
    ///
    /// The subject is ours (CN `node_id`, OU from `role`, O `cluster_id`), never
    /// the CSR's; the DNS names are the role's (`swarm-manager` / `swarm-worker`)
    /// and the node ID; extended key usage is server and client authentication.
    /// Valid from [`backdate`] ago for `validity`, but never past the CA's own
    /// expiry.
    pub fn sign_node_csr(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: NodeRole,
        cluster_id: &str,
        validity: Duration,
    ) -> Result<String, CaError> {
        check_node_id(node_id)?;
        check_cluster_id(cluster_id)?;
        if validity.is_zero() {
            return Err(CaError::InvalidValidity(
                "it must be longer than zero".into(),
            ));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::InvalidCsr(e.to_string()))?;
        let (issuer, ca_not_after) = self.issuer()?;
        let sign_error = |reason: String| CaError::Sign {
            node_id: node_id.to_string(),
            reason,
        };

        let now = unix_now();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, node_id);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, role_ou(role));
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_id);
        params.subject_alt_names = [role_ou(role), node_id]
            .into_iter()
            .map(|name| {
                name.try_into()
                    .map(SanType::DnsName)
                    .map_err(|e: rcgen::Error| sign_error(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = datetime(now - secs(backdate(validity))).map_err(sign_error)?;
        let not_after = now.saturating_add(secs(validity)).min(ca_not_after);
        params.not_after = datetime(not_after).map_err(sign_error)?;

        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .map_err(|e| sign_error(e.to_string()))?;
        Ok(cert.pem())
    }

    /// The signing side of the CA and the CA's expiry (unix seconds), after
    /// checking that the certificate is a CA and matches the key.
    fn issuer(&self) -> Result<(Issuer<'static, KeyPair>, i64), CaError> {
        let bad = |reason: String| CaError::BadRootCa(reason);
        let key = KeyPair::from_pem(&self.key_pem).map_err(|e| bad(format!("key: {e}")))?;
        let der = rswarm_proto::identity::cert::first_cert_der(&self.cert_pem)
            .map_err(|e| bad(e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| bad(format!("certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(bad("the certificate is not a CA certificate".into()));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(bad("the key does not belong to the certificate".into()));
        }
        let not_after = cert.validity().not_after.timestamp();
        let issuer = Issuer::from_ca_cert_der(&der.into(), key)
            .map_err(|e| bad(format!("certificate: {e}")))?;
        Ok((issuer, not_after))
    }
}

/// The authority key identifier of a DER certificate (which CA key signed it).
pub fn authority_key_id(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// The parameters of a root CA certificate of `cluster_id` valid between two
/// unix times: CN `swarm-ca`, O = cluster ID, path length 0.
fn ca_params(
    cluster_id: &str,
    not_before: i64,
    not_after: i64,
) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, cluster_id);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    params.not_before = datetime(not_before)?;
    params.not_after = datetime(not_after)?;
    Ok(params)
}

/// Hex SHA-256 of a CA certificate PEM, as recorded on the Cluster object.
pub fn ca_hash(cert_pem: &str) -> String {
    Sha256::digest(cert_pem.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // Positive and without a leading zero byte, as RFC 5280 wants.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// Node IDs become DNS names in certificates: one DNS label of `a-z`, `0-9`, `-`.
fn check_node_id(node_id: &str) -> Result<(), CaError> {
    let invalid = |reason| CaError::InvalidName {
        what: "node ID",
        value: node_id.to_string(),
        reason,
    };
    if node_id.is_empty() || node_id.len() > 63 {
        return Err(invalid("it must be 1 to 63 characters long"));
    }
    if !node_id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || node_id.starts_with('-')
        || node_id.ends_with('-')
    {
        return Err(invalid(
            "only a-z, 0-9 and inner '-' are allowed (it becomes a DNS name)",
        ));
    }
    Ok(())
}

/// Cluster IDs go into the subject O, which holds at most 64 characters.
fn check_cluster_id(cluster_id: &str) -> Result<(), CaError> {
    let invalid = |reason| CaError::InvalidName {
        what: "cluster ID",
        value: cluster_id.to_string(),
        reason,
    };
    if cluster_id.is_empty() || cluster_id.len() > 64 {
        return Err(invalid("it must be 1 to 64 characters long"));
    }
    if !cluster_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("only printable ASCII without spaces is allowed"));
    }
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(secs)
        .unwrap_or(0)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn datetime(unix_secs: i64) -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .map_err(|e| format!("date {unix_secs} out of range: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::new_id;
    use rswarm_proto::identity::{cert, keys, token};
    use x509_parser::extensions::GeneralName;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn parse(pem: &str) -> x509_parser::pem::Pem {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .expect("pem")
            .1
    }

    #[test]
    fn root_ca_is_a_self_signed_ca_for_twenty_years() {
        let cluster_id = new_id();
        let ca = RootCa::generate(&cluster_id).expect("generate");
        let pem = parse(&ca.cert_pem);
        let cert = pem.parse_x509().expect("x509");
        assert!(cert.is_ca());
        assert_eq!(cert.subject(), cert.issuer());
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().expect("utf8"))
            .collect();
        assert_eq!(cn, [CA_COMMON_NAME]);
        let left = cert.validity().not_after.timestamp() - unix_now();
        assert!((left - secs(CA_VALIDITY)).abs() < 60, "20 years left");
        assert_eq!(RootCa::from_pem(&ca.cert_pem, &ca.key_pem), Ok(ca.clone()));
        assert!(!format!("{ca:?}").contains(&ca.key_pem));
    }

    #[test]
    fn issued_certificate_says_who_the_node_is() {
        let cluster_id = new_id();
        let ca = RootCa::generate(&cluster_id).expect("generate");
        let (_key, csr) = keys::new_key_and_csr().expect("csr");
        let node_id = new_id();

        for role in [NodeRole::Worker, NodeRole::Manager] {
            let pem = ca
                .sign_node_csr(&csr, &node_id, role, &cluster_id, 90 * DAY)
                .expect("sign");
            let identity = cert::parse_cert_pem(&pem).expect("parses");
            assert_eq!(identity.node_id, node_id);
            assert_eq!(identity.role, role);
            assert_eq!(identity.cluster_id, cluster_id);
            let expected = unix_now() + secs(90 * DAY);
            assert!(
                (identity.not_after - expected).abs() < 60,
                "expires in 90 days"
            );

            let block = parse(&pem);
            let x509 = block.parse_x509().expect("x509");
            assert!(!x509.is_ca());
            assert!(x509.validity().not_before.timestamp() <= unix_now() - 4 * 60);
            let sans: Vec<String> = x509
                .subject_alternative_name()
                .expect("san")
                .expect("has SANs")
                .value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(name) => name.to_string(),
                    other => format!("{other:?}"),
                })
                .collect();
            assert_eq!(sans, [cert::role_ou(role), node_id.as_str()]);
            let eku = x509
                .extended_key_usage()
                .expect("eku")
                .expect("has EKU")
                .value;
            assert!(eku.server_auth && eku.client_auth);
            // Signature and chain are checked by rustls in `loopback_tests`.
            assert_eq!(
                x509.issuer(),
                parse(&ca.cert_pem).parse_x509().expect("ca").subject()
            );
        }
    }

    #[test]
    fn the_csr_subject_and_extensions_are_ignored() {
        let ca = RootCa::generate("cluster1").expect("generate");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["swarm-manager".to_string()]).expect("params");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "swarm-manager");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = params
            .serialize_request(&key)
            .and_then(|c| c.pem())
            .expect("csr");

        let pem = ca
            .sign_node_csr(&csr, "node1", NodeRole::Worker, "cluster1", DAY)
            .expect("sign");
        let identity = cert::parse_cert_pem(&pem).expect("parses");
        assert_eq!(identity.role, NodeRole::Worker);
        assert_eq!(identity.node_id, "node1");
        let block = parse(&pem);
        let x509 = block.parse_x509().expect("x509");
        assert!(!x509.is_ca());
        assert!(x509
            .subject()
            .iter_organizational_unit()
            .all(|ou| ou.as_str() == Ok("swarm-worker")));
    }

    #[test]
    fn validity_never_outlives_the_ca() {
        let ca = RootCa::generate("cluster1").expect("generate");
        let (_key, csr) = keys::new_key_and_csr().expect("csr");
        let pem = ca
            .sign_node_csr(&csr, "node1", NodeRole::Worker, "cluster1", Duration::MAX)
            .expect("sign");
        let ca_block = parse(&ca.cert_pem);
        let ca_not_after = ca_block
            .parse_x509()
            .expect("ca")
            .validity()
            .not_after
            .timestamp();
        let identity = cert::parse_cert_pem(&pem).expect("parses");
        assert_eq!(identity.not_after, ca_not_after);

        assert!(matches!(
            ca.sign_node_csr(&csr, "node1", NodeRole::Worker, "cluster1", Duration::ZERO),
            Err(CaError::InvalidValidity(_))
        ));
    }

    #[test]
    fn a_short_validity_is_backdated_by_a_tenth_of_it() {
        assert_eq!(backdate(90 * DAY), BACKDATE);
        assert_eq!(backdate(Duration::from_secs(60)), Duration::from_secs(6));

        let ca = RootCa::generate("cluster1").expect("generate");
        let (_key, csr) = keys::new_key_and_csr().expect("csr");
        let before = unix_now();
        let pem = ca
            .sign_node_csr(
                &csr,
                "node1",
                NodeRole::Worker,
                "cluster1",
                Duration::from_secs(60),
            )
            .expect("sign");
        let after = unix_now();
        let validity = parse(&pem).parse_x509().expect("x509").validity().clone();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        assert!(
            (before - 6..=after - 6).contains(&not_before),
            "{not_before}"
        );
        assert!(
            (before + 60..=after + 60).contains(&not_after),
            "{not_after}"
        );
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let ca = RootCa::generate("cluster1").expect("generate");
        let (_key, csr) = keys::new_key_and_csr().expect("csr");
        let sign = |csr: &str, node_id: &str, cluster_id: &str| {
            ca.sign_node_csr(csr, node_id, NodeRole::Worker, cluster_id, DAY)
        };

        assert!(matches!(
            sign("garbage", "node1", "cluster1"),
            Err(CaError::InvalidCsr(_))
        ));
        // A CSR whose signature does not match its content.
        let mut der = parse(&csr).contents;
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64_lines(&der)
        );
        assert!(matches!(
            sign(&tampered, "node1", "cluster1"),
            Err(CaError::InvalidCsr(_))
        ));
        for bad_id in ["", "Node1", "node 1", "-node", "node.1", &"a".repeat(64)] {
            let err = sign(&csr, bad_id, "cluster1").expect_err(bad_id);
            assert!(err.to_string().starts_with("invalid node ID"), "{err}");
        }
        let err = sign(&csr, "node1", "").expect_err("empty cluster");
        assert!(err.to_string().starts_with("invalid cluster ID"), "{err}");
    }

    #[test]
    fn a_ca_with_the_wrong_key_is_refused() {
        let a = RootCa::generate("cluster1").expect("a");
        let b = RootCa::generate("cluster1").expect("b");
        let err = RootCa::from_pem(&a.cert_pem, &b.key_pem).expect_err("mismatch");
        assert_eq!(
            err,
            CaError::BadRootCa("the key does not belong to the certificate".into())
        );
        let mixed = RootCa {
            cert_pem: a.cert_pem.clone(),
            key_pem: b.key_pem.clone(),
        };
        let (_key, csr) = keys::new_key_and_csr().expect("csr");
        assert!(mixed
            .sign_node_csr(&csr, "node1", NodeRole::Worker, "cluster1", DAY)
            .is_err());
    }

    #[test]
    fn ca_hash_is_hex_sha256_and_tokens_pin_the_ca() {
        let ca = RootCa::generate("cluster1").expect("generate");
        let hash = ca_hash(&ca.cert_pem);
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|c| c.is_ascii_hexdigit()));
        let t = token::parse(&token::generate(&ca.cert_pem)).expect("token");
        assert!(t.matches_ca(&ca.cert_pem));
        let other = RootCa::generate("cluster1").expect("other");
        assert!(!t.matches_ca(&other.cert_pem));
    }

    /// Minimal base64 for re-encoding a tampered CSR in a test.
    fn base64_lines(data: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out.as_bytes()
            .chunks(64)
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
