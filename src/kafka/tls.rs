//! Checks of the mutual-TLS files before connecting: each exists, parses, the key matches the
//! certificate, and the certificate is valid now. librdkafka would otherwise report most of
//! these only as delivery timeouts.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::x509::X509;

use super::settings::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {flag} {path}: {source}; check the Secret is mounted there")]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {path} is not a PEM {what}: {reason}")]
    Parse {
        flag: &'static str,
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error(
        "--kafka-key {key} does not belong to --kafka-cert {cert}; mount the key issued with \
         that certificate"
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "--kafka-cert {path} expired on {not_after}; renew the client certificate (the brokers \
         would refuse it)"
    )]
    Expired { path: PathBuf, not_after: String },
    #[error(
        "--kafka-cert {path} is not valid before {not_before}; check the clock or the certificate"
    )]
    NotYetValid { path: PathBuf, not_before: String },
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        flag,
        path: path.to_path_buf(),
        source,
    })
}

fn parse_err(flag: &'static str, path: &Path, what: &'static str) -> impl Fn(String) -> TlsError {
    let path = path.to_path_buf();
    move |reason| TlsError::Parse {
        flag,
        path: path.clone(),
        what,
        reason,
    }
}

/// Check the three files; returns nothing but the first problem found.
pub fn check(files: &TlsFiles) -> Result<(), TlsError> {
    let ca = read("--kafka-ca", &files.ca)?;
    let cas = X509::stack_from_pem(&ca)
        .map_err(|e| parse_err("--kafka-ca", &files.ca, "certificate")(e.to_string()))?;
    if cas.is_empty() {
        return Err(parse_err("--kafka-ca", &files.ca, "certificate")(
            "no certificate found".into(),
        ));
    }
    let cert_pem = read("--kafka-cert", &files.cert)?;
    let cert = X509::from_pem(&cert_pem)
        .map_err(|e| parse_err("--kafka-cert", &files.cert, "certificate")(e.to_string()))?;
    let key_pem = read("--kafka-key", &files.key)?;
    let key = crate::pem::private_key(&key_pem).map_err(parse_err(
        "--kafka-key",
        &files.key,
        "private key",
    ))?;
    let public = cert
        .public_key()
        .map_err(|e| parse_err("--kafka-cert", &files.cert, "certificate")(e.to_string()))?;
    if !public.public_eq(&key) {
        return Err(TlsError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        });
    }
    let now = Asn1Time::days_from_now(0)
        .map_err(|e| parse_err("--kafka-cert", &files.cert, "certificate")(e.to_string()))?;
    if cert.not_after() < now {
        return Err(TlsError::Expired {
            path: files.cert.clone(),
            not_after: cert.not_after().to_string(),
        });
    }
    if cert.not_before() > now {
        return Err(TlsError::NotYetValid {
            path: files.cert.clone(),
            not_before: cert.not_before().to_string(),
        });
    }
    Ok(())
}
