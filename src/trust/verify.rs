//! Detached OpenPGP signature checks (armored or binary `.aci.asc`) with sequoia.

use std::path::Path;

use openpgp::cert::CertParser;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationError, VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;
use openpgp::{Cert, KeyHandle};
use sequoia_openpgp as openpgp;

use super::keystore::fingerprint;

/// Why an image's signature was not accepted. Messages name the image and what to do;
/// `hint_prefix` is the name to suggest to `rkt trust --prefix`.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no keys are trusted for {name:?}; trust the key that signs it with `rkt trust --prefix {name}` (or `rkt trust --root`), or skip verification with --insecure-options=image")]
    NoKeys { name: String },
    #[error("the signature of {name:?} was made by key {keyid}, which is not trusted for {name:?}; if you trust that key, add it with `rkt trust --prefix {name}`")]
    UnknownKey { name: String, keyid: String },
    #[error("the signature of {name:?} does not match the image data (made by {key}): the image or its signature was altered or they do not belong together; fetch both again from a source you trust")]
    BadSignature { name: String, key: String },
    #[error("the key {key} that signed {name:?} is revoked{reason}; the publisher has to sign the image with a valid key, and the revoked key should be removed from the keystore")]
    Revoked {
        name: String,
        key: String,
        reason: String,
    },
    #[error("the key {key} that signed {name:?} has expired ({reason}); get the publisher's renewed key and trust it again with `rkt trust --prefix {name}`")]
    Expired {
        name: String,
        key: String,
        reason: String,
    },
    #[error("the signature of {name:?} is not valid: {reason}")]
    Invalid { name: String, reason: String },
    #[error("cannot read the signature of {name:?}: {reason}; a detached OpenPGP signature (.aci.asc, armored or binary) is expected")]
    Malformed { name: String, reason: String },
    #[error("reading the image {name:?} to check its signature: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// Checks that `sig` is a good signature over the bytes of the file `data` by one of
/// `keyring`'s keys, which must be valid now (not revoked, not expired). Returns the
/// fingerprint of the signing certificate.
pub fn verify_detached(
    keyring: &[Cert],
    data: &Path,
    sig: &[u8],
    name: &str,
) -> Result<String, VerifyError> {
    if keyring.is_empty() {
        return Err(VerifyError::NoKeys { name: name.into() });
    }
    let policy = StandardPolicy::new();
    let malformed = |e: anyhow_like::Error| VerifyError::Malformed {
        name: name.into(),
        reason: e.to_string(),
    };
    let helper = Helper {
        keyring,
        name,
        outcome: None,
    };
    let mut verifier = DetachedVerifierBuilder::from_bytes(sig)
        .map_err(malformed)?
        .with_policy(&policy, None, helper)
        .map_err(malformed)?;
    let file = std::fs::File::open(data).map_err(|source| VerifyError::Io {
        name: name.into(),
        source,
    })?;
    let result = verifier.verify_reader(std::io::BufReader::new(file));
    let outcome = verifier.into_helper().outcome;
    match (result, outcome) {
        (Ok(()), Some(Ok(fp))) => check_valid_now(keyring, &fp, &policy, name).map(|_| fp),
        (_, Some(Err(e))) => Err(e),
        (Err(e), _) => Err(VerifyError::Malformed {
            name: name.into(),
            reason: e.to_string(),
        }),
        (Ok(()), None) => Err(VerifyError::Malformed {
            name: name.into(),
            reason: "it holds no signature".into(),
        }),
    }
}

/// sequoia's error type, named once here.
mod anyhow_like {
    pub type Error = sequoia_openpgp::anyhow::Error;
}

struct Helper<'a> {
    keyring: &'a [Cert],
    name: &'a str,
    /// The first good signature's cert fingerprint, or the most telling failure.
    outcome: Option<Result<String, VerifyError>>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.keyring.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure.into_iter() {
            let MessageLayer::SignatureGroup { results } = layer else {
                continue;
            };
            for r in results {
                match r {
                    Ok(good) => {
                        self.outcome = Some(Ok(fingerprint(good.ka.cert())));
                        return Ok(());
                    }
                    Err(e) => {
                        let err = self.describe(e);
                        if self.outcome.is_none() || !matches!(err, VerifyError::UnknownKey { .. })
                        {
                            self.outcome = Some(Err(err));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Helper<'_> {
    fn describe(&self, e: VerificationError) -> VerifyError {
        let name = self.name.to_string();
        match e {
            VerificationError::MissingKey { sig } => VerifyError::UnknownKey {
                name,
                keyid: sig
                    .get_issuers()
                    .first()
                    .map(|h| h.to_hex().to_lowercase())
                    .unwrap_or_else(|| "(no issuer recorded)".into()),
            },
            VerificationError::BadSignature { ka, .. } => VerifyError::BadSignature {
                name,
                key: fingerprint(ka.cert()),
            },
            VerificationError::UnboundKey { cert, error, .. } => {
                key_state_error(cert, &error.to_string(), &name)
            }
            VerificationError::BadKey { ka, error, .. } => {
                key_state_error(ka.cert(), &error.to_string(), &name)
            }
            VerificationError::MalformedSignature { error, .. } => VerifyError::Invalid {
                name,
                reason: error.to_string(),
            },
            VerificationError::UnknownSignature { .. } => VerifyError::Invalid {
                name,
                reason: "unsupported signature packet".into(),
            },
            _ => VerifyError::Invalid {
                name,
                reason: "unrecognised verification failure".into(),
            },
        }
    }
}

fn key_state_error(cert: &Cert, reason: &str, name: &str) -> VerifyError {
    let policy = StandardPolicy::new();
    let key = fingerprint(cert);
    if let RevocationStatus::Revoked(_) = cert.revocation_status(&policy, None) {
        return VerifyError::Revoked {
            name: name.into(),
            key,
            reason: String::new(),
        };
    }
    if reason.contains("xpired") {
        return VerifyError::Expired {
            name: name.into(),
            key,
            reason: reason.into(),
        };
    }
    VerifyError::Invalid {
        name: name.into(),
        reason: format!("key {key}: {reason}"),
    }
}

/// A good signature also needs a certificate that is valid today.
fn check_valid_now(
    keyring: &[Cert],
    fp: &str,
    policy: &StandardPolicy,
    name: &str,
) -> Result<(), VerifyError> {
    let Some(cert) = keyring.iter().find(|c| fingerprint(c) == fp) else {
        return Ok(());
    };
    if let RevocationStatus::Revoked(_) = cert.revocation_status(policy, None) {
        return Err(VerifyError::Revoked {
            name: name.into(),
            key: fp.into(),
            reason: String::new(),
        });
    }
    let valid = cert
        .with_policy(policy, None)
        .map_err(|e| VerifyError::Invalid {
            name: name.into(),
            reason: format!("key {fp}: {e}"),
        })?;
    valid.alive().map_err(|e| VerifyError::Expired {
        name: name.into(),
        key: fp.into(),
        reason: e.to_string(),
    })
}

/// Parses one or more (armored or binary) public keys.
pub fn parse_keys(bytes: &[u8]) -> Result<Vec<Cert>, String> {
    let mut certs = Vec::new();
    for c in CertParser::from_bytes(bytes).map_err(|e| e.to_string())? {
        let c = c.map_err(|e| e.to_string())?;
        if c.is_tsk() {
            certs.push(c.strip_secret_key_material());
        } else {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err("no OpenPGP public key found".into());
    }
    Ok(certs)
}

/// The lines `rkt trust` shows before asking: fingerprint, user IDs and subkeys.
pub fn describe_key(cert: &Cert) -> String {
    let mut s = format!("Key fingerprint: {}\n", fingerprint(cert));
    for uid in cert.userids() {
        s.push_str(&format!(
            "  {}\n",
            String::from_utf8_lossy(uid.userid().value())
        ));
    }
    for sub in cert.keys().subkeys() {
        s.push_str(&format!(
            "  Subkey fingerprint: {}\n",
            sub.key().fingerprint().to_hex().to_lowercase()
        ));
    }
    s
}
