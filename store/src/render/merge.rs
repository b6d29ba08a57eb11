//! The merged view of a list of layers: which entry wins for every path.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use crate::entry::{Entry, EntryKind};

use super::{Layer, RenderError};

/// Upper bound on hard-link chains inside one image (a -> b -> c ...).
const MAX_LINK_CHAIN: usize = 64;

/// The merged view of `layers` (upper-first, `layers[0]` being the image itself), as
/// [`merge_with_levels`] with the layers forming a chain (layer `i` at level `i`).
///
/// For a list produced by acirenderer's `createDepList` this selects the same whitelist as the
/// real dependency levels in every common case (the top image's whitelist, when it has one,
/// always wins); use [`merge_with_levels`] to pass the levels explicitly.
pub fn merge(
    layers: &[Layer<'_>],
    apply_whitelist: bool,
) -> Result<Vec<(usize, Entry)>, RenderError> {
    merge_with_levels(layers, None, apply_whitelist)
}

/// The merged view of `layers`: one `(layer index, entry)` per path of the rendered rootfs,
/// with the semantics described in the [module documentation](super).
///
/// `levels[i]` is the depth of `layers[i]` in the dependency tree (0 for the image itself), as
/// in acirenderer's `Images`; `None` means a chain (`levels[i] == i`). The whitelist applying to
/// a layer from above is chosen exactly like acirenderer's `getUpperPWLM`.
///
/// Output order: every entry except hard links in path order (parents before children,
/// compared component by component; the rootfs directory `""` first), then the hard links in
/// path order, so every hard link comes after its target. Hard links always point to a regular
/// file of the same layer that is part of the output; a hard link whose target does not survive
/// is turned into a copy of its target. Synthesised parent directories carry the index of the
/// layer whose entry required them. The rootfs directory `""` is always present.
pub fn merge_with_levels(
    layers: &[Layer<'_>],
    levels: Option<&[u16]>,
    apply_whitelist: bool,
) -> Result<Vec<(usize, Entry)>, RenderError> {
    if layers.is_empty() {
        return Err(RenderError::Usage("no layer to render".into()));
    }
    let levels: Vec<u16> = match levels {
        Some(l) if l.len() != layers.len() => {
            return Err(RenderError::Usage(format!(
                "{} levels given for {} layers",
                l.len(),
                layers.len()
            )))
        }
        Some(l) => l.to_vec(),
        None => (0..layers.len())
            .map(|i| u16::try_from(i).unwrap_or(u16::MAX))
            .collect(),
    };

    let whitelists: Vec<Option<HashSet<String>>> = layers
        .iter()
        .map(|l| {
            (!l.path_whitelist.is_empty()).then(|| {
                l.path_whitelist
                    .iter()
                    .map(|p| clean_whitelist_path(p))
                    .collect()
            })
        })
        .collect();

    let mut m = Merger {
        layers,
        provided: HashMap::new(),
        out: Vec::new(),
    };

    for (li, layer) in layers.iter().enumerate() {
        let own = if apply_whitelist {
            whitelists[li].as_ref()
        } else {
            None
        };
        let upper = if apply_whitelist {
            upper_whitelist(&levels, &whitelists, li).and_then(|j| whitelists[j].as_ref())
        } else {
            None
        };
        for e in layer.entries {
            m.add(li, e, own, upper)?;
        }
    }
    if !m.provided.contains_key("") {
        m.insert_implicit(0, "");
    }

    m.finish()
}

/// acirenderer's `getUpperPWLM`: walk back from `pos`, remembering each image with a whitelist
/// whose level is lower than the level of the image visited just before it; the last one found
/// (closest to the top of the list) wins.
pub(super) fn upper_whitelist(
    levels: &[u16],
    whitelists: &[Option<HashSet<String>>],
    pos: usize,
) -> Option<usize> {
    let mut found = None;
    let mut cur = levels[pos];
    for i in (0..=pos).rev() {
        if levels[i] < cur && whitelists[i].is_some() {
            found = Some(i);
        }
        cur = levels[i];
    }
    found
}

/// A whitelist path as a rootfs-relative path (`filepath.Join("rootfs", p)` in Go):
/// `/a/b/` becomes `a/b`, `/` becomes `""`, `.` and `..` are resolved lexically.
fn clean_whitelist_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Checks an index path: rootfs-relative, normalised, no NUL.
pub(super) fn check_rel_path(image: &str, path: &str) -> Result<(), RenderError> {
    if path.is_empty() {
        return Ok(());
    }
    let bad = path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(RenderError::Unsafe {
            image: image.to_string(),
            path: path.to_string(),
            reason: "not a normalised rootfs-relative path".into(),
        });
    }
    Ok(())
}

/// Proper ancestors of a rootfs-relative path, nearest first, without `""`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = path;
    std::iter::from_fn(move || {
        let i = cur.rfind('/')?;
        cur = &cur[..i];
        Some(cur)
    })
}

/// Compares paths component by component, so that a directory sorts right before its contents.
pub(super) fn path_cmp(a: &str, b: &str) -> Ordering {
    if a.is_empty() || b.is_empty() {
        return (!a.is_empty()).cmp(&!b.is_empty());
    }
    a.split('/').cmp(b.split('/'))
}

struct Slot {
    layer: usize,
    kind: EntryKind,
    implicit: bool,
    out: usize,
}

struct Merger<'l, 'a> {
    layers: &'l [Layer<'a>],
    provided: HashMap<String, Slot>,
    out: Vec<(usize, Entry)>,
}

impl Merger<'_, '_> {
    fn unsafe_err(&self, li: usize, path: &str, reason: String) -> RenderError {
        RenderError::Unsafe {
            image: self.layers[li].image_id.clone(),
            path: path.to_string(),
            reason,
        }
    }

    fn add(
        &mut self,
        li: usize,
        e: &Entry,
        own: Option<&HashSet<String>>,
        upper: Option<&HashSet<String>>,
    ) -> Result<(), RenderError> {
        let image = &self.layers[li].image_id;
        check_rel_path(image, &e.path)?;

        if e.path.is_empty() {
            if e.kind != EntryKind::Dir {
                return Err(RenderError::Invalid {
                    image: image.clone(),
                    path: String::new(),
                    reason: "the rootfs is not a directory".into(),
                });
            }
            // The rootfs directory is never filtered; first real entry wins.
            match self.provided.get_mut("") {
                None => self.insert(li, e.clone(), false),
                Some(slot) if slot.implicit => {
                    slot.implicit = false;
                    slot.layer = li;
                    self.out[slot.out] = (li, e.clone());
                }
                Some(_) => {}
            }
            return Ok(());
        }

        if let Some(wl) = own {
            if e.kind != EntryKind::Dir && !wl.contains(&e.path) {
                tracing::trace!(path = %e.path, layer = li, "not in the image's pathWhitelist");
                return Ok(());
            }
        }
        if let Some(wl) = upper {
            if !wl.contains(&e.path) {
                tracing::trace!(path = %e.path, layer = li, "not in the upper pathWhitelist");
                return Ok(());
            }
        }

        if let Some(slot) = self.provided.get_mut(&e.path) {
            if !slot.implicit {
                tracing::trace!(path = %e.path, layer = li, by = slot.layer, "shadowed");
                return Ok(());
            }
            if e.kind == EntryKind::Dir {
                // A real directory entry replaces a synthesised one.
                slot.implicit = false;
                slot.layer = li;
                self.out[slot.out] = (li, e.clone());
                return Ok(());
            }
            if slot.layer == li {
                let reason = format!(
                    "{:?} is used as a directory by other entries of the same image",
                    e.kind
                );
                return Err(self.unsafe_err(li, &e.path, reason));
            }
            tracing::trace!(path = %e.path, layer = li, "shadowed by an upper directory");
            return Ok(());
        }

        for anc in ancestors(&e.path) {
            if let Some(slot) = self.provided.get(anc) {
                if slot.kind != EntryKind::Dir {
                    if slot.layer < li {
                        tracing::trace!(path = %e.path, layer = li, parent = anc,
                            "parent shadowed by an upper non-directory");
                        return Ok(());
                    }
                    let reason = format!("parent {anc:?} is a {:?}, not a directory", slot.kind);
                    return Err(self.unsafe_err(li, &e.path, reason));
                }
            }
        }

        self.insert(li, e.clone(), false);
        let missing: Vec<String> = ancestors(&e.path)
            .chain(std::iter::once(""))
            .filter(|a| !self.provided.contains_key(*a))
            .map(str::to_string)
            .collect();
        for a in missing {
            self.insert_implicit(li, &a);
        }
        Ok(())
    }

    fn insert(&mut self, li: usize, e: Entry, implicit: bool) {
        let slot = Slot {
            layer: li,
            kind: e.kind,
            implicit,
            out: self.out.len(),
        };
        self.provided.insert(e.path.clone(), slot);
        self.out.push((li, e));
    }

    fn insert_implicit(&mut self, li: usize, path: &str) {
        let e = Entry::implied_dir(path);
        self.insert(li, e, true);
    }

    /// Resolves hard links, then sorts.
    fn finish(mut self) -> Result<Vec<(usize, Entry)>, RenderError> {
        let mut by_path: Vec<Option<HashMap<&str, &Entry>>> = vec![None; self.layers.len()];
        for idx in 0..self.out.len() {
            let (li, ref e) = self.out[idx];
            if e.kind != EntryKind::HardLink {
                continue;
            }
            let layer = &self.layers[li];
            let index = by_path[li].get_or_insert_with(|| {
                let mut m = HashMap::new();
                for x in layer.entries {
                    m.entry(x.path.as_str()).or_insert(x);
                }
                m
            });
            let target = resolve_hard_link(&layer.image_id, index, e)?;
            let keep = target.kind == EntryKind::File
                && self
                    .provided
                    .get(&target.path)
                    .is_some_and(|s| !s.implicit && s.layer == li && s.kind == EntryKind::File);
            let new = if keep {
                Entry {
                    link: Some(target.path.clone()),
                    ..e.clone()
                }
            } else {
                tracing::debug!(path = %e.path, target = %target.path, layer = li,
                    "hard link target not rendered from this image: copying it");
                Entry {
                    path: e.path.clone(),
                    ..target.clone()
                }
            };
            self.out[idx].1 = new;
        }

        let mut out = self.out;
        out.sort_by(|(_, a), (_, b)| {
            let ha = a.kind == EntryKind::HardLink;
            let hb = b.kind == EntryKind::HardLink;
            ha.cmp(&hb).then_with(|| path_cmp(&a.path, &b.path))
        });
        Ok(out)
    }
}

/// Follows a hard link (and chains of them) within its own image to a non-link entry.
fn resolve_hard_link<'e>(
    image: &str,
    index: &HashMap<&str, &'e Entry>,
    link: &Entry,
) -> Result<&'e Entry, RenderError> {
    let invalid = |reason: String| RenderError::Invalid {
        image: image.to_string(),
        path: link.path.clone(),
        reason,
    };
    let mut target = link
        .link
        .as_deref()
        .ok_or_else(|| invalid("hard link without a target".into()))?;
    for _ in 0..MAX_LINK_CHAIN {
        check_rel_path(image, target)?;
        let t = index
            .get(target)
            .ok_or_else(|| invalid(format!("hard link target {target:?} not in the image")))?;
        match t.kind {
            EntryKind::HardLink => {
                target = t
                    .link
                    .as_deref()
                    .ok_or_else(|| invalid(format!("hard link {target:?} without a target")))?;
            }
            EntryKind::Dir => {
                return Err(invalid(format!("hard link to directory {target:?}")));
            }
            _ => return Ok(t),
        }
    }
    Err(invalid("hard link chain too long or looping".into()))
}
