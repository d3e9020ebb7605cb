//! The aws provider: boxes are EC2 instances, identified by tags.
//!
//! Takes a ready `aws_sdk_ec2::Client` (built once in the CLI from the
//! credential chain, profile, region and `AWS_ENDPOINT_URL`), so tests point
//! it at moto without any code path of their own.

pub mod failure;
mod images;
mod instances;
mod launch;
pub mod offboard;
mod queues;
mod reap;
mod root;
pub mod sdk;
pub mod secrets;
mod volumes;

pub use instances::{hibernation_refused, AwsProvider};
pub use launch::key_pair_name;
pub use reap::Stopped;
pub use sdk::ApiCalls;
