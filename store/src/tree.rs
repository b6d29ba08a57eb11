//! Resolving an image's dependencies in appc's order and rendering or extracting it to a
//! directory.

use std::path::Path;

use crate::content::Reader;
use crate::entry::Entry;
use crate::error::{Result, StoreError};
use crate::render::{self, Layer, RenderOptions, RenderStats};
use crate::schema::ImageManifest;
use crate::Store;

/// Dependency chains deeper than this are treated as cycles.
const MAX_DEPTH: usize = 64;

/// One image of a flattened dependency list.
pub(crate) struct Resolved {
    pub(crate) id: String,
    pub(crate) manifest: ImageManifest,
    pub(crate) level: usize,
}

impl Store {
    /// The image and its dependencies, flattened in the order appc's acirenderer uses
    /// (each image's dependencies are inserted right after it, so the last listed comes first).
    pub fn dependency_list(&self, id: &str) -> Result<Vec<String>> {
        Ok(self
            .resolve_dependencies(id)?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    pub(crate) fn resolve_dependencies(&self, id: &str) -> Result<Vec<Resolved>> {
        let mut list = vec![Resolved {
            id: id.to_string(),
            manifest: self.manifest(id)?,
            level: 0,
        }];
        let mut at = 0;
        while at < list.len() {
            let level = list[at].level + 1;
            if level > MAX_DEPTH {
                return Err(StoreError::DependencyCycle(id.to_string()));
            }
            let deps = list[at].manifest.dependencies.clone();
            for dep in deps {
                let dep_id = self.resolve_dependency(&list[at].id, &dep)?;
                let manifest = self.manifest(&dep_id)?;
                list.insert(
                    at + 1,
                    Resolved {
                        id: dep_id,
                        manifest,
                        level,
                    },
                );
            }
            at += 1;
        }
        Ok(list)
    }

    fn resolve_dependency(&self, parent: &str, dep: &crate::schema::Dependency) -> Result<String> {
        let missing = || StoreError::MissingDependency {
            image: parent.to_string(),
            name: dep.image_name.as_str().to_string(),
        };
        if let Some(dep_id) = dep.image_id.as_ref().filter(|i| i.is_full()) {
            return self
                .resolve(dep_id.as_str())
                .map(|i| i.id)
                .map_err(|_| missing());
        }
        let labels: Vec<(String, String)> = dep
            .labels
            .as_slice()
            .iter()
            .map(|l| (l.name.as_str().to_string(), l.value.clone()))
            .collect();
        Ok(self
            .find_by_name(dep.image_name.as_str(), &labels)?
            .ok_or_else(missing)?
            .id)
    }

    /// Run `f` over the image and its dependencies as render layers, with their appc levels;
    /// returns the dependency list's image IDs alongside `f`'s result.
    pub(crate) fn with_layers<T>(
        &self,
        id: &str,
        f: impl FnOnce(&[Layer<'_>], &[u16]) -> Result<T>,
    ) -> Result<(T, Vec<String>)> {
        let images = self.resolve_dependencies(id)?;
        let entries: Vec<Vec<Entry>> = images
            .iter()
            .map(|r| self.entries(&r.id))
            .collect::<Result<_>>()?;
        let layers: Vec<Layer<'_>> = images
            .iter()
            .zip(&entries)
            .map(|(r, e)| Layer {
                image_id: r.id.clone(),
                entries: e,
                path_whitelist: r.manifest.path_whitelist.clone(),
            })
            .collect();
        let levels: Vec<u16> = images.iter().map(|r| r.level as u16).collect();
        let value = f(&layers, &levels)?;
        Ok((value, images.into_iter().map(|r| r.id).collect()))
    }

    /// Write the image with its dependencies to `dest` (`manifest` + `rootfs/`, or only the
    /// rootfs), as a pod would see it.
    pub fn render_image(
        &mut self,
        id: &str,
        dest: &Path,
        rootfs_only: bool,
    ) -> Result<RenderStats> {
        let opts = RenderOptions {
            rootfs_only,
            apply_whitelist: true,
            manifest: Some(self.manifest_bytes(id)?),
        };
        let reader = Reader::new(self);
        let (stats, used) = self.with_layers(id, |layers, levels| {
            Ok(render::render_with_levels(
                layers,
                Some(levels),
                dest,
                &opts,
                &reader,
            )?)
        })?;
        for image in &used {
            self.touch(image)?;
        }
        Ok(stats)
    }

    /// Write the image alone, as stored, to `dest`.
    pub fn extract_image(
        &mut self,
        id: &str,
        dest: &Path,
        rootfs_only: bool,
    ) -> Result<RenderStats> {
        let entries = self.entries(id)?;
        let layers = [Layer {
            image_id: id.to_string(),
            entries: &entries,
            path_whitelist: Vec::new(),
        }];
        let opts = RenderOptions {
            rootfs_only,
            apply_whitelist: false,
            manifest: Some(self.manifest_bytes(id)?),
        };
        let stats = render::render(&layers, dest, &opts, &Reader::new(self))?;
        self.touch(id)?;
        Ok(stats)
    }
}

/// Marker written inside a tree directory once it is complete.
const RENDERED_MARKER: &str = ".rkt-rendered";

impl Store {
    fn trees_dir(&self) -> std::path::PathBuf {
        self.dir.join("trees")
    }

    /// Directory of an image's shared rendered tree (`manifest` + `rootfs/`), whether or not
    /// it exists yet.
    pub fn tree_dir(&self, id: &str) -> std::path::PathBuf {
        self.trees_dir().join(id.trim_start_matches("sha512-"))
    }

    /// Whether the image's shared rendered tree exists and is complete (see
    /// [`Store::rendered_tree`]).
    pub fn has_rendered_tree(&self, id: &str) -> bool {
        self.tree_dir(id).join(RENDERED_MARKER).exists()
    }

    /// The image rendered with its dependencies, once, under `trees/`, shared read-only by
    /// every pod of that image (as an overlayfs lower directory). Concurrent callers wait for
    /// one render; a render killed half way is redone.
    pub fn rendered_tree(&mut self, id: &str) -> Result<std::path::PathBuf> {
        let trees = self.trees_dir();
        std::fs::create_dir_all(&trees)
            .map_err(|e| StoreError::io(format!("creating {}", trees.display()), e))?;
        // Trees share inodes with objects/: only root may reach them, so none is written in place.
        // chmod only when needed: it changes the directory's ctime even when the mode is the same,
        // a journalled write on every pod start.
        let mode = std::fs::metadata(&trees)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .map_err(|e| StoreError::io(format!("reading {}", trees.display()), e))?;
        if mode != 0o700 {
            std::fs::set_permissions(&trees, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| StoreError::io(format!("restricting {}", trees.display()), e))?;
        }
        let dir = self.tree_dir(id);
        let key = id.trim_start_matches("sha512-");
        let _lock =
            crate::lock::exclusive(&self.dir.join("locks").join(format!("tree-{key}.lock")))?;
        if dir.join(RENDERED_MARKER).exists() {
            self.touch(id)?;
            return Ok(dir);
        }
        let staged = trees.join(format!(".{key}.tmp-{}", std::process::id()));
        for stale in [&dir, &staged] {
            remove_dir_if_exists(stale)?;
        }
        if let Err(e) = self.render_image(id, &staged, false) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
        let linked = self.link_tree_objects(&staged.join("rootfs"), &self.merged_entries(id)?);
        tracing::debug!(
            image = id,
            ?linked,
            "rendered tree linked into the object cache"
        );
        std::fs::write(staged.join(RENDERED_MARKER), id)
            .map_err(|e| StoreError::io(format!("marking {} rendered", staged.display()), e))?;
        std::fs::rename(&staged, &dir)
            .map_err(|e| StoreError::io(format!("publishing {}", dir.display()), e))?;
        crate::pack::sync_dir(&trees)?;
        Ok(dir)
    }

    /// Remove rendered trees of images no longer in the store, and half-written ones.
    pub(crate) fn remove_stale_trees(
        &self,
        live: &std::collections::HashSet<String>,
    ) -> Result<u64> {
        let trees = self.trees_dir();
        let Ok(listing) = std::fs::read_dir(&trees) else {
            return Ok(0);
        };
        let mut removed = 0;
        for item in listing.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let complete = item.path().join(RENDERED_MARKER).exists();
            if name.starts_with('.') || !complete || !live.contains(&format!("sha512-{name}")) {
                remove_dir_if_exists(&item.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(format!("removing {}", dir.display()), e)),
    }
}
