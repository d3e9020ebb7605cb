//! Third-party callbacks fanned out: one endpoint per account (a Lambda
//! function URL, terraform/webhooks.tf) receives each callback and sends
//! it, byte for byte, to every running preview and team box at the path
//! the manifest's `[webhooks]` names; each box decides whether the event
//! is its own. One attempt per box, each bounded by a timeout, all at
//! once: a slow or unreachable box never delays the others, and nothing
//! is retried (the provider's own retry is the only one).

mod event;
mod fanout;
mod handle;
mod targets;

pub use event::{Callback, FunctionUrlRequest, FunctionUrlResponse};
pub use fanout::{deliver, Delivery, Target, TIMEOUT};
pub use handle::{handle, Handled};
pub use targets::targets;
