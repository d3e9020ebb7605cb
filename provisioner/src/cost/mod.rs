//! `workstation cost`: what boxes cost in dollars, billed (Cost Explorer,
//! by the owner and name tags) and estimated (each box's hours, priced by
//! the Price List API), with what stopping idle boxes saved.

pub mod billed;
mod error;
pub mod prices;
pub mod report;

pub use error::CostError;
