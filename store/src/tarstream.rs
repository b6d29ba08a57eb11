//! Raw tar stream parser that splits an archive into skeleton bytes and file content.
