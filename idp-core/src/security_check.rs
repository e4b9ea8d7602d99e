//! The security check of "Registrati": an arithmetic question, generated and verified
//! here, single-use (the cache entry is taken on the first answer, right or wrong).
//!
//! Why not ALTCHA: an arithmetic question written as text works without JavaScript,
//! with any screen reader and keyboard, and calls no third party; the proof-of-work
//! widget needs a script. It is a speed bump, not a wall: the real protection against
//! automated registrations is the rate limit per address and per email
//! ([`crate::rate_limit`]) and the confirmation link.

use std::time::Duration;

use rand::Rng as _;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::cache::{Cache, put_json, take_json};
use crate::secret::generate_token;

pub const TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Serialize, Deserialize)]
struct Answer(i64);

/// A question to show, and the id of its (hidden) answer.
pub struct Challenge {
    pub id: String,
    pub question: String,
}

const WORDS: [&str; 11] = [
    "zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove", "dieci",
];

pub async fn new_challenge(cache: &dyn Cache) -> Result<Challenge> {
    let mut rng = OsRng;
    let a: usize = rng.gen_range(2..=10);
    let b: usize = rng.gen_range(1..=9);
    let (question, answer) = if rng.gen_bool(0.5) || b > a {
        (format!("Quanto fa {} più {}?", WORDS[a], WORDS[b]), a + b)
    } else {
        (format!("Quanto fa {} meno {}?", WORDS[a], WORDS[b]), a - b)
    };
    let id = generate_token().expose().to_string();
    put_json(cache, &format!("check:{id}"), &Answer(answer as i64), TTL).await?;
    Ok(Challenge { id, question })
}

/// True when the answer is right; the challenge is used up either way.
pub async fn verify(cache: &dyn Cache, id: &str, answer: &str) -> Result<bool> {
    if id.is_empty() || id.len() > 64 {
        return Ok(false);
    }
    let Some(Answer(expected)) = take_json::<Answer>(cache, &format!("check:{id}")).await? else {
        return Ok(false);
    };
    Ok(parse_answer(answer) == Some(expected))
}

/// Accepts digits ("7") or the Italian word ("sette").
fn parse_answer(answer: &str) -> Option<i64> {
    let a = answer.trim().to_lowercase();
    if let Ok(n) = a.parse() {
        return Some(n);
    }
    const MORE: [&str; 9] = [
        "undici",
        "dodici",
        "tredici",
        "quattordici",
        "quindici",
        "sedici",
        "diciassette",
        "diciotto",
        "diciannove",
    ];
    WORDS
        .iter()
        .chain(MORE.iter())
        .position(|w| *w == a)
        .map(|p| p as i64)
}

/// Reads the answer out of the question (tests and the headless browser walk).
pub fn solve(question: &str) -> Option<i64> {
    let words: Vec<&str> = question.trim_end_matches('?').split_whitespace().collect();
    let n = |w: &str| WORDS.iter().position(|x| *x == w).map(|p| p as i64);
    let at = words.iter().position(|w| *w == "più" || *w == "meno")?;
    let (a, b) = (n(words.get(at - 1)?)?, n(words.get(at + 1)?)?);
    Some(if words[at] == "più" { a + b } else { a - b })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    #[tokio::test]
    async fn a_challenge_is_answered_once() {
        let cache = MemoryCache::new();
        let c = new_challenge(&cache).await.unwrap();
        let answer = solve(&c.question).unwrap().to_string();
        assert!(verify(&cache, &c.id, &answer).await.unwrap());
        assert!(!verify(&cache, &c.id, &answer).await.unwrap(), "single use");
    }

    #[tokio::test]
    async fn a_wrong_answer_spends_the_challenge() {
        let cache = MemoryCache::new();
        let c = new_challenge(&cache).await.unwrap();
        assert!(!verify(&cache, &c.id, "999").await.unwrap());
        let answer = solve(&c.question).unwrap().to_string();
        assert!(!verify(&cache, &c.id, &answer).await.unwrap());
    }

    #[test]
    fn words_and_digits_are_both_accepted() {
        assert_eq!(parse_answer(" Sette "), Some(7));
        assert_eq!(parse_answer("17"), Some(17));
        assert_eq!(parse_answer("diciassette"), Some(17));
        assert_eq!(solve("Quanto fa otto meno tre?"), Some(5));
    }
}
