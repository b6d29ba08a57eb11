//! The merged view of an image and its dependencies, straight from the index: what a pod's
//! rootfs contains, path by path, without reading any pack. Served by the lazy filesystem and
//! used to link rendered trees into the object cache.

use crate::entry::Entry;
use crate::error::Result;
use crate::render;
use crate::Store;

impl Store {
    /// Every path of the image's rootfs as a pod sees it (the image over its dependencies, with
    /// appc's layering and `pathWhitelist` rules, exactly as [`Store::render_image`] writes it).
    ///
    /// Order: parents before children, hard links last; a hard link's `link` names a regular
    /// file of the view.
    pub fn merged_entries(&self, id: &str) -> Result<Vec<Entry>> {
        let (merged, _) = self.with_layers(id, |layers, levels| {
            Ok(render::merge_with_levels(layers, Some(levels), true)?)
        })?;
        Ok(merged.into_iter().map(|(_, e)| e).collect())
    }
}
