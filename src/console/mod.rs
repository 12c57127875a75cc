//! The support console: server-rendered pages under `/console/` that
//! answer "did this customer get it, and if not, why".

pub mod timeline;
pub mod verdict;
