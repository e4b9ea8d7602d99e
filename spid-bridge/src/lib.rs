//! SAML 2.0 service provider towards the SPID identity providers. It knows nothing of
//! accounts: it hands idp-server a verified SPID identity. The public API is the
//! contract in `CONTRACT.md`; `test_idp` is the local SPID test IdP.

mod authn;
mod binding;
mod error;
mod level;
mod metadata;
mod registry;
mod response;
mod slo;
mod sp;
mod state;
pub mod test_idp;
mod xml;

pub use error::{Error, Rejection};
pub use level::{Comparison, SpidLevel};
pub use registry::{IdentityProvider, IdpRegistry};
pub use sp::{
    Binding, OutgoingMessage, SamlMessage, ServiceProvider, SpConfig, SpidIdentity, SpidLogin,
    SpidSession, SpidSessionRef,
};
pub use state::{MemoryState, SamlState, StateError};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_flow;
