//! What a pod's metadata service serves: [`PodMetadata`] (built by `rkt run` from the pod's
//! manifest and its images' manifests) and its validated, ready-to-serve form [`Pod`].

use std::collections::BTreeMap;

use rkt_store::schema::{Annotations, ImageManifest, PodManifest};
use serde_json::json;

use crate::error::{MetadataError, Result};
use crate::uuid::PodUuid;

/// Everything the metadata service tells the apps of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMetadata {
    /// The pod UUID (any case, dashes optional; served in canonical form).
    pub uuid: String,
    /// The pod manifest, served as is by `/pod/manifest`.
    pub pod_manifest: Vec<u8>,
    /// The pod's annotations, in order, served by `/pod/annotations`.
    pub pod_annotations: Vec<(String, String)>,
    /// The apps.
    pub apps: Vec<AppMetadata>,
}

/// What the metadata service tells about one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMetadata {
    /// The app's name in the pod (`AC_APP_NAME`).
    pub name: String,
    /// The image ID, `sha512-…`, served by `/apps/NAME/image/id`.
    pub image_id: String,
    /// The image manifest, served as is by `/apps/NAME/image/manifest`.
    pub image_manifest: Vec<u8>,
    /// The image's annotations merged with the pod manifest's annotations of the app (the
    /// pod's win), served by `/apps/NAME/annotations`.
    pub annotations: Vec<(String, String)>,
}

impl PodMetadata {
    /// Builds the metadata of a pod from its (fully reified) manifest: the UUID, the
    /// manifest's annotations, and for each app its image ID, that image's manifest (asked of
    /// `image_manifest`, e.g. `|id| store.manifest_bytes(id)`) and the merged annotations.
    pub fn from_manifests<F, E>(
        uuid: &str,
        pod_manifest: Vec<u8>,
        mut image_manifest: F,
    ) -> Result<PodMetadata>
    where
        F: FnMut(&str) -> std::result::Result<Vec<u8>, E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        PodUuid::parse(uuid)?;
        let pod = PodManifest::parse(&pod_manifest).map_err(MetadataError::PodManifest)?;
        let mut apps = Vec::with_capacity(pod.apps.len());
        for app in &pod.apps {
            let name = app.name.to_string();
            let image_id = app
                .image
                .id
                .as_ref()
                .ok_or_else(|| MetadataError::MissingImageId(name.clone()))?
                .to_string();
            let bytes =
                image_manifest(&image_id).map_err(|e| MetadataError::ImageManifestUnavailable {
                    app: name.clone(),
                    image_id: image_id.clone(),
                    source: e.into(),
                })?;
            let image =
                ImageManifest::parse(&bytes).map_err(|source| MetadataError::ImageManifest {
                    image_id: image_id.clone(),
                    source,
                })?;
            apps.push(AppMetadata {
                name,
                image_id,
                image_manifest: bytes,
                annotations: merge_annotations(&image.annotations, &app.annotations),
            });
        }
        Ok(PodMetadata {
            uuid: uuid.to_string(),
            pod_manifest,
            pod_annotations: pairs(&pod.annotations),
            apps,
        })
    }
}

fn pairs(a: &Annotations) -> Vec<(String, String)> {
    a.iter()
        .map(|a| (a.name.to_string(), a.value.clone()))
        .collect()
}

/// The image's annotations, each replaced in place by the pod's annotation of that name, then
/// the pod's other annotations appended (appc's `Annotations.Set`, as rkt merged them).
fn merge_annotations(image: &Annotations, pod_app: &Annotations) -> Vec<(String, String)> {
    let mut merged = pairs(image);
    for a in pod_app.iter() {
        match merged.iter_mut().find(|(n, _)| n == a.name.as_str()) {
            Some(slot) => slot.1 = a.value.clone(),
            None => merged.push((a.name.to_string(), a.value.clone())),
        }
    }
    merged
}

/// A pod's metadata, validated and with its JSON answers prepared.
#[derive(Debug)]
pub(crate) struct Pod {
    pub uuid: PodUuid,
    pub manifest: Vec<u8>,
    pub annotations: Annotated,
    pub apps: BTreeMap<String, App>,
}

/// One app, ready to serve.
#[derive(Debug)]
pub(crate) struct App {
    pub image_id: String,
    pub image_manifest: Vec<u8>,
    pub annotations: Annotated,
}

/// Annotations with their JSON list prepared.
#[derive(Debug)]
pub(crate) struct Annotated {
    pub list: Vec<(String, String)>,
    pub json: Vec<u8>,
}

impl Annotated {
    fn new(list: Vec<(String, String)>) -> Annotated {
        let array: Vec<_> = list
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect();
        let json = serde_json::Value::Array(array).to_string().into_bytes();
        Annotated { list, json }
    }

    /// The value of the annotation `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Pod {
    pub fn new(meta: PodMetadata) -> Result<Pod> {
        let uuid = PodUuid::parse(&meta.uuid)?;
        let mut apps = BTreeMap::new();
        for app in meta.apps {
            let ready = App {
                image_id: app.image_id,
                image_manifest: app.image_manifest,
                annotations: Annotated::new(app.annotations),
            };
            if apps.insert(app.name.clone(), ready).is_some() {
                return Err(MetadataError::DuplicateApp(app.name));
            }
        }
        Ok(Pod {
            uuid,
            manifest: meta.pod_manifest,
            annotations: Annotated::new(meta.pod_annotations),
            apps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE_ID: &str =
        "sha512-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const UUID: &str = "6733c3da-5c8f-4b7d-9b49-9a5f4b6b0c1e";

    fn pod_manifest(image: &str) -> Vec<u8> {
        json!({
            "acVersion": "0.8.11", "acKind": "PodManifest",
            "apps": [{"name": "web", "image": {"name": "example.com/web", "id": image},
                      "annotations": [{"name": "b", "value": "pod-b"}, {"name": "c", "value": "pod-c"}]}],
            "volumes": [], "isolators": [],
            "annotations": [{"name": "ip-address", "value": "10.1.2.3"}],
            "ports": []
        })
        .to_string()
        .into_bytes()
    }

    fn image_manifest() -> Vec<u8> {
        json!({
            "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/web",
            "annotations": [{"name": "a", "value": "img-a"}, {"name": "b", "value": "img-b"}]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn builds_from_manifests_merging_annotations() {
        let m = PodMetadata::from_manifests(UUID, pod_manifest(IMAGE_ID), |id| {
            assert_eq!(id, IMAGE_ID);
            Ok::<_, std::io::Error>(image_manifest())
        })
        .unwrap();
        assert_eq!(
            m.pod_annotations,
            vec![("ip-address".into(), "10.1.2.3".into())]
        );
        assert_eq!(m.apps.len(), 1);
        let app = &m.apps[0];
        assert_eq!(
            (app.name.as_str(), app.image_id.as_str()),
            ("web", IMAGE_ID)
        );
        assert_eq!(app.image_manifest, image_manifest());
        let want: Vec<(String, String)> = [("a", "img-a"), ("b", "pod-b"), ("c", "pod-c")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(app.annotations, want);
    }

    #[test]
    fn reports_what_is_missing() {
        let err = |r: Result<PodMetadata>| r.unwrap_err().to_string();
        let ok = |_: &str| Ok::<_, std::io::Error>(image_manifest());
        assert!(err(PodMetadata::from_manifests(
            "nope",
            pod_manifest(IMAGE_ID),
            ok
        ))
        .contains("invalid pod UUID"));
        assert!(err(PodMetadata::from_manifests(UUID, b"{".to_vec(), ok)).contains("pod manifest"));
        let missing = |_: &str| Err(std::io::Error::other("no such image in the store"));
        let e = err(PodMetadata::from_manifests(
            UUID,
            pod_manifest(IMAGE_ID),
            missing,
        ));
        assert!(
            e.contains("no such image in the store") && e.contains("\"web\""),
            "{e}"
        );
        let garbage = |_: &str| Ok::<_, std::io::Error>(b"[]".to_vec());
        assert!(err(PodMetadata::from_manifests(
            UUID,
            pod_manifest(IMAGE_ID),
            garbage
        ))
        .contains("image manifest of sha512-"));
    }

    #[test]
    fn pod_rejects_duplicate_apps() {
        let app = AppMetadata {
            name: "a".into(),
            image_id: IMAGE_ID.into(),
            image_manifest: vec![],
            annotations: vec![],
        };
        let meta = PodMetadata {
            uuid: UUID.into(),
            pod_manifest: vec![],
            pod_annotations: vec![],
            apps: vec![app.clone(), app],
        };
        assert!(matches!(
            Pod::new(meta),
            Err(MetadataError::DuplicateApp(_))
        ));
    }

    #[test]
    fn annotations_json_is_a_list_of_name_value_objects() {
        let a = Annotated::new(vec![("x".into(), "1\"".into())]);
        assert_eq!(
            String::from_utf8(a.json).unwrap(),
            r#"[{"name":"x","value":"1\""}]"#
        );
        assert_eq!(Annotated::new(vec![]).json, b"[]");
    }
}
