//! rkt pods: the on-disk pod states and their locks, preparing a pod from stored images, and
//! running it: the supervisor (`rkt run`), the pod's init (PID 1) and one supervisor per app
//! that assembles the app's root filesystem and executes it.
//!
//! The runner asks the store for root filesystems (`Store::rendered_tree`) and never reads
//! packs itself. The layout and process model are described in `docs/pods.md`.

pub mod caps;
pub mod cgroups;
pub mod enter;
pub mod env;
pub mod error;
pub mod inroot;
pub mod mounts;
pub mod pods;
pub mod prepare;
pub mod rootfs;
pub mod run;
pub mod seccomp;
pub mod users;

mod app;
mod bpf;
mod console;
mod fds;
mod gate;
mod init;
mod os_isolators;
mod signals;

pub use error::{Result, RunnerError};
pub use pods::{Pod, PodState, Pods};
pub use prepare::{AppSpec, MountSpec, PodSpec};
pub use rootfs::RootfsMode;
pub use run::{EtcFile, RunOptions, DEFAULT_STOP_GRACE};
