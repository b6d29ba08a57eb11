//! rkt's command-line grammar (clap), mirroring rkt v1.30's flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::insecure::InsecureOptions;

#[derive(Parser, Debug)]
#[command(
    name = "rkt",
    version,
    about = "rkt, the pod-native container engine",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// rkt data directory
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/rkt",
        value_name = "DIR"
    )]
    pub dir: PathBuf,
    /// system configuration directory
    #[arg(long = "system-config", global = true, default_value = "/usr/lib/rkt")]
    pub system_config: PathBuf,
    /// local configuration directory
    #[arg(long = "local-config", global = true, default_value = "/etc/rkt")]
    pub local_config: PathBuf,
    /// user configuration directory
    #[arg(long = "user-config", global = true)]
    pub user_config: Option<PathBuf>,
    /// comma-separated list of security features to disable:
    /// none, image, tls, ondisk, http, pubkey, capabilities, paths, seccomp, all-fetch, all-run, all
    #[arg(long = "insecure-options", global = true, default_value = "none")]
    pub insecure_options: InsecureOptions,
    /// deprecated alias of --insecure-options=image
    #[arg(long = "insecure-skip-verify", global = true, hide = true)]
    pub insecure_skip_verify: bool,
    /// automatically trust gpg keys fetched from https
    #[arg(long = "trust-keys-from-https", global = true)]
    pub trust_keys_from_https: bool,
    /// print out more debug information to stderr
    #[arg(long, global = true)]
    pub debug: bool,
}

impl GlobalArgs {
    /// Whether image signature verification is off.
    pub fn skip_image_verification(&self) -> bool {
        self.insecure_skip_verify || self.insecure_options.image
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fetch image(s) and store them in the local store
    Fetch(FetchArgs),
    /// Operate on image(s) in the local store
    #[command(subcommand)]
    Image(ImageCommand),
    /// Trust a key for image verification
    Trust(TrustArgs),
    /// Print the version and exit
    Version,
}

#[derive(Args, Debug)]
pub struct TrustArgs {
    /// substring prefix of image names the keys are trusted for (e.g. example.com/nginx)
    #[arg(long)]
    pub prefix: Option<String>,
    /// trust the keys for all images (root keys)
    #[arg(long)]
    pub root: bool,
    /// allow fetching keys over plain HTTP
    #[arg(long = "insecure-allow-http")]
    pub insecure_allow_http: bool,
    /// trust the keys without asking to confirm their fingerprints
    #[arg(long = "skip-fingerprint-review")]
    pub skip_fingerprint_review: bool,
    /// public keys: files or http(s) URLs; none = discover them for --prefix
    #[arg(value_name = "PUBKEY")]
    pub keys: Vec<String>,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// print the full image hash after fetching
    #[arg(long)]
    pub full: bool,
    /// local signature file for a local image file (the n-th --signature goes with the
    /// n-th image; default: IMAGE.asc beside the file)
    #[arg(long)]
    pub signature: Vec<PathBuf>,
    /// when to fetch an image: new, update or never
    #[arg(long = "pull-policy", default_value = "new")]
    pub pull_policy: PullPolicy,
    /// images to fetch: paths, file:// URLs, image IDs or names
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    New,
    Update,
    Never,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    #[value(name = "json-pretty")]
    JsonPretty,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images in the local store
    #[command(alias = "ls")]
    List(ImageListArgs),
    /// Inspect the manifest for a local image
    #[command(name = "cat-manifest")]
    CatManifest {
        /// pretty-print the manifest
        #[arg(long = "pretty-print", default_value_t = true, action = clap::ArgAction::Set)]
        pretty_print: bool,
        image: String,
    },
    /// Remove one or more images from the local store
    Rm {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Export a stored image to an ACI file
    Export {
        /// overwrite the output ACI
        #[arg(long)]
        overwrite: bool,
        image: String,
        output: PathBuf,
    },
    /// Extract a stored image to a directory (the raw image, without dependencies)
    Extract(TreeArgs),
    /// Render a stored image to a directory with all its dependencies
    Render(TreeArgs),
    /// Verify stored images against their hashes
    Verify {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Garbage collect images in the local store
    Gc {
        /// duration to wait since an image was last used before removing it
        #[arg(long = "grace-period", default_value = "24h0m0s", value_parser = crate::duration::parse)]
        grace_period: std::time::Duration,
    },
}

#[derive(Args, Debug)]
pub struct ImageListArgs {
    /// don't print a legend (column headers)
    #[arg(long = "no-legend")]
    pub no_legend: bool,
    /// use long output format
    #[arg(long)]
    pub full: bool,
    /// choose the output format
    #[arg(long)]
    pub format: Option<Format>,
}

#[derive(Args, Debug)]
pub struct TreeArgs {
    /// extract the rootfs only
    #[arg(long = "rootfs-only")]
    pub rootfs_only: bool,
    /// overwrite the output directory
    #[arg(long)]
    pub overwrite: bool,
    pub image: String,
    /// the directory to write
    #[arg(value_name = "DIR")]
    pub dest: PathBuf,
}
