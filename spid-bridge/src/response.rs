//! Strict validation of a SPID Response: a pipeline of named checks, each refusing with
//! its own reason. xmlsec (through samael) verifies the signatures with the IdP's
//! metadata certificates only and reduces the document to its signed part; everything
//! about the assertion is read from that reduced document.

use chrono::{DateTime, Duration, Utc};
use roxmltree::{Document, Node};
use samael::crypto::{CertificateDer, CryptoProvider, ReduceMode, XmlSec};

use crate::authn::PendingRequest;
use crate::registry::IdentityProvider;
use crate::xml::{
    self, ALLOWED_DIGEST_METHODS, ALLOWED_SIGNATURE_METHODS, ALLOWED_TRANSFORMS, CM_BEARER,
    NAMEID_ENTITY, NAMEID_TRANSIENT, NS_ASSERTION, NS_DSIG, NS_PROTOCOL, STATUS_SUCCESS, child,
    children, text,
};
use crate::{IdpRegistry, Rejection, SpConfig, SpidLevel};

type Check<T = ()> = Result<T, Rejection>;

fn reject(reason: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection::new(reason, detail)
}

/// Parses a received document: DTDs (and so external entities) are refused.
pub fn parse_document(xml: &str) -> Check<Document<'_>> {
    xml::parse(xml).map_err(|e| match e {
        roxmltree::Error::DtdDetected => reject("dtd_forbidden", "the document has a DTD"),
        e => reject("malformed", format!("not well-formed XML: {e}")),
    })
}

/// What the first pass, before any signature is verified, finds: the IdP the Response
/// names as its Issuer (whose certificates will verify it).
pub struct Envelope<'a> {
    pub idp: &'a IdentityProvider,
}

/// Checks done on the whole document before any signature is verified: shape, status,
/// issuer, and where the signatures are (against XML signature wrapping).
pub fn check_envelope<'r>(doc: &Document, registry: &'r IdpRegistry) -> Check<Envelope<'r>> {
    let root = doc.root_element();
    if !root.has_tag_name((NS_PROTOCOL, "Response")) {
        return Err(reject("malformed", "the root is not a samlp:Response"));
    }
    check_single_response_and_assertion(doc)?;
    if root.attribute("Version") != Some("2.0") {
        return Err(reject("version", "Response Version is not 2.0"));
    }
    if root.attribute("ID").is_none_or(|v| v.trim().is_empty()) {
        return Err(reject("malformed", "Response without ID"));
    }
    check_status(root)?;
    let idp = check_response_issuer(root, registry)?;
    let assertion = child(root, NS_ASSERTION, "Assertion")
        .ok_or_else(|| reject("malformed", "no Assertion in the Response"))?;
    if assertion
        .attribute("ID")
        .is_none_or(|v| v.trim().is_empty())
    {
        return Err(reject("malformed", "Assertion without ID"));
    }
    check_signature_placement(doc, root, assertion)?;
    Ok(Envelope { idp })
}

fn count_local(doc: &Document, name: &str) -> usize {
    doc.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == name)
        .count()
}

/// One Response, at most one Assertion, no encrypted assertions, in any namespace.
fn check_single_response_and_assertion(doc: &Document) -> Check {
    if count_local(doc, "Response") != 1 {
        return Err(reject(
            "signature_wrapping",
            "more than one Response element",
        ));
    }
    if count_local(doc, "Assertion") > 1 {
        return Err(reject(
            "signature_wrapping",
            "more than one Assertion element",
        ));
    }
    if count_local(doc, "EncryptedAssertion") > 0 {
        return Err(reject(
            "malformed",
            "EncryptedAssertion is not used by SPID",
        ));
    }
    Ok(())
}

fn check_status(root: Node) -> Check {
    let status =
        child(root, NS_PROTOCOL, "Status").ok_or_else(|| reject("malformed", "no Status"))?;
    let code = child(status, NS_PROTOCOL, "StatusCode")
        .and_then(|c| c.attribute("Value"))
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| reject("malformed", "no StatusCode"))?;
    if code == STATUS_SUCCESS {
        return Ok(());
    }
    let message = child(status, NS_PROTOCOL, "StatusMessage")
        .map(text)
        .unwrap_or_default();
    let anomaly = anomaly_code(&message);
    let mut r = reject(
        "status_not_success",
        format!(
            "status {code}, message {message:?}, anomaly {}",
            anomaly.map_or("none".into(), |a| a.to_string())
        ),
    );
    r.message_it = anomaly_message_it(anomaly).to_string();
    Err(r)
}

/// "ErrorCode nr19" → 19.
pub fn anomaly_code(message: &str) -> Option<u32> {
    let i = message.find("nr")?;
    let digits: String = message[i + 2..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The AgID-prescribed messages for the user anomalies.
pub fn anomaly_message_it(code: Option<u32>) -> &'static str {
    match code {
        Some(19) => {
            "Autenticazione SPID non riuscita: hai inserito più volte credenziali errate. Attendi e riprova, oppure recupera le credenziali presso il tuo gestore SPID."
        }
        Some(20) => {
            "Autenticazione SPID non riuscita: la tua identità digitale non ha credenziali adatte al livello di sicurezza richiesto dal servizio."
        }
        Some(21) => "Autenticazione SPID non riuscita: il tempo a disposizione è scaduto. Riprova.",
        Some(22) => {
            "Hai negato il consenso all'invio dei dati al servizio: l'accesso con SPID non è stato completato."
        }
        Some(23) => {
            "La tua identità SPID risulta sospesa o revocata. Rivolgiti al tuo gestore dell'identità digitale."
        }
        Some(25) => "Hai annullato l'accesso con SPID.",
        Some(30) => {
            "L'identità digitale usata non è del tipo richiesto dal servizio. Accedi con un'altra identità SPID."
        }
        _ => "Il gestore dell'identità SPID non ha completato l'autenticazione. Riprova.",
    }
}

fn check_response_issuer<'r>(root: Node, registry: &'r IdpRegistry) -> Check<&'r IdentityProvider> {
    let issuer = child(root, NS_ASSERTION, "Issuer")
        .ok_or_else(|| reject("unknown_issuer", "Response without Issuer"))?;
    if let Some(f) = issuer.attribute("Format").filter(|f| *f != NAMEID_ENTITY) {
        return Err(reject(
            "issuer_format",
            format!("Response Issuer Format {f}"),
        ));
    }
    let name = text(issuer);
    registry
        .get(&name)
        .ok_or_else(|| reject("unknown_issuer", format!("unknown IdP {name:?}")))
}

/// Every ds:Signature must be a direct child of the Response or of its Assertion, sign
/// exactly its parent (Reference URI = "#" + the parent's ID), and use allowed
/// algorithms and transforms. The Assertion must be signed.
fn check_signature_placement(doc: &Document, root: Node, assertion: Node) -> Check {
    let mut assertion_signed = false;
    for sig in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "Signature")
    {
        if sig.tag_name().namespace() != Some(NS_DSIG) {
            return Err(reject(
                "signature_wrapping",
                "a Signature outside the XML-DSig namespace",
            ));
        }
        let parent = sig
            .parent_element()
            .ok_or_else(|| reject("malformed", "orphan Signature"))?;
        if parent != root && parent != assertion {
            return Err(reject(
                "signature_wrapping",
                "a Signature in an unexpected place",
            ));
        }
        let signed_info = child(sig, NS_DSIG, "SignedInfo")
            .ok_or_else(|| reject("bad_signature", "Signature without SignedInfo"))?;
        let method = child(signed_info, NS_DSIG, "SignatureMethod")
            .and_then(|m| m.attribute("Algorithm"))
            .unwrap_or_default();
        if !ALLOWED_SIGNATURE_METHODS.contains(&method) {
            return Err(reject(
                "signature_algorithm",
                format!("SignatureMethod {method}"),
            ));
        }
        let refs: Vec<_> = children(signed_info, NS_DSIG, "Reference").collect();
        let [reference] = refs.as_slice() else {
            return Err(reject(
                "signature_wrapping",
                "a Signature must have exactly one Reference",
            ));
        };
        let expected = format!("#{}", parent.attribute("ID").unwrap_or_default());
        if reference.attribute("URI") != Some(expected.as_str()) {
            return Err(reject(
                "signature_wrapping",
                "a Signature does not reference its parent",
            ));
        }
        let digest = child(*reference, NS_DSIG, "DigestMethod")
            .and_then(|m| m.attribute("Algorithm"))
            .unwrap_or_default();
        if !ALLOWED_DIGEST_METHODS.contains(&digest) {
            return Err(reject(
                "signature_algorithm",
                format!("DigestMethod {digest}"),
            ));
        }
        if let Some(transforms) = child(*reference, NS_DSIG, "Transforms") {
            for t in transforms.children().filter(|c| c.is_element()) {
                let alg = t.attribute("Algorithm").unwrap_or_default();
                if !t.has_tag_name((NS_DSIG, "Transform")) || !ALLOWED_TRANSFORMS.contains(&alg) {
                    return Err(reject("signature_algorithm", format!("Transform {alg}")));
                }
            }
        }
        if parent == assertion {
            assertion_signed = true;
        }
    }
    if !assertion_signed {
        return Err(reject("unsigned_assertion", "the Assertion is not signed"));
    }
    Ok(())
}

/// Verifies every signature with the IdP's metadata certificates and returns the
/// document reduced to what they cover.
pub fn verify_and_reduce(xml: &str, idp: &IdentityProvider) -> Check<String> {
    verify_and_reduce_with(xml, &idp.signing_certs)
}

pub fn verify_and_reduce_with(xml: &str, certs_der: &[Vec<u8>]) -> Check<String> {
    let certs: Vec<CertificateDer> = certs_der
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    if certs.is_empty() {
        return Err(reject("bad_signature", "no signing certificate"));
    }
    let allowed = xml::samael_allowed();
    XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(&allowed),
    )
    .map_err(|e| {
        reject(
            "bad_signature",
            format!("signature verification failed: {e}"),
        )
    })
}

/// The facts of a verified assertion.
pub struct VerifiedAssertion {
    pub assertion_id: String,
    pub name_id: String,
    pub name_id_qualifier: Option<String>,
    pub session_index: Option<String>,
    pub level: SpidLevel,
    pub attributes: Vec<(String, String)>,
    pub not_on_or_after: DateTime<Utc>,
}

/// The checks on the signed part, given the request it answers.
pub struct SignedChecks<'a> {
    pub config: &'a SpConfig,
    pub idp: &'a IdentityProvider,
    pub now: DateTime<Utc>,
}

impl SignedChecks<'_> {
    fn skew(&self) -> Duration {
        Duration::seconds(i64::try_from(self.config.clock_skew_secs).unwrap_or(i64::MAX / 1000))
    }

    /// Response-level checks (on the signed Response when it is signed).
    pub fn response(&self, response: Node, pending: &PendingRequest) -> Check {
        let dest = response.attribute("Destination").unwrap_or_default();
        if dest != self.config.acs_url {
            return Err(reject("destination", format!("Destination {dest:?}")));
        }
        if response.attribute("InResponseTo") != Some(pending.id.as_str()) {
            return Err(reject(
                "unknown_in_response_to",
                "Response InResponseTo differs",
            ));
        }
        self.issue_instant(response.attribute("IssueInstant"), pending, "Response")
    }

    fn issue_instant(&self, v: Option<&str>, pending: &PendingRequest, what: &str) -> Check {
        let t = v.and_then(xml::parse_instant).ok_or_else(|| {
            reject(
                "issue_instant",
                format!("{what} IssueInstant missing or malformed"),
            )
        })?;
        if t < pending.issue_instant - self.skew() {
            return Err(reject(
                "issue_instant",
                format!("{what} IssueInstant before the request"),
            ));
        }
        if t > self.now + self.skew() {
            return Err(reject(
                "issue_instant",
                format!("{what} IssueInstant in the future"),
            ));
        }
        Ok(())
    }

    pub fn assertion(&self, a: Node, pending: &PendingRequest) -> Check<VerifiedAssertion> {
        if a.attribute("Version") != Some("2.0") {
            return Err(reject("version", "Assertion Version is not 2.0"));
        }
        self.issue_instant(a.attribute("IssueInstant"), pending, "Assertion")?;
        self.assertion_issuer(a)?;
        let subject = child(a, NS_ASSERTION, "Subject")
            .ok_or_else(|| reject("name_id", "Assertion without Subject"))?;
        let (name_id, name_id_qualifier) = self.name_id(subject)?;
        self.subject_confirmation(subject, pending)?;
        let not_on_or_after = self.conditions(a)?;
        let (level, session_index) = self.authn_statement(a, pending)?;
        let attributes = self.attributes(a)?;
        Ok(VerifiedAssertion {
            assertion_id: a.attribute("ID").unwrap_or_default().to_string(),
            name_id,
            name_id_qualifier,
            session_index,
            level,
            attributes,
            not_on_or_after,
        })
    }

    fn assertion_issuer(&self, a: Node) -> Check {
        let issuer = child(a, NS_ASSERTION, "Issuer")
            .ok_or_else(|| reject("unknown_issuer", "Assertion without Issuer"))?;
        if text(issuer) != self.idp.entity_id {
            return Err(reject("unknown_issuer", "Assertion Issuer is not the IdP"));
        }
        if issuer.attribute("Format") != Some(NAMEID_ENTITY) {
            return Err(reject(
                "issuer_format",
                "Assertion Issuer Format missing or not entity",
            ));
        }
        Ok(())
    }

    fn name_id(&self, subject: Node) -> Check<(String, Option<String>)> {
        let n =
            child(subject, NS_ASSERTION, "NameID").ok_or_else(|| reject("name_id", "no NameID"))?;
        let value = text(n);
        if value.is_empty() {
            return Err(reject("name_id", "empty NameID"));
        }
        if n.attribute("Format") != Some(NAMEID_TRANSIENT) {
            return Err(reject("name_id", "NameID Format is not transient"));
        }
        let q = n
            .attribute("NameQualifier")
            .filter(|q| !q.trim().is_empty());
        if q.is_none() {
            return Err(reject("name_id", "NameID without NameQualifier"));
        }
        Ok((value, q.map(str::to_string)))
    }

    fn subject_confirmation(&self, subject: Node, pending: &PendingRequest) -> Check {
        let sc = child(subject, NS_ASSERTION, "SubjectConfirmation")
            .ok_or_else(|| reject("subject_confirmation", "no SubjectConfirmation"))?;
        if sc.attribute("Method") != Some(CM_BEARER) {
            return Err(reject(
                "subject_confirmation",
                "SubjectConfirmation Method is not bearer",
            ));
        }
        let data = child(sc, NS_ASSERTION, "SubjectConfirmationData")
            .ok_or_else(|| reject("subject_confirmation", "no SubjectConfirmationData"))?;
        if data.attribute("Recipient") != Some(self.config.acs_url.as_str()) {
            return Err(reject("recipient", "Recipient is not our ACS"));
        }
        if data.attribute("InResponseTo") != Some(pending.id.as_str()) {
            return Err(reject(
                "unknown_in_response_to",
                "SubjectConfirmationData InResponseTo differs",
            ));
        }
        let t = data
            .attribute("NotOnOrAfter")
            .and_then(xml::parse_instant)
            .ok_or_else(|| {
                reject(
                    "expired",
                    "SubjectConfirmationData NotOnOrAfter missing or malformed",
                )
            })?;
        if t + self.skew() <= self.now {
            return Err(reject(
                "expired",
                "SubjectConfirmationData NotOnOrAfter has passed",
            ));
        }
        Ok(())
    }

    fn conditions(&self, a: Node) -> Check<DateTime<Utc>> {
        let c = child(a, NS_ASSERTION, "Conditions")
            .ok_or_else(|| reject("conditions", "Assertion without Conditions"))?;
        let not_before = c
            .attribute("NotBefore")
            .and_then(xml::parse_instant)
            .ok_or_else(|| reject("not_yet_valid", "NotBefore missing or malformed"))?;
        if not_before > self.now + self.skew() {
            return Err(reject("not_yet_valid", "NotBefore is in the future"));
        }
        let not_after = c
            .attribute("NotOnOrAfter")
            .and_then(xml::parse_instant)
            .ok_or_else(|| reject("expired", "NotOnOrAfter missing or malformed"))?;
        if not_after + self.skew() <= self.now {
            return Err(reject("expired", "NotOnOrAfter has passed"));
        }
        let ar = child(c, NS_ASSERTION, "AudienceRestriction")
            .ok_or_else(|| reject("audience", "no AudienceRestriction"))?;
        let audiences: Vec<String> = children(ar, NS_ASSERTION, "Audience").map(text).collect();
        if audiences.is_empty() || audiences.iter().any(|x| x != &self.config.entity_id) {
            return Err(reject("audience", format!("Audience {audiences:?}")));
        }
        Ok(not_after)
    }

    fn authn_statement(
        &self,
        a: Node,
        pending: &PendingRequest,
    ) -> Check<(SpidLevel, Option<String>)> {
        let st = child(a, NS_ASSERTION, "AuthnStatement")
            .ok_or_else(|| reject("authn_context", "no AuthnStatement"))?;
        let class_ref = child(st, NS_ASSERTION, "AuthnContext")
            .and_then(|c| child(c, NS_ASSERTION, "AuthnContextClassRef"))
            .map(text)
            .ok_or_else(|| reject("authn_context", "no AuthnContextClassRef"))?;
        let level = SpidLevel::from_saml_class_ref(&class_ref).ok_or_else(|| {
            reject(
                "authn_context",
                format!("AuthnContextClassRef {class_ref:?}"),
            )
        })?;
        if !self.config.comparison.accepts(pending.level, level) {
            let reason = if level < pending.level {
                "level_too_low"
            } else {
                "authn_context"
            };
            let mut r = reject(
                reason,
                format!(
                    "{level:?} does not satisfy {:?} {:?}",
                    self.config.comparison, pending.level
                ),
            );
            if level < pending.level {
                r.message_it = "Il gestore SPID ha autenticato la persona con un livello di sicurezza inferiore a quello richiesto dal servizio.".into();
            }
            return Err(r);
        }
        Ok((level, st.attribute("SessionIndex").map(str::to_string)))
    }

    fn attributes(&self, a: Node) -> Check<Vec<(String, String)>> {
        let st = child(a, NS_ASSERTION, "AttributeStatement")
            .ok_or_else(|| reject("missing_attribute", "no AttributeStatement"))?;
        let mut out = Vec::new();
        for attr in children(st, NS_ASSERTION, "Attribute") {
            let name = attr
                .attribute("Name")
                .unwrap_or_default()
                .trim()
                .to_string();
            let value = child(attr, NS_ASSERTION, "AttributeValue")
                .map(text)
                .unwrap_or_default();
            if name.is_empty() || value.is_empty() {
                return Err(reject(
                    "missing_attribute",
                    format!("attribute {name:?} without a value"),
                ));
            }
            out.push((name, value));
        }
        if out.is_empty() {
            return Err(reject(
                "missing_attribute",
                "AttributeStatement without attributes",
            ));
        }
        Ok(out)
    }
}

/// "TINIT-RSSMRA80A01H501U" → "RSSMRA80A01H501U".
pub fn fiscal_number(v: &str) -> Option<String> {
    let code = v.trim().strip_prefix("TINIT-")?.to_ascii_uppercase();
    (code.len() == 16 && code.chars().all(|c| c.is_ascii_alphanumeric())).then_some(code)
}
