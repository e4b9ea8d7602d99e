//! The Italian codice fiscale: format, omocodia and check character.
//! A [`FiscalCode`] that exists has passed every check, so code that receives one
//! (registration, SPID attribute mapping, claims) never validates it again.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Sex as encoded in the codice fiscale (and as collected at registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    #[serde(rename = "M")]
    Male,
    #[serde(rename = "F")]
    Female,
}

impl Sex {
    pub fn as_str(&self) -> &'static str {
        match self {
            Sex::Male => "M",
            Sex::Female => "F",
        }
    }

    /// Accepts "M" or "F" in either case, surrounding spaces ignored.
    pub fn parse(s: &str) -> Option<Sex> {
        match s.trim() {
            "M" | "m" => Some(Sex::Male),
            "F" | "f" => Some(Sex::Female),
            _ => None,
        }
    }
}

/// Why a string is not a codice fiscale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FiscalCodeError {
    #[error("a fiscal code has 16 characters, found {found}")]
    Length { found: usize },
    #[error("the character at position {position} of the fiscal code is of the wrong kind")]
    Character { position: usize },
    #[error("the month letter of the fiscal code is not a valid month")]
    Month,
    #[error("the day of birth in the fiscal code is not a possible day")]
    Day,
    #[error("the check character of the fiscal code is wrong (expected {expected})")]
    CheckCharacter { expected: char },
}

impl FiscalCodeError {
    pub fn message_it(&self) -> String {
        match self {
            FiscalCodeError::Length { found } => format!(
                "Il codice fiscale deve essere composto da 16 caratteri (ne sono stati inseriti {found})"
            ),
            FiscalCodeError::Character { position } => format!(
                "Il codice fiscale contiene un carattere non valido in posizione {position}"
            ),
            FiscalCodeError::Month => {
                "Il codice fiscale contiene un mese di nascita non valido".to_string()
            }
            FiscalCodeError::Day => {
                "Il codice fiscale contiene un giorno di nascita non valido".to_string()
            }
            // The expected character is deliberately not shown to the person: it
            // would turn the page into a check-character calculator for typos.
            FiscalCodeError::CheckCharacter { .. } => {
                "Il codice fiscale non è corretto: verificare di averlo digitato correttamente"
                    .to_string()
            }
        }
    }
}

/// Which personal data disagrees with what the fiscal code encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FiscalCodeDisagreement {
    #[error("the birth date does not match the fiscal code")]
    BirthDate,
    #[error("the sex does not match the fiscal code")]
    Sex,
    #[error("neither the birth date nor the sex match the fiscal code")]
    BirthDateAndSex,
}

impl FiscalCodeDisagreement {
    pub fn message_it(&self) -> &'static str {
        match self {
            FiscalCodeDisagreement::BirthDate => {
                "La data di nascita non corrisponde al codice fiscale"
            }
            FiscalCodeDisagreement::Sex => "Il sesso non corrisponde al codice fiscale",
            FiscalCodeDisagreement::BirthDateAndSex => {
                "La data di nascita e il sesso non corrispondono al codice fiscale"
            }
        }
    }
}

/// A valid codice fiscale, stored upper-case exactly as issued (omocodia letters
/// are kept: they are part of the person's code, not a spelling of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FiscalCode(String);

/// Letters that replace the digits 0..=9 in an omocode, in order.
const OMOCODIA: &[u8; 10] = b"LMNPQRSTUV";
/// Month letters for January..=December.
const MONTHS: &[u8; 12] = b"ABCDEHLMPRST";
/// 0-based positions that hold digits, or their omocodia letters.
const NUMERIC_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
/// Values of A..=Z (and of 0..=9, which weigh as A..=J) at odd 1-based positions.
const ODD_VALUES: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

impl FiscalCode {
    /// Trims and upper-cases `input`, then checks every rule of the format.
    pub fn parse(input: &str) -> Result<FiscalCode, FiscalCodeError> {
        // ASCII-only upper-casing keeps the character count stable ("ß" would become
        // "SS"); any non-ASCII character is then reported by its position.
        let code = input.trim().to_ascii_uppercase();
        let found = code.chars().count();
        if found != 16 {
            return Err(FiscalCodeError::Length { found });
        }
        check_kinds(&code)?;
        let bytes = code.as_bytes();
        let month = month_of(bytes[8]).ok_or(FiscalCodeError::Month)?;
        let raw_day = decoded_number(bytes, 9);
        let day = if raw_day > 40 { raw_day - 40 } else { raw_day };
        // Only 29 February is allowed for any year: the two-digit year does not say
        // which century, so leap years cannot be told apart.
        if day == 0 || day > days_in_month(month) {
            return Err(FiscalCodeError::Day);
        }
        let expected = check_character(&bytes[..15]);
        if bytes[15] != expected {
            return Err(FiscalCodeError::CheckCharacter {
                expected: char::from(expected),
            });
        }
        Ok(FiscalCode(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn sex(&self) -> Sex {
        if self.raw_day() > 40 {
            Sex::Female
        } else {
            Sex::Male
        }
    }

    /// 1..=31, with the +40 for women removed.
    pub fn birth_day_of_month(&self) -> u32 {
        let raw = self.raw_day();
        if raw > 40 { raw - 40 } else { raw }
    }

    /// 1..=12.
    pub fn birth_month(&self) -> u32 {
        // parse() accepted only month letters, so the fallback is unreachable.
        month_of(self.0.as_bytes()[8]).unwrap_or(1)
    }

    /// 0..=99; the century is not encoded.
    pub fn birth_year_two_digits(&self) -> u32 {
        decoded_number(self.0.as_bytes(), 6)
    }

    /// The cadastral (Belfiore) code of the birth place, omocodia decoded, e.g. "H501"
    /// for Rome or "Z404" for a birth in the United States.
    pub fn birth_place_code(&self) -> String {
        let bytes = self.0.as_bytes();
        let mut place = String::with_capacity(4);
        place.push(char::from(bytes[11]));
        for &b in &bytes[12..15] {
            place.push(char::from(b'0' + digit_value(b)));
        }
        place
    }

    /// Checks the personal data a person typed against what the code encodes. Only
    /// the last two digits of the year can be compared.
    pub fn check_agreement(
        &self,
        birth_date: NaiveDate,
        sex: Sex,
    ) -> Result<(), FiscalCodeDisagreement> {
        let date_agrees = birth_date.day() == self.birth_day_of_month()
            && birth_date.month() == self.birth_month()
            && birth_date.year().rem_euclid(100) as u32 == self.birth_year_two_digits();
        let sex_agrees = sex == self.sex();
        match (date_agrees, sex_agrees) {
            (true, true) => Ok(()),
            (false, true) => Err(FiscalCodeDisagreement::BirthDate),
            (true, false) => Err(FiscalCodeDisagreement::Sex),
            (false, false) => Err(FiscalCodeDisagreement::BirthDateAndSex),
        }
    }

    fn raw_day(&self) -> u32 {
        decoded_number(self.0.as_bytes(), 9)
    }
}

impl fmt::Display for FiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for FiscalCode {
    type Error = FiscalCodeError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        FiscalCode::parse(&value)
    }
}

impl From<FiscalCode> for String {
    fn from(code: FiscalCode) -> String {
        code.0
    }
}

/// Every position must hold the right kind of character before any value is read.
/// Omocodia letters are accepted in any numeric position, in any combination: the
/// Agenzia delle Entrate substitutes from the right, but nothing is gained by
/// rejecting a code whose check character is right.
fn check_kinds(code: &str) -> Result<(), FiscalCodeError> {
    for (i, c) in code.chars().enumerate() {
        let Ok(b) = u8::try_from(c) else {
            return Err(FiscalCodeError::Character { position: i + 1 });
        };
        let ok = if NUMERIC_POSITIONS.contains(&i) {
            b.is_ascii_digit() || OMOCODIA.contains(&b)
        } else {
            b.is_ascii_uppercase()
        };
        if !ok {
            return Err(FiscalCodeError::Character { position: i + 1 });
        }
    }
    Ok(())
}

fn month_of(letter: u8) -> Option<u32> {
    MONTHS
        .iter()
        .position(|&m| m == letter)
        .map(|i| i as u32 + 1)
}

fn days_in_month(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The digit a numeric position stands for, undoing omocodia.
fn digit_value(b: u8) -> u8 {
    if b.is_ascii_digit() {
        b - b'0'
    } else {
        OMOCODIA.iter().position(|&l| l == b).unwrap_or(0) as u8
    }
}

/// The two-digit number at 0-based `start`, omocodia decoded.
fn decoded_number(bytes: &[u8], start: usize) -> u32 {
    u32::from(digit_value(bytes[start])) * 10 + u32::from(digit_value(bytes[start + 1]))
}

/// The official algorithm: odd 1-based positions weigh by [`ODD_VALUES`], even ones by
/// their plain value (digits as themselves, A=0 … Z=25); the sum modulo 26 is a letter.
/// The check runs over the code as written, omocodia letters included.
fn check_character(first15: &[u8]) -> u8 {
    let sum: u32 = first15
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let index = if b.is_ascii_digit() {
                b - b'0'
            } else {
                b - b'A'
            } as usize;
            if i % 2 == 0 {
                ODD_VALUES[index]
            } else {
                index as u32
            }
        })
        .sum();
    b'A' + (sum % 26) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a code from its first 15 characters with the right check character,
    /// so that tests on dates and kinds are not masked by a check-character error.
    fn with_check(first15: &str) -> String {
        let c = check_character(first15.as_bytes());
        format!("{first15}{}", char::from(c))
    }

    /// Replaces the digits at the given 0-based numeric positions by omocodia letters.
    fn omocode(code: &str, positions: &[usize]) -> String {
        let mut bytes = code.as_bytes()[..15].to_vec();
        for &p in positions {
            bytes[p] = OMOCODIA[usize::from(bytes[p] - b'0')];
        }
        with_check(std::str::from_utf8(&bytes).unwrap())
    }

    #[test]
    fn well_known_valid_codes_are_accepted() {
        for code in [
            "RSSMRA85T10A562S",
            "MRTMTT25D09F205Z",
            "RSSMRA80A01H501U",
            "VRDLGU72L10F839X",
        ] {
            let parsed = FiscalCode::parse(code).unwrap();
            assert_eq!(parsed.as_str(), code);
        }
    }

    #[test]
    fn the_check_character_table_agrees_with_known_codes() {
        assert_eq!(check_character(b"RSSMRA85T10A562"), b'S');
        assert_eq!(check_character(b"MRTMTT25D09F205"), b'Z');
        assert_eq!(check_character(b"RSSMRA80A01H501"), b'U');
        assert_eq!(check_character(b"VRDLGU72L10F839"), b'X');
    }

    #[test]
    fn a_code_typed_in_lower_case_with_spaces_is_accepted_and_upper_cased() {
        let parsed = FiscalCode::parse("  rssmra85t10a562s ").unwrap();
        assert_eq!(parsed.as_str(), "RSSMRA85T10A562S");
        assert_eq!(parsed.to_string(), "RSSMRA85T10A562S");
    }

    #[test]
    fn omocodia_variants_of_a_valid_code_are_accepted_and_decode_to_the_same_data() {
        let base = FiscalCode::parse("RSSMRA85T10A562S").unwrap();
        for positions in [
            vec![14],
            vec![13, 14],
            vec![12, 13, 14],
            vec![10, 12, 13, 14],
            vec![9, 10, 12, 13, 14],
            vec![7, 9, 10, 12, 13, 14],
            vec![6, 7, 9, 10, 12, 13, 14],
        ] {
            let variant = omocode("RSSMRA85T10A562S", &positions);
            let parsed =
                FiscalCode::parse(&variant).unwrap_or_else(|e| panic!("{variant} rejected: {e}"));
            assert_eq!(parsed.birth_day_of_month(), base.birth_day_of_month());
            assert_eq!(parsed.birth_month(), base.birth_month());
            assert_eq!(parsed.birth_year_two_digits(), base.birth_year_two_digits());
            assert_eq!(parsed.birth_place_code(), "A562");
            assert_eq!(parsed.sex(), Sex::Male);
        }
        // Spelled out once, so the helper is not the only witness.
        assert_eq!(omocode("RSSMRA85T10A562S", &[14]), "RSSMRA85T10A56NH");
        assert!(FiscalCode::parse("RSSMRA85T10A56NH").is_ok());
        assert!(FiscalCode::parse("RSSMRALRTLMASRNP").is_ok());
    }

    #[test]
    fn the_birth_data_is_read_from_the_code() {
        let code = FiscalCode::parse("MRTMTT25D09F205Z").unwrap();
        assert_eq!(code.birth_year_two_digits(), 25);
        assert_eq!(code.birth_month(), 4);
        assert_eq!(code.birth_day_of_month(), 9);
        assert_eq!(code.sex(), Sex::Male);
        assert_eq!(code.birth_place_code(), "F205");
    }

    #[test]
    fn a_womans_day_of_birth_is_the_day_plus_forty() {
        let code = FiscalCode::parse(&with_check("BNCLRA90A41H501")).unwrap();
        assert_eq!(code.sex(), Sex::Female);
        assert_eq!(code.birth_day_of_month(), 1);
        let last = FiscalCode::parse(&with_check("BNCLRA90A71H501")).unwrap();
        assert_eq!(last.birth_day_of_month(), 31);
        assert_eq!(last.sex(), Sex::Female);
    }

    #[test]
    fn a_wrong_check_character_is_rejected_with_the_expected_one() {
        assert_eq!(
            FiscalCode::parse("RSSMRA85T10A562X"),
            Err(FiscalCodeError::CheckCharacter { expected: 'S' })
        );
    }

    #[test]
    fn a_code_of_the_wrong_length_is_rejected() {
        assert_eq!(
            FiscalCode::parse("RSSMRA85T10A562"),
            Err(FiscalCodeError::Length { found: 15 })
        );
        assert_eq!(
            FiscalCode::parse("RSSMRA85T10A562SS"),
            Err(FiscalCodeError::Length { found: 17 })
        );
        assert_eq!(
            FiscalCode::parse(""),
            Err(FiscalCodeError::Length { found: 0 })
        );
        // Counted in characters, not bytes.
        assert_eq!(
            FiscalCode::parse("RSSMRÀ85T10A562S"),
            Err(FiscalCodeError::Character { position: 6 })
        );
    }

    #[test]
    fn a_character_of_the_wrong_kind_is_reported_at_its_position() {
        let cases = [
            ("1SSMRA85T10A562S", 1),
            ("RSSMR485T10A562S", 6),
            ("RSSMRAA5T10A562S", 7),
            ("RSSMRA8XT10A562S", 8),
            ("RSSMRA85110A562S", 9),
            ("RSSMRA85TA0A562S", 10),
            ("RSSMRA85T1ZA562S", 11),
            ("RSSMRA85T105562S", 12),
            ("RSSMRA85T10AB62S", 13),
            ("RSSMRA85T10A5W2S", 14),
            ("RSSMRA85T10A56ZS", 15),
            ("RSSMRA85T10A5621", 16),
            ("RSSMRA85T10A562-", 16),
        ];
        for (code, position) in cases {
            assert_eq!(
                FiscalCode::parse(code),
                Err(FiscalCodeError::Character { position }),
                "{code}"
            );
        }
    }

    #[test]
    fn a_letter_that_is_not_a_month_is_rejected() {
        assert_eq!(
            FiscalCode::parse(&with_check("RSSMRA85F10A562")),
            Err(FiscalCodeError::Month)
        );
    }

    #[test]
    fn impossible_days_are_rejected() {
        for first15 in [
            "RSSMRA85T32A562", // day 32
            "RSSMRA85T00A562", // day 00
            "RSSMRA85B30A562", // 30 February
            "RSSMRA85D31A562", // 31 April
            "RSSMRA85T35A562", // between men's and women's ranges
            "RSSMRA85T40A562", // a woman's day 0
            "RSSMRA85T72A562", // a woman's day 32
            "RSSMRA85B70A562", // a woman's 30 February
        ] {
            assert_eq!(
                FiscalCode::parse(&with_check(first15)),
                Err(FiscalCodeError::Day),
                "{first15}"
            );
        }
    }

    #[test]
    fn the_twenty_ninth_of_february_is_accepted_for_any_year() {
        assert!(FiscalCode::parse(&with_check("RSSMRA85B29A562")).is_ok());
        assert!(FiscalCode::parse(&with_check("RSSMRA85B69A562")).is_ok());
    }

    #[test]
    fn personal_data_matching_the_code_agrees() {
        let code = FiscalCode::parse("RSSMRA85T10A562S").unwrap();
        let date = NaiveDate::from_ymd_opt(1985, 12, 10).unwrap();
        assert_eq!(code.check_agreement(date, Sex::Male), Ok(()));
        // The century is not encoded, so 2085 agrees as well.
        let date = NaiveDate::from_ymd_opt(2085, 12, 10).unwrap();
        assert_eq!(code.check_agreement(date, Sex::Male), Ok(()));
    }

    #[test]
    fn a_different_birth_date_or_sex_is_reported_as_a_disagreement() {
        let code = FiscalCode::parse("RSSMRA85T10A562S").unwrap();
        let right = NaiveDate::from_ymd_opt(1985, 12, 10).unwrap();
        for wrong in [
            NaiveDate::from_ymd_opt(1985, 12, 11).unwrap(),
            NaiveDate::from_ymd_opt(1985, 11, 10).unwrap(),
            NaiveDate::from_ymd_opt(1986, 12, 10).unwrap(),
        ] {
            assert_eq!(
                code.check_agreement(wrong, Sex::Male),
                Err(FiscalCodeDisagreement::BirthDate)
            );
        }
        assert_eq!(
            code.check_agreement(right, Sex::Female),
            Err(FiscalCodeDisagreement::Sex)
        );
        let wrong = NaiveDate::from_ymd_opt(1985, 12, 11).unwrap();
        assert_eq!(
            code.check_agreement(wrong, Sex::Female),
            Err(FiscalCodeDisagreement::BirthDateAndSex)
        );
    }

    #[test]
    fn a_womans_code_agrees_with_her_real_birth_date() {
        let code = FiscalCode::parse(&with_check("BNCLRA90A41H501")).unwrap();
        let date = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
        assert_eq!(code.check_agreement(date, Sex::Female), Ok(()));
    }

    #[test]
    fn serde_writes_a_string_and_validates_on_the_way_back() {
        let code = FiscalCode::parse("RSSMRA85T10A562S").unwrap();
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, "\"RSSMRA85T10A562S\"");
        let back: FiscalCode = serde_json::from_str("\"rssmra85t10a562s\"").unwrap();
        assert_eq!(back, code);
        assert!(serde_json::from_str::<FiscalCode>("\"RSSMRA85T10A562X\"").is_err());
    }

    #[test]
    fn sex_parses_either_case_and_prints_one_letter() {
        assert_eq!(Sex::parse("m"), Some(Sex::Male));
        assert_eq!(Sex::parse("F"), Some(Sex::Female));
        assert_eq!(Sex::parse("X"), None);
        assert_eq!(Sex::Female.as_str(), "F");
        assert_eq!(serde_json::to_string(&Sex::Male).unwrap(), "\"M\"");
    }

    #[test]
    fn every_error_has_an_italian_message() {
        assert!(
            FiscalCodeError::Length { found: 3 }
                .message_it()
                .contains("16 caratteri")
        );
        assert!(
            FiscalCodeError::Character { position: 7 }
                .message_it()
                .contains("posizione 7")
        );
        assert!(!FiscalCodeError::Month.message_it().is_empty());
        assert!(!FiscalCodeError::Day.message_it().is_empty());
        // The page must not hand out the right check character.
        assert!(
            !FiscalCodeError::CheckCharacter { expected: 'Z' }
                .message_it()
                .contains('Z')
        );
        assert!(FiscalCodeDisagreement::Sex.message_it().contains("sesso"));
    }
}
