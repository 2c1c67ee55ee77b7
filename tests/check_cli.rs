//! End-to-end tests of `flowswitch check FILE`.
