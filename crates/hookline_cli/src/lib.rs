//! hookline_cli
