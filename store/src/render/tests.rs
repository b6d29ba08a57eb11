//! Render tests (filled in below).
