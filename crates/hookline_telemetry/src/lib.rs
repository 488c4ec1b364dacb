//! hookline_telemetry
