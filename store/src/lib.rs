//! rkt's image store: appc schema types, a content-defined chunk store indexed in SQLite,
//! exact ACI import and export, rendering, verification and garbage collection.

pub mod entry;
pub mod schema;
pub mod tarstream;
pub mod render;
