//! Istanze OnLine's own part: the abilitazione al servizio. For now, the IdP's signed
//! enablement request and its checks; the abilitazione steps (domicile, phones,
//! document, recovery question, modulo di adesione, CPT, recognition) come next.

pub mod request;
