//! hookline_db
