//! Group coordinator (being written).
