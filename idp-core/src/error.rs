//! The one error type of the domain crate. The server maps each variant to an HTTP
//! answer in one place; here the variants only say what went wrong.

use crate::account::AccountValueError;
use crate::fiscal_code::FiscalCodeError;
use crate::keys::TokenError;
use crate::password::PasswordError;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("invalid fiscal code: {0}")]
    FiscalCode(#[from] FiscalCodeError),
    #[error("invalid account value: {0}")]
    AccountValue(#[from] AccountValueError),
    #[error("password: {0}")]
    Password(#[from] PasswordError),
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("already exists: {0}")]
    Conflict(&'static str),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cache: {0}")]
    Cache(String),
    #[error("mail: {0}")]
    Mail(String),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("token: {0}")]
    Token(#[from] TokenError),
}

impl From<redis::RedisError> for CoreError {
    fn from(e: redis::RedisError) -> Self {
        CoreError::Cache(e.to_string())
    }
}

impl CoreError {
    /// True when the error comes from a backing service being unreachable, so that the
    /// server can answer 503 instead of 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            CoreError::Storage(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                ) || matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| connection_lost(&c)))
            }
            CoreError::Cache(_) => true,
            _ => false,
        }
    }
}

/// SQLSTATEs of a server that went away under a running statement: connection
/// exceptions (class 08) and operator intervention (57P01 admin shutdown, 57P02 crash
/// shutdown, 57P03 cannot connect now, i.e. still starting up).
fn connection_lost(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03")
}

#[cfg(test)]
mod tests {
    use super::CoreError;
    use crate::oidc::OAuthError;

    #[test]
    fn an_unreachable_database_or_cache_is_a_temporary_oauth_error() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for e in [
            CoreError::Storage(sqlx::Error::Io(refused)),
            CoreError::Storage(sqlx::Error::PoolTimedOut),
            CoreError::from(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        ] {
            assert!(e.is_unavailable(), "{e}");
            assert_eq!(OAuthError::from(e).code, "temporarily_unavailable");
        }
        for state in ["08006", "57P01", "57P03"] {
            assert!(super::connection_lost(state), "{state}");
        }
        assert!(
            !super::connection_lost("23505"),
            "a unique violation is a bug or a conflict"
        );
        let bug = CoreError::Storage(sqlx::Error::RowNotFound);
        assert!(!bug.is_unavailable());
        assert_eq!(OAuthError::from(bug).code, "server_error");
    }
}
