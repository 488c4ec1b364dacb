//! hookline_ingest
