//! SPID authentication levels and the comparison an AuthnRequest asks for.

use serde::{Deserialize, Serialize};

/// A SPID level of assurance; ordered L1 < L2 < L3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SpidLevel {
    L1,
    L2,
    L3,
}

impl SpidLevel {
    pub const ALL: [SpidLevel; 3] = [SpidLevel::L1, SpidLevel::L2, SpidLevel::L3];

    /// The AuthnContextClassRef URI (the https form; the old `urn:` form is refused).
    pub fn saml_class_ref(self) -> &'static str {
        match self {
            SpidLevel::L1 => "https://www.spid.gov.it/SpidL1",
            SpidLevel::L2 => "https://www.spid.gov.it/SpidL2",
            SpidLevel::L3 => "https://www.spid.gov.it/SpidL3",
        }
    }

    pub fn from_saml_class_ref(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.saml_class_ref() == s)
    }

    /// The same URI, used as the OIDC `acr`.
    pub fn acr(self) -> &'static str {
        self.saml_class_ref()
    }

    pub fn from_acr(s: &str) -> Option<Self> {
        Self::from_saml_class_ref(s)
    }

    /// ForceAuthn is required by SPID for levels above 1.
    pub fn force_authn(self) -> bool {
        self > SpidLevel::L1
    }
}

/// The RequestedAuthnContext comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    Exact,
    #[default]
    Minimum,
    Better,
    Maximum,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Exact => "exact",
            Comparison::Minimum => "minimum",
            Comparison::Better => "better",
            Comparison::Maximum => "maximum",
        }
    }

    /// Whether an assertion at level `got` satisfies a request for `requested`.
    pub fn accepts(self, requested: SpidLevel, got: SpidLevel) -> bool {
        match self {
            Comparison::Exact => got == requested,
            Comparison::Minimum => got >= requested,
            Comparison::Better => got > requested,
            Comparison::Maximum => got <= requested,
        }
    }
}
