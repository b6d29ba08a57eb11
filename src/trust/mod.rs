//! Trusted OpenPGP keys (rkt's keystore layout) and detached-signature verification.

pub mod keystore;
pub mod verify;

pub use keystore::{Keystore, TrustScope};
pub use verify::{describe_key, parse_keys, verify_detached};
