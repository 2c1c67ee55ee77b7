//! Targeted worker behaviour: cache hits, generations, counters, drops of
//! malformed frames, allocation-free steady state.

use super::*;
