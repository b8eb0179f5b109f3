//! A node's private key and the certificate signing request it sends to a manager.
//!
//! Each node makes its own ECDSA P-256 key when it joins and again when it renews
//! its certificate; only the CSR (public key) goes over the wire, the private key
//! never leaves the node. The CSR's subject is left empty: the manager decides the
//! node ID, role and cluster it writes into the certificate.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256};

use super::cert::CertError;

/// A fresh ECDSA P-256 key (PKCS#8 PEM) and a CSR for it (PEM).
pub fn new_key_and_csr() -> Result<(String, String), CertError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CertError::KeyGeneration(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| CertError::KeyGeneration(e.to_string()))?;
    Ok((key.serialize_pem(), csr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_p256_key_and_a_verifiable_csr_for_it() {
        let (key_pem, csr_pem) = new_key_and_csr().expect("key and csr");
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));

        let key = KeyPair::from_pem(&key_pem).expect("key parses");
        assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);

        // from_pem checks the CSR's self-signature.
        let csr = rcgen::CertificateSigningRequestParams::from_pem(&csr_pem).expect("csr parses");
        assert_eq!(csr.public_key.algorithm(), &PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            rcgen::PublicKeyData::der_bytes(&csr.public_key),
            key.public_key_raw()
        );

        let (other_key, _) = new_key_and_csr().expect("second key");
        assert_ne!(other_key, key_pem);
    }
}
