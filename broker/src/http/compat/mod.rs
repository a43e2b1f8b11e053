//! Faces of the systems Sluice replaces, over the same broker calls as the native API
//! (../shared/SEEDS.md). Each face owns its wire format and its own error table.

pub mod jetstream;
pub mod stableconfigs;
pub mod stand;
pub mod workflow_service;
pub mod wumai;
