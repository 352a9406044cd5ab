//! Segmented partition logs: segments, indexes, recovery.
