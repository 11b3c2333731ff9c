//! The built-in guest's checks, one file per area: page arrays and remaps
//! ([`map`]), BAR windows ([`bar`]), the page-fault path ([`fault_path`])
//! and lazy memory ([`lazy`]).

pub mod bar;
pub mod fault_path;
pub mod lazy;
pub mod map;
