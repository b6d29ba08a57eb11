//! `rkt trust`: add public keys to the local keystore, for a name prefix or as root keys.

use anyhow::{bail, Result};

use crate::cli::{GlobalArgs, TrustArgs};
use crate::fetch::auth::AuthHeaders;
use crate::fetch::http::{Client, HttpPolicy};
use crate::fetch::pubkeys;
use crate::trust::keystore::{check_prefix, fingerprint};
use crate::trust::{Keystore, TrustScope};

pub fn run(global: &GlobalArgs, args: TrustArgs) -> Result<u8> {
    let scope = scope(&args)?;
    let mut dirs = vec![global.system_config.clone(), global.local_config.clone()];
    dirs.extend(global.user_config.clone());
    let allow_http = args.insecure_allow_http || global.insecure_options.http;
    let client = Client::new(
        HttpPolicy {
            allow_http,
            insecure_tls: global.insecure_options.tls,
        },
        AuthHeaders::load(&dirs)?,
    );
    let sources = if args.keys.is_empty() {
        let TrustScope::Prefix(prefix) = &scope else {
            bail!("--root needs the keys to trust as arguments (files or URLs)");
        };
        pubkeys::discover_key_urls(&client, prefix)?
    } else {
        args.keys.clone()
    };
    let keystore = Keystore::new(&global.system_config, &global.local_config);
    for source in &sources {
        for cert in pubkeys::load_keys(&client, source, allow_http)? {
            let auto = global.trust_keys_from_https && source.starts_with("https://");
            let accepted = if args.skip_fingerprint_review || auto {
                eprintln!("{}", crate::trust::describe_key(&cert).trim_end());
                true
            } else {
                pubkeys::review(&cert, &scope)?
            };
            if !accepted {
                eprintln!("Not trusting key {}", fingerprint(&cert));
                continue;
            }
            let path = keystore.trust(&cert, &scope)?;
            match &scope {
                TrustScope::Root => eprintln!("Added root key at {}", path.display()),
                TrustScope::Prefix(p) => {
                    eprintln!("Added key for prefix {p:?} at {}", path.display())
                }
            }
        }
    }
    Ok(0)
}

fn scope(args: &TrustArgs) -> Result<TrustScope> {
    match (&args.prefix, args.root) {
        (Some(_), true) => bail!("--root and --prefix cannot be used together"),
        (None, false) => bail!(
            "--prefix PREFIX or --root is required: refusing to trust keys for every image without --root (aborting due to implicit unbounded trust)"
        ),
        (None, true) => Ok(TrustScope::Root),
        (Some(p), false) => {
            check_prefix(p)?;
            Ok(TrustScope::Prefix(p.clone()))
        }
    }
}
