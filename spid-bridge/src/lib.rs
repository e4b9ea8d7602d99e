//! SAML 2.0 service provider towards the SPID identity providers. It knows nothing of
//! accounts: it hands idp-server a verified SPID identity. (Built by issue 6.)
