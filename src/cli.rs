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
    /// Run image(s) in a pod: rkt run [POD FLAGS] IMAGE [APP FLAGS] [-- ARGS [---]] [IMAGE ...]
    Run(PodArgs),
    /// Prepare a pod to run later with run-prepared; prints its UUID
    Prepare(PodArgs),
    /// Run a prepared pod
    #[command(name = "run-prepared")]
    RunPrepared(RunPreparedArgs),
    /// List pods
    List(ListArgs),
    /// Check the status of a pod
    Status(StatusArgs),
    /// Stop running pods
    Stop(StopArgs),
    /// Run a command in a running pod's app
    Enter(EnterArgs),
    /// Print the manifest of a pod
    #[command(name = "cat-manifest")]
    CatManifest(CatManifestArgs),
    /// Remove pods that are not running
    Rm(RmArgs),
    /// Garbage collect pods that exited
    Gc(GcArgs),
    /// Print the version and exit
    Version,
}

/// `run`/`prepare`: rkt's own grammar, parsed by `commands::run_args`.
#[derive(Args, Debug)]
pub struct PodArgs {
    /// pod flags, then images each followed by its app flags and `-- ARGS ---`
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "FLAGS_AND_IMAGES"
    )]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunPreparedArgs {
    /// pod hostname (default rkt-UUID)
    #[arg(long)]
    pub hostname: Option<String>,
    /// attach the terminal to the (single) app
    #[arg(long)]
    pub interactive: bool,
    /// pod networks: host (default), none, default, default-restricted, NAME[:K=V;...], all;
    /// a bare --net means default (replaces the networks `prepare` was given)
    #[arg(long, num_args = 0..=1, default_missing_value = "", require_equals = true)]
    pub net: Vec<String>,
    /// same as --net=default (old spelling)
    #[arg(long = "private-net", hide = true)]
    pub private_net: bool,
    /// DNS servers for the pod: IPs, host or none
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// DNS resolver options
    #[arg(long = "dns-opt")]
    pub dns_opt: Vec<String>,
    /// DNS domain
    #[arg(long = "dns-domain")]
    pub dns_domain: Option<String>,
    /// /etc/hosts entries IP=HOST[,IP=HOST], or host
    #[arg(long = "hosts-entry")]
    pub hosts_entry: Vec<String>,
    /// change how the apps' root filesystems are assembled: lazy, rendered or copy
    #[arg(long)]
    pub rootfs: Option<String>,
    /// time apps get between SIGTERM and SIGKILL when the pod stops
    #[arg(long = "stop-timeout", default_value = "10s", value_parser = crate::duration::parse)]
    pub stop_timeout: std::time::Duration,
    pub uuid: String,
}

impl RunPreparedArgs {
    /// The network flags given to run-prepared.
    pub fn net_flags(&self) -> crate::commands::NetFlags {
        crate::commands::NetFlags {
            net: self.net.clone(),
            private_net: self.private_net,
            port: Vec::new(),
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_opt: self.dns_opt.clone(),
            dns_domain: self.dns_domain.clone(),
            hosts_entry: self.hosts_entry.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct ListArgs {
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

/// A pod given by UUID (or prefix) or by `--uuid-file`.
#[derive(Args, Debug)]
pub struct PodRef {
    /// read the pod UUID from this file
    #[arg(long = "uuid-file")]
    pub uuid_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// wait until the pod has exited
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub pod: PodRef,
    pub uuid: Option<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// kill the pod at once (SIGKILL) instead of stopping it gracefully
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub pod: PodRef,
    pub uuids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EnterArgs {
    /// the app to enter (needed when the pod has several)
    #[arg(long)]
    pub app: Option<String>,
    pub uuid: String,
    /// command and arguments (default /bin/bash)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CatManifestArgs {
    /// pretty-print the manifest
    #[arg(long = "pretty-print", default_value_t = true, action = clap::ArgAction::Set)]
    pub pretty_print: bool,
    #[command(flatten)]
    pub pod: PodRef,
    pub uuid: Option<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[command(flatten)]
    pub pod: PodRef,
    pub uuids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// how long an exited pod stays after it is marked as garbage
    #[arg(long = "grace-period", default_value = "30m0s", value_parser = crate::duration::parse)]
    pub grace_period: std::time::Duration,
    /// how long a prepared pod may wait for run-prepared
    #[arg(long = "expire-prepared", default_value = "24h0m0s", value_parser = crate::duration::parse)]
    pub expire_prepared: std::time::Duration,
    /// only mark pods as garbage, do not remove them
    #[arg(long = "mark-only")]
    pub mark_only: bool,
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
    /// for Docker manifest lists and OCI indexes: the platform to fetch (OS/ARCH[/VARIANT])
    #[arg(long, default_value = "linux/amd64", value_parser = parse_platform)]
    pub platform: rkt_store::docker::Platform,
    /// images to fetch: paths, file:// URLs, image IDs or names
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

fn parse_platform(s: &str) -> Result<rkt_store::docker::Platform, String> {
    rkt_store::docker::Platform::parse(s)
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
