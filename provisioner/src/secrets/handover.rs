//! What a laptop hands a local box: the values of the manifest's secret
//! references, and why each other one is missing (boxside/held.rs keeps
//! it in memory on the box).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Values by reference as the manifest writes it; for each reference the
/// laptop could not resolve, why (never a value).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    pub values: BTreeMap<String, String>,
    pub missing: BTreeMap<String, String>,
}
