//! Rendering an image (and its dependencies) into a directory tree.
