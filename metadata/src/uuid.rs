//! Pod UUIDs as the metadata service needs them: 16 bytes (what HMAC signatures cover) and
//! the canonical lower-case text form (what `/pod/uuid` returns).

use std::fmt;

use crate::error::MetadataError;

/// A pod UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PodUuid([u8; 16]);

impl PodUuid {
    /// Parses a UUID as appc does: 32 hexadecimal digits once dashes are removed, any case.
    pub fn parse(s: &str) -> Result<PodUuid, MetadataError> {
        let digits: String = s.chars().filter(|&c| c != '-').collect();
        let mut bytes = [0u8; 16];
        if digits.len() != 32 || hex::decode_to_slice(&digits, &mut bytes).is_err() {
            return Err(MetadataError::InvalidUuid(s.to_string()));
        }
        Ok(PodUuid(bytes))
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for PodUuid {
    /// Canonical form: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trip() {
        let u = PodUuid::parse("6733C3DA-5c8f-4b7d-9b49-9a5f4b6b0c1e").unwrap();
        assert_eq!(u.to_string(), "6733c3da-5c8f-4b7d-9b49-9a5f4b6b0c1e");
        assert_eq!(
            PodUuid::parse("6733c3da5c8f4b7d9b499a5f4b6b0c1e").unwrap(),
            u
        );
        assert_eq!(u.as_bytes()[0], 0x67);
    }

    #[test]
    fn rejects_bad_uuids() {
        for bad in [
            "",
            "xyz",
            "6733c3da-5c8f-4b7d-9b49-9a5f4b6b0c1",
            "g733c3da5c8f4b7d9b499a5f4b6b0c1e",
            "6733c3da5c8f4b7d9b499a5f4b6b0c1e00",
            "é733c3da5c8f4b7d9b499a5f4b6b0c1",
        ] {
            assert!(PodUuid::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
