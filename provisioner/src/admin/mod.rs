//! The platform team's verbs on other people's boxes.

pub mod offboard;
