//! The merged view of an image and its dependencies, straight from the index: what a pod's
//! rootfs contains, path by path, without reading any pack. Served by the lazy filesystem and
//! used to link rendered trees into the object cache.

use crate::entry::Entry;
use crate::error::Result;
use crate::render::{self, Layer};
use crate::Store;

impl Store {
    /// Every path of the image's rootfs as a pod sees it (the image over its dependencies, with
    /// appc's layering and `pathWhitelist` rules, exactly as [`Store::render_image`] writes it).
    ///
    /// Order: parents before children, hard links last; a hard link's `link` names a regular
    /// file of the view.
    pub fn merged_entries(&self, id: &str) -> Result<Vec<Entry>> {
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
        let merged = render::merge_with_levels(&layers, Some(&levels), true)?;
        Ok(merged.into_iter().map(|(_, e)| e).collect())
    }
}
