//! SAML 2.0 service provider towards the SPID identity providers. It knows nothing of
//! accounts: it hands idp-server a verified SPID identity. The public API is the
//! contract in `CONTRACT.md`; `test_idp` is the local SPID test IdP.

mod error;
mod level;
mod registry;
mod sp;
mod state;
pub mod test_idp;

pub use error::{Error, Rejection};
pub use level::{Comparison, SpidLevel};
pub use registry::{IdentityProvider, IdpRegistry};
pub use sp::{
    Binding, OutgoingMessage, SamlMessage, ServiceProvider, SpConfig, SpidIdentity, SpidLogin,
    SpidSession, SpidSessionRef,
};
pub use state::{SamlState, StateError};
