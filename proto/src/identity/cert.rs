//! What a node certificate says about its holder.
//!
//! Subject: CN = node ID, OU = role (`swarm-manager` or `swarm-worker`),
//! O = cluster ID. The manager's CA (`rswarm_manager::ca`) writes these; every node
//! reads them back here, for instance to learn who is calling
//! ([`super::tls::peer_identity`]). The role's OU string is also the certificate's
//! DNS subject alternative name, which is how a client checks it is talking to a
//! manager (server name `swarm-manager`).
//!
//! Parsing does not check signatures or validity dates; rustls does that during the
//! handshake, against the cluster CA.

use x509_parser::certificate::X509Certificate;
use x509_parser::x509::X509Name;

use crate::types::NodeRole;

/// OU (and DNS SAN) of manager certificates; also the TLS server name clients verify.
pub const MANAGER_OU: &str = "swarm-manager";
/// OU (and DNS SAN) of worker certificates.
pub const WORKER_OU: &str = "swarm-worker";

/// Who a node certificate belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node ID (subject CN).
    pub node_id: String,
    /// The role the certificate grants (subject OU).
    pub role: NodeRole,
    /// The cluster the node belongs to (subject O).
    pub cluster_id: String,
    /// When the certificate expires, in unix seconds.
    pub not_after: i64,
}

/// Why a certificate, key or CSR could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("not a PEM certificate: {0}")]
    NotPem(String),
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("certificate subject has no {0}; it is not an rswarm node certificate")]
    MissingField(&'static str),
    #[error("certificate subject has {count} {field} values; expected exactly one")]
    AmbiguousField { field: &'static str, count: usize },
    #[error("certificate role {0:?} is neither {MANAGER_OU:?} nor {WORKER_OU:?}")]
    UnknownRole(String),
    #[error("generate node key and certificate request: {0}")]
    KeyGeneration(String),
}

/// The subject OU (and DNS SAN) naming `role`.
pub fn role_ou(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Manager => MANAGER_OU,
        NodeRole::Worker => WORKER_OU,
    }
}

/// The role an OU names, if any.
pub fn role_from_ou(ou: &str) -> Option<NodeRole> {
    match ou {
        MANAGER_OU => Some(NodeRole::Manager),
        WORKER_OU => Some(NodeRole::Worker),
        _ => None,
    }
}

/// Reads the node identity from the first certificate of a PEM string.
pub fn parse_cert_pem(pem: &str) -> Result<NodeIdentity, CertError> {
    let der = first_cert_der(pem)?;
    parse_cert_der(&der)
}

/// Reads the node identity from a DER certificate.
pub fn parse_cert_der(der: &[u8]) -> Result<NodeIdentity, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    identity_of(&cert)
}

/// The DER bytes of the first `CERTIFICATE` block in `pem`.
pub fn first_cert_der(pem: &str) -> Result<Vec<u8>, CertError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| CertError::NotPem(e.to_string()))?;
    if block.label != "CERTIFICATE" {
        return Err(CertError::NotPem(format!(
            "found a {:?} block, expected CERTIFICATE",
            block.label
        )));
    }
    Ok(block.contents)
}

fn identity_of(cert: &X509Certificate<'_>) -> Result<NodeIdentity, CertError> {
    let subject = cert.subject();
    let node_id = single(subject, "CN (node ID)", X509Name::iter_common_name)?;
    let ou = single(subject, "OU (role)", X509Name::iter_organizational_unit)?;
    let cluster_id = single(subject, "O (cluster ID)", X509Name::iter_organization)?;
    let role = role_from_ou(&ou).ok_or(CertError::UnknownRole(ou))?;
    Ok(NodeIdentity {
        node_id,
        role,
        cluster_id,
        not_after: cert.validity().not_after.timestamp(),
    })
}

fn single<'a, I>(
    name: &'a X509Name<'a>,
    field: &'static str,
    values: impl Fn(&'a X509Name<'a>) -> I,
) -> Result<String, CertError>
where
    I: Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
{
    let all: Vec<_> = values(name).collect();
    match all.as_slice() {
        [] => Err(CertError::MissingField(field)),
        [one] => {
            let value = one
                .as_str()
                .map_err(|e| CertError::Malformed(format!("{field}: {e}")))?;
            if value.is_empty() {
                return Err(CertError::MissingField(field));
            }
            Ok(value.to_string())
        }
        many => Err(CertError::AmbiguousField {
            field,
            count: many.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert_with_subject(fields: &[(DnType, &str)]) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in fields {
            params.distinguished_name.push(ty.clone(), *value);
        }
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("self-signed").pem()
    }

    #[test]
    fn reads_node_id_role_cluster_and_expiry() {
        let pem = cert_with_subject(&[
            (DnType::CommonName, "node1"),
            (DnType::OrganizationalUnitName, "swarm-worker"),
            (DnType::OrganizationName, "cluster1"),
        ]);
        let id = parse_cert_pem(&pem).expect("parses");
        assert_eq!(id.node_id, "node1");
        assert_eq!(id.role, NodeRole::Worker);
        assert_eq!(id.cluster_id, "cluster1");
        // rcgen's default not_after is 4096-01-01.
        assert_eq!(id.not_after, 67_090_118_400);

        let der = first_cert_der(&pem).expect("der");
        assert_eq!(parse_cert_der(&der).expect("parses"), id);
    }

    #[test]
    fn role_names_round_trip() {
        for role in [NodeRole::Manager, NodeRole::Worker] {
            assert_eq!(role_from_ou(role_ou(role)), Some(role));
        }
        assert_eq!(role_from_ou("swarm-admin"), None);
    }

    #[test]
    fn rejects_certificates_that_are_not_node_certificates() {
        let no_ou = cert_with_subject(&[
            (DnType::CommonName, "node1"),
            (DnType::OrganizationName, "cluster1"),
        ]);
        assert_eq!(
            parse_cert_pem(&no_ou),
            Err(CertError::MissingField("OU (role)"))
        );

        let bad_role = cert_with_subject(&[
            (DnType::CommonName, "node1"),
            (DnType::OrganizationalUnitName, "swarm-admin"),
            (DnType::OrganizationName, "cluster1"),
        ]);
        assert_eq!(
            parse_cert_pem(&bad_role),
            Err(CertError::UnknownRole("swarm-admin".into()))
        );

        assert!(matches!(
            parse_cert_pem("not a certificate"),
            Err(CertError::NotPem(_))
        ));
        assert!(matches!(
            parse_cert_der(b"\x30\x03\x02\x01\x00"),
            Err(CertError::Malformed(_))
        ));
        let key_pem = KeyPair::generate().expect("key").serialize_pem();
        assert!(matches!(
            parse_cert_pem(&key_pem),
            Err(CertError::NotPem(_))
        ));
    }
}
