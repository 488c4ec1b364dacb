//! hookline_testkit
