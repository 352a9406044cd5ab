//! Metadata records, the metadata log and the in-memory image.
