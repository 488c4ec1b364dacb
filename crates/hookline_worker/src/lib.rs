//! hookline_worker
