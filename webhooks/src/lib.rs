//! Webhook deliveries turned into build requests (shared/spec/webhooks.md),
//! as pure functions over a BuildConfig, the request's headers and its raw
//! body: which triggers a delivery addresses and whether its URL secret
//! matches one of them ([`trigger`]), the provider's own signature
//! ([`signature`]), the provider's payload read into a push ([`payload`]),
//! the branch check and the BuildRequest that pins the pushed commit
//! ([`request`]). No HTTP serving, no store: the API loads the config and
//! its Secrets, records the delivery and instantiates the build.

pub mod payload;
pub mod request;
pub mod signature;
pub mod trigger;

pub use payload::{parse, Event, Push, Revision};
pub use trigger::Provider;

/// Why a delivery is refused, with the HTTP status the API answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The same answer for "no such config", "no such trigger", "wrong
    /// secret" and "wrong signature": nothing is revealed.
    #[error("the webhook {provider:?} for {config:?} did not accept your secret")]
    Unauthorized { provider: String, config: String },
    #[error("{0}")]
    BadRequest(String),
}

impl HookError {
    pub fn code(&self) -> u16 {
        match self {
            HookError::Unauthorized { .. } => 401,
            HookError::BadRequest(_) => 400,
        }
    }
}
