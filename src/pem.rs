//! Private keys read from PEM the one way both TLS clients (Kafka, Prometheus) need: never
//! prompting. OpenSSL asks for a pass phrase on the terminal when a key is encrypted, and a
//! run started by hand would wait there forever; the job has no pass phrase to give (Kafka's
//! `ssl.key.password` is refused, so that it never sits in the environment), so an encrypted
//! key is refused with the command that writes it unencrypted.

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

/// The key in `pem`, or why it cannot be used (a sentence for an error message).
pub fn private_key(pem: &[u8]) -> Result<PKey<Private>, String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("ENCRYPTED") {
        return Err(
            "the key is encrypted with a pass phrase, which the job cannot be given; store it \
             unencrypted in a Secret (`openssl pkey -in key.pem -out key-plain.pem`)"
                .into(),
        );
    }
    // The callback answers any pass phrase request with an empty one: no prompt, ever.
    PKey::private_key_from_pem_callback(pem, |_| Ok(0)).map_err(|e| e.to_string())
}

/// Whether the private key `key` belongs to the first certificate in `cert`.
pub fn key_matches(cert: &[u8], key: &PKey<Private>) -> Result<bool, String> {
    let cert = X509::from_pem(cert).map_err(|e| e.to_string())?;
    let public = cert.public_key().map_err(|e| e.to_string())?;
    Ok(public.public_eq(key))
}
