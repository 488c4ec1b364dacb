//! hookline_queue
