//! Test identities of the local SPID test IdP, with valid Italian fiscal codes.

/// A person the test IdP can authenticate.
#[derive(Clone, Debug)]
pub struct TestIdentity {
    pub fiscal_number: String,
    pub name: &'static str,
    pub family_name: &'static str,
    pub email: &'static str,
    pub date_of_birth: &'static str,
    pub gender: &'static str,
    pub mobile_phone: &'static str,
    pub spid_code: &'static str,
}

impl TestIdentity {
    /// The SPID attributes as the IdP sends them.
    pub fn attributes(&self) -> Vec<(String, String)> {
        [
            ("spidCode", self.spid_code.to_string()),
            ("name", self.name.to_string()),
            ("familyName", self.family_name.to_string()),
            ("fiscalNumber", format!("TINIT-{}", self.fiscal_number)),
            ("email", self.email.to_string()),
            ("dateOfBirth", self.date_of_birth.to_string()),
            ("gender", self.gender.to_string()),
            ("mobilePhone", self.mobile_phone.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The check character of the first 15 characters of a fiscal code (DM 23/12/1976).
pub fn fiscal_code_check_char(first15: &str) -> Option<char> {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    if first15.len() != 15 {
        return None;
    }
    let mut sum = 0;
    for (i, c) in first15.chars().enumerate() {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32,
            _ => return None,
        };
        // Positions are counted from 1: index 0 is an odd position.
        sum += if i % 2 == 0 { ODD[v as usize] } else { v };
    }
    char::from_u32('A' as u32 + sum % 26)
}

fn code(first15: &str) -> String {
    let check = fiscal_code_check_char(first15).unwrap_or('X');
    format!("{first15}{check}")
}

/// The identities shown on the test IdP's page.
pub fn test_identities() -> Vec<TestIdentity> {
    vec![
        TestIdentity {
            fiscal_number: code("RSSMRA80A01H501"),
            name: "Mario",
            family_name: "Rossi",
            email: "mario.rossi@example.org",
            date_of_birth: "1980-01-01",
            gender: "M",
            mobile_phone: "+393331234567",
            spid_code: "TEST-0000000001",
        },
        TestIdentity {
            fiscal_number: code("BNCNNA85M41F205"),
            name: "Anna",
            family_name: "Bianchi",
            email: "anna.bianchi@example.org",
            date_of_birth: "1985-08-01",
            gender: "F",
            mobile_phone: "+393471234567",
            spid_code: "TEST-0000000002",
        },
        TestIdentity {
            fiscal_number: code("VRDGPP75C15L219"),
            name: "Giuseppe",
            family_name: "Verdi",
            email: "giuseppe.verdi@example.org",
            date_of_birth: "1975-03-15",
            gender: "M",
            mobile_phone: "+393351234567",
            spid_code: "TEST-0000000003",
        },
        TestIdentity {
            fiscal_number: code("SPSLRA90T50F839"),
            name: "Laura",
            family_name: "Esposito",
            email: "laura.esposito@example.org",
            date_of_birth: "1990-12-10",
            gender: "F",
            mobile_phone: "+393201234567",
            spid_code: "TEST-0000000004",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_fiscal_code_gets_its_check_character() {
        assert_eq!(fiscal_code_check_char("RSSMRA80A01H501"), Some('U'));
        assert_eq!(test_identities()[0].fiscal_number, "RSSMRA80A01H501U");
    }

    #[test]
    fn every_test_identity_has_a_well_formed_code() {
        for id in test_identities() {
            let (first, last) = id.fiscal_number.split_at(15);
            assert_eq!(
                fiscal_code_check_char(first).map(String::from),
                Some(last.to_string())
            );
        }
    }
}
