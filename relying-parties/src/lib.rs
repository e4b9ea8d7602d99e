//! The three linked school services (Istanze OnLine, Pago in rete, the governance
//! portal) as real OpenID Connect clients of the IdP. (Built by issue 5.)
