//! appc schema types and validation (image and pod manifests).
