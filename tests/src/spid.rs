//! Driving a browser through SPID in the end-to-end tests: the "Entra con SPID" link,
//! the local SPID test IdP's page (choose a test identity), the auto-posted SAML
//! messages both ways, and a LogoutRequest signed as the test IdP signs it.

use crate::harness::{Browser, Page, TestIdp, certs_dev};

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Undoes askama's HTML escaping of attribute values.
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x3d;", "=")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#34;", "\"")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
        .replace("&#x22;", "\"")
        .replace("&#43;", "+")
        .replace("&#x2b;", "+")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in the tag that starts at `tag`.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let end = tag.find('>')?;
    let tag = &tag[..end];
    for quote in ['"', '\''] {
        let marker = format!(" {name}={quote}");
        if let Some(start) = tag.find(&marker) {
            let start = start + marker.len();
            let stop = tag[start..].find(quote)? + start;
            return Some(unescape(&tag[start..stop]));
        }
    }
    None
}

/// A form of a page: its action, method and every named input with its value.
pub struct HtmlForm {
    pub action: String,
    pub method: String,
    pub fields: Vec<(String, String)>,
}

pub fn forms(body: &str) -> Vec<HtmlForm> {
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find("<form") {
        let form = &rest[at..];
        let close = form.find("</form>").unwrap_or(form.len());
        let inner = &form[..close];
        let mut fields = Vec::new();
        let mut r = inner;
        while let Some(i) = r.find("<input") {
            let tag = &r[i..];
            if let Some(name) = attr(tag, "name") {
                let kind = attr(tag, "type").unwrap_or_default();
                let checked = tag[..tag.find('>').unwrap_or(tag.len())].contains(" checked");
                if kind != "radio" || checked {
                    fields.push((name, attr(tag, "value").unwrap_or_default()));
                }
            }
            r = &tag[6..];
        }
        found.push(HtmlForm {
            action: attr(form, "action").unwrap_or_default(),
            method: attr(form, "method").unwrap_or_else(|| "get".into()),
            fields,
        });
        rest = &form[close.min(form.len())..];
        if close == form.len() {
            break;
        }
    }
    found
}

/// Resolves a link or form action against the page it is on.
pub fn absolute(base: &str, href: &str) -> String {
    url::Url::parse(base)
        .and_then(|b| b.join(href))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| href.to_string())
}

/// A response as the browser sees it, without following.
pub struct Hop {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub url: String,
}

pub async fn hop(request: reqwest::RequestBuilder, url: &str) -> Hop {
    let r = request.send().await.expect("request");
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(|l| absolute(url, l));
    let body = r.text().await.unwrap_or_default();
    Hop {
        status,
        location,
        body,
        url: url.to_string(),
    }
}

/// Follows redirects (GET) and auto-submitted SAML forms across the IdP and the test
/// IdP, until a redirect leaves both (to the client) or a page that is not a SAML
/// auto-post form. `choose` picks an identity on the test IdP's page.
pub async fn browse(idp: &TestIdp, browser: &Browser, mut current: Hop, choose: &str) -> Page {
    let test_idp = idp.spid_test_idp.clone().expect("the SPID test IdP runs");
    for _ in 0..20 {
        if let Some(next) = current.location.clone() {
            if !next.starts_with(&idp.base) && !next.starts_with(&test_idp) {
                return Page {
                    url: next,
                    status: current.status,
                    body: String::new(),
                };
            }
            current = hop(browser.http.get(&next), &next).await;
            continue;
        }
        let page_forms = forms(&current.body);
        // A SAML message to deliver (the auto-post page of either side).
        if let Some(f) = page_forms.iter().find(|f| {
            f.fields
                .iter()
                .any(|(n, _)| n == "SAMLResponse" || n == "SAMLRequest")
        }) {
            let action = absolute(&current.url, &f.action);
            current = hop(browser.http.post(&action).form(&f.fields), &action).await;
            continue;
        }
        // The test IdP's page: choose the identity.
        if current.url.starts_with(&test_idp)
            && let Some(f) = identity_form(&page_forms, &current.body, choose)
        {
            let action = absolute(&current.url, &f.action);
            let request = if f.method.eq_ignore_ascii_case("post") {
                browser.http.post(&action).form(&f.fields)
            } else {
                browser.http.get(&action).query(&f.fields)
            };
            current = hop(request, &action).await;
            continue;
        }
        return Page {
            url: current.url,
            status: current.status,
            body: current.body,
        };
    }
    panic!("too many steps through SPID");
}

/// The test IdP's form with the identity whose fiscal code is `who` chosen: its radio
/// buttons are labelled "Name Surname (FISCALCODE)".
pub fn identity_form(page_forms: &[HtmlForm], body: &str, who: &str) -> Option<HtmlForm> {
    let at = body.find(&format!("({who})"))?;
    let marker = "for=\"identity-";
    let start = body[..at].rfind(marker)? + marker.len();
    let index: String = body[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let form = page_forms
        .iter()
        .find(|f| f.fields.iter().any(|(n, _)| n == "request"))?;
    let mut fields: Vec<(String, String)> = form
        .fields
        .iter()
        .filter(|(n, _)| n != "identity")
        .cloned()
        .collect();
    fields.push(("identity".into(), index));
    fields.push(("action".into(), "login".into()));
    Some(HtmlForm {
        action: form.action.clone(),
        method: form.method.clone(),
        fields,
    })
}

/// The "Entra con SPID" link of the test IdP on a login page.
pub fn spid_link(idp: &TestIdp, login: &Page) -> String {
    let mut rest = login.body.as_str();
    while let Some(at) = rest.find("<a ") {
        let tag = &rest[at..];
        if let Some(href) = attr(tag, "href")
            && href.starts_with("/spid/login?")
        {
            return idp.url(&href);
        }
        rest = &tag[3..];
    }
    panic!("no SPID link on the login page: {}", login.body);
}

/// From a login page, through SPID as `who`, to wherever the IdP sends the browser.
pub async fn spid_sign_in(idp: &TestIdp, browser: &Browser, login: &Page, who: &str) -> Page {
    let link = spid_link(idp, login);
    let first = hop(browser.http.get(&link), &link).await;
    browse(idp, browser, first, who).await
}

/// The test IdP's page for the SPID link of a login page: it says the level asked.
pub async fn test_idp_page(idp: &TestIdp, browser: &Browser, login: &Page) -> Hop {
    let link = spid_link(idp, login);
    let mut current = hop(browser.http.get(&link), &link).await;
    while let Some(next) = current.location.clone() {
        current = hop(browser.http.get(&next), &next).await;
    }
    current
}

/// Walks a browser to the test IdP's Response for `who` without delivering it.
/// `start` is the client's authorization request.
pub async fn response_form(idp: &TestIdp, browser: &Browser, start: &str, who: &str) -> HtmlForm {
    let login = browser.follow(start, &idp.base).await;
    let link = spid_link(idp, &login);
    let mut current = hop(browser.http.get(&link), &link).await;
    while let Some(next) = current.location.clone() {
        current = hop(browser.http.get(&next), &next).await;
    }
    let f = identity_form(&forms(&current.body), &current.body, who).expect("identity form");
    let action = absolute(&current.url, &f.action);
    let answer = hop(browser.http.post(&action).form(&f.fields), &action).await;
    let f = forms(&answer.body)
        .into_iter()
        .find(|f| f.fields.iter().any(|(n, _)| n == "SAMLResponse"))
        .expect("the auto-post form");
    HtmlForm {
        action: absolute(&answer.url, &f.action),
        method: f.method,
        fields: f.fields,
    }
}

/// A LogoutRequest from the test IdP (HTTP-Redirect binding, signed over the query with
/// the test IdP's development key), as an identity provider sends it.
pub fn idp_logout_request(idp: &TestIdp, name_id: &str, session_index: Option<&str>) -> String {
    use base64::Engine;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    use std::io::Write;
    let test_idp = idp.spid_test_idp.clone().expect("test idp");
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let id = format!("_{}", uuid::Uuid::new_v4().simple());
    let index = session_index
        .map(|s| format!("<samlp:SessionIndex>{s}</samlp:SessionIndex>"))
        .unwrap_or_default();
    let xml = format!(
        concat!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" "#,
            r#"xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" "#,
            r#"IssueInstant="{now}" Destination="{dest}">"#,
            r#"<saml:Issuer Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity" NameQualifier="{idp}">{idp}</saml:Issuer>"#,
            r#"<saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient" NameQualifier="{idp}">{name_id}</saml:NameID>"#,
            "{index}</samlp:LogoutRequest>"
        ),
        id = id,
        now = now,
        dest = idp.url("/spid/slo"),
        idp = test_idp,
        name_id = name_id,
        index = index,
    );
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater.write_all(xml.as_bytes()).expect("deflate");
    let deflated = deflater.finish().expect("deflate");
    let b64 = base64::engine::general_purpose::STANDARD;
    let signed = format!(
        "SAMLRequest={}&SigAlg={}",
        enc(&b64.encode(deflated)),
        enc("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    );
    let pem =
        std::fs::read_to_string(certs_dev().join("spid-test-idp.key")).expect("the test IdP key");
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).expect("PKCS#8 RSA key");
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    let signature = signer.sign(signed.as_bytes()).to_vec();
    format!(
        "{}/spid/slo?{signed}&Signature={}",
        idp.base,
        enc(&b64.encode(signature))
    )
}
