//! `rkt fetch`: fetch images (verified unless told otherwise) into the store and print
//! their IDs.

use anyhow::{bail, Result};

use super::{open_store, short_id};
use crate::cli::{FetchArgs, GlobalArgs};
use crate::fetch::{classify, fetch_image, FetchContext, Source};

pub fn run(global: &GlobalArgs, args: FetchArgs) -> Result<u8> {
    let files = args
        .images
        .iter()
        .filter(|i| matches!(classify(i), Source::File(_)))
        .count();
    if args.signature.len() > files {
        bail!(
            "{} --signature files given for {files} local image file(s); --signature only applies to local files",
            args.signature.len()
        );
    }
    let mut store = open_store(global)?;
    let mut ctx = FetchContext::new(global, &mut store, args.pull_policy)?;
    ctx.platform = args.platform.clone();
    let mut signatures = args.signature.iter();
    for image in &args.images {
        ctx.signature = match classify(image) {
            Source::File(_) => signatures.next().cloned(),
            _ => None,
        };
        let id = fetch_image(&mut ctx, image)?;
        println!("{}", short_id(&id, args.full));
    }
    Ok(0)
}

/// The store ID of an image named on `rkt run`'s command line, fetched (and verified) as
/// `rkt fetch` would with the `new` pull policy: stored images are used as they are, others
/// come from files, URLs, appc discovery or Docker registries.
pub fn image_for_pod(
    global: &GlobalArgs,
    insecure: bool,
    store: &mut rkt_store::Store,
    image: &str,
) -> Result<String> {
    let mut g = global.clone();
    g.insecure_skip_verify |= insecure;
    let mut ctx = FetchContext::new(&g, store, crate::cli::PullPolicy::New)?;
    fetch_image(&mut ctx, image)
}
