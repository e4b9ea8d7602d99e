//! The *modulo di adesione* and the *modulo di delega* as PDFs (printpdf, the standard
//! Helvetica font: text without accents, so that any reader extracts it).

use printpdf::{
    BuiltinFont, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, TextItem,
};

use super::codes::fold_accents;
use super::store::Enrolment;

fn document(title: &str, lines: &[String]) -> Vec<u8> {
    let mut ops = vec![
        Op::StartTextSection,
        Op::SetTextCursor {
            pos: Point::new(Mm(20.0), Mm(275.0)),
        },
        Op::SetFont {
            font: PdfFontHandle::Builtin(BuiltinFont::HelveticaBold),
            size: Pt(15.0),
        },
        Op::SetLineHeight { lh: Pt(18.0) },
        Op::ShowText {
            items: vec![TextItem::Text(fold_accents(title))],
        },
        Op::AddLineBreak,
        Op::AddLineBreak,
        Op::SetFont {
            font: PdfFontHandle::Builtin(BuiltinFont::Helvetica),
            size: Pt(11.0),
        },
        Op::SetLineHeight { lh: Pt(15.0) },
    ];
    for line in lines {
        ops.push(Op::ShowText {
            items: vec![TextItem::Text(fold_accents(line))],
        });
        ops.push(Op::AddLineBreak);
    }
    ops.push(Op::EndTextSection);
    let mut doc = PdfDocument::new(&fold_accents(title));
    let mut warnings = Vec::new();
    doc.with_pages(vec![PdfPage::new(Mm(210.0), Mm(297.0), ops)])
        .save(&PdfSaveOptions::default(), &mut warnings)
}

fn person_lines(e: &Enrolment) -> Vec<String> {
    vec![
        format!("Cognome: {}", e.family_name),
        format!("Nome: {}", e.given_name),
        format!("Codice fiscale: {}", e.fiscal_code),
        format!("Indirizzo e-mail: {}", e.email),
        format!(
            "Domicilio: {}, {} ({}), {}",
            e.address, e.municipality, e.province, e.country
        ),
        format!("Telefono cellulare: {}", e.mobile_phone),
        format!(
            "Telefono fisso: {}",
            if e.home_phone.is_empty() {
                "-"
            } else {
                &e.home_phone
            }
        ),
        format!(
            "Documento di riconoscimento: {} numero {}",
            e.document_type, e.document_number
        ),
        format!(
            "Rilasciato da: {} il {}",
            e.document_issuer, e.document_date
        ),
    ]
}

/// The enrolment form the person signs at the school, in front of the operator.
pub fn modulo_adesione(e: &Enrolment) -> Vec<u8> {
    let mut lines = vec![
        "Istanze OnLine - Ministero dell'Istruzione e del Merito".to_string(),
        "Richiesta di abilitazione al servizio".to_string(),
        String::new(),
    ];
    lines.extend(person_lines(e));
    lines.extend([
        String::new(),
        "Il/la sottoscritto/a chiede l'abilitazione al servizio Istanze OnLine e".to_string(),
        "dichiara che i dati indicati sono veritieri.".to_string(),
        String::new(),
        "La firma va apposta al momento del riconoscimento presso la scuola,".to_string(),
        "presentando il documento indicato e il tesserino del codice fiscale.".to_string(),
        String::new(),
        "Firma del richiedente: ______________________________".to_string(),
        String::new(),
        "Timbro della scuola e firma dell'operatore: ______________________________".to_string(),
    ]);
    document("Modulo di adesione - Istanze OnLine", &lines)
}

/// The delegation form: a delegate carries it to the school for the recognition.
pub fn modulo_delega(e: &Enrolment) -> Vec<u8> {
    let mut lines = vec![
        "Istanze OnLine - Ministero dell'Istruzione e del Merito".to_string(),
        "Delega per il riconoscimento presso una scuola".to_string(),
        String::new(),
        "Il/la sottoscritto/a (delegante):".to_string(),
    ];
    lines.extend(person_lines(e));
    lines.extend([
        String::new(),
        "delega il/la signor/a ______________________________".to_string(),
        "documento di riconoscimento ____________ numero ____________".to_string(),
        "a presentare presso la scuola il modulo di adesione firmato e la copia".to_string(),
        "dei documenti del delegante, per il riconoscimento.".to_string(),
        String::new(),
        "Firma del delegante: ______________________________".to_string(),
        "Firma del delegato: ______________________________".to_string(),
    ]);
    document("Modulo di delega - Istanze OnLine", &lines)
}
