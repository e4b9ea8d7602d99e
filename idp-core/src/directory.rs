//! The account directory: the `Account` entity, creating accounts with a unique
//! `nome.cognome` username, password sign-in (with transparent re-hashing when the
//! argon2 parameters change) and password changes under the policy. Profile changes go
//! through here so that `/userinfo`'s copy of the account (see [`AccountClaimsCache`])
//! is dropped at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use crate::account::{AccountId, AccountKind, AccountStatus, Email, Username};
use crate::claims_cache::AccountClaimsCache;
use crate::fiscal_code::{FiscalCode, Sex};
use crate::password::{
    Password, PasswordHash, PasswordHasher, PasswordPolicy, PolicyContext, PolicyViolation,
    Verification,
};
use crate::store::Store;
use crate::{CoreError, Result};

/// One person's account, shared by every linked service.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub username: Username,
    pub kind: AccountKind,
    pub status: AccountStatus,
    pub fiscal_code: Option<FiscalCode>,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: Option<NaiveDate>,
    pub birth_place: Option<String>,
    pub sex: Option<Sex>,
    pub personal_email: Option<Email>,
    pub institutional_email: Option<Email>,
    pub password: Option<PasswordHash>,
    /// Set for a temporary password: the person must choose a new one first.
    pub password_must_change: bool,
    /// Unix seconds after which a temporary password no longer works.
    pub password_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Account {
    /// The address mail goes to: the institutional one when present (seed 004), else the
    /// personal one.
    pub fn reference_email(&self) -> Option<&Email> {
        self.institutional_email
            .as_ref()
            .or(self.personal_email.as_ref())
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }
}

/// What a new account is made from; the username is allocated by the directory.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub kind: AccountKind,
    pub fiscal_code: Option<FiscalCode>,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: Option<NaiveDate>,
    pub birth_place: Option<String>,
    pub sex: Option<Sex>,
    pub personal_email: Option<Email>,
    pub institutional_email: Option<Email>,
    /// Keep this username (imported legacy accounts) instead of generating one.
    pub username: Option<Username>,
}

/// The result of a password sign-in attempt.
#[derive(Debug)]
pub enum SignIn {
    Authenticated(Box<Account>),
    /// Correct temporary password: only the password change is allowed next.
    MustChangePassword(Box<Account>),
    InvalidCredentials,
    TemporaryPasswordExpired,
    Disabled,
    /// An imported account that never set a password (Password dimenticata? sets one).
    NoPassword,
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    policy: PasswordPolicy,
    claims: AccountClaimsCache,
}

impl Directory {
    /// A directory whose [`Directory::claims`] reads the store every time; see
    /// [`Directory::with_claims_fresh_for`].
    pub fn new(store: Arc<dyn Store>, hasher: Arc<PasswordHasher>, policy: PasswordPolicy) -> Self {
        let claims = AccountClaimsCache::new(store.clone(), Duration::ZERO);
        Self {
            store,
            hasher,
            policy,
            claims,
        }
    }

    /// Serves [`Directory::claims`] from memory for `fresh_for` (`[tokens]
    /// userinfo_cache_secs`): the longest a change made by another process takes to
    /// reach `/userinfo`.
    pub fn with_claims_fresh_for(mut self, fresh_for: Duration) -> Self {
        self.claims = AccountClaimsCache::new(self.store.clone(), fresh_for);
        self
    }

    /// Accounts with their roles as `/userinfo` answers them, kept for a few seconds;
    /// the changes made through this directory drop an account's entry at once.
    pub fn claims(&self) -> &AccountClaimsCache {
        &self.claims
    }

    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates an account. Unless a username is given, it is `nome.cognome` from the
    /// names, numbered on collision (`mario.rossi`, `mario.rossi2`, …). Two
    /// registrations racing for the same name are settled by the unique index: the
    /// loser takes the next number.
    pub async fn create_account(&self, new: NewAccount) -> Result<Account> {
        let base = Username::base_from_names(&new.given_name, &new.family_name)?;
        for _attempt in 0..5 {
            let username = match &new.username {
                Some(u) => u.clone(),
                None => self.next_username(&base).await?,
            };
            let at = now();
            let account = Account {
                id: AccountId::new(),
                username,
                kind: new.kind,
                status: AccountStatus::Active,
                fiscal_code: new.fiscal_code.clone(),
                given_name: new.given_name.trim().to_string(),
                family_name: new.family_name.trim().to_string(),
                birth_date: new.birth_date,
                birth_place: new.birth_place.clone(),
                sex: new.sex,
                personal_email: new.personal_email.clone(),
                institutional_email: new.institutional_email.clone(),
                password: None,
                password_must_change: false,
                password_expires_at: None,
                created_at: at,
                updated_at: at,
            };
            match self.store.insert_account(&account).await {
                Ok(()) => return Ok(account),
                Err(CoreError::Conflict("username")) if new.username.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CoreError::Conflict("username"))
    }

    pub(crate) async fn next_username(&self, base: &str) -> Result<Username> {
        let taken = self.store.usernames_like(base).await?;
        let highest = taken
            .iter()
            .filter_map(|u| {
                let rest = u.strip_prefix(base)?;
                if rest.is_empty() {
                    Some(1)
                } else {
                    rest.parse::<u32>().ok()
                }
            })
            .max();
        Ok(match highest {
            None => Username::with_suffix(base, 0),
            Some(n) => Username::with_suffix(base, n.max(1) + 1),
        })
    }

    /// Checks a username and password. The time spent is the same whether or not the
    /// username exists, so the answer's timing tells nothing.
    pub async fn sign_in(&self, username: &str, password: Password) -> Result<SignIn> {
        let account = match Username::parse(username) {
            Ok(u) => self.store.account_by_username(&u).await?,
            Err(_) => None,
        };
        let Some(account) = account else {
            self.hasher
                .run(move |hasher| hasher.dummy_verify(&password))
                .await?;
            return Ok(SignIn::InvalidCredentials);
        };
        let Some(stored) = account.password.clone() else {
            self.hasher
                .run(move |hasher| hasher.dummy_verify(&password))
                .await?;
            return Ok(SignIn::NoPassword);
        };
        let (verification, password) = self
            .hasher
            .run(move |hasher| {
                let v = hasher.verify(&password, &stored);
                (v, password)
            })
            .await?;
        match verification? {
            Verification::Invalid => Ok(SignIn::InvalidCredentials),
            Verification::Valid { needs_rehash } => {
                if account.status == AccountStatus::Disabled {
                    return Ok(SignIn::Disabled);
                }
                if needs_rehash {
                    let hash = self.hash(password).await?;
                    self.store.rehash_password(&account.id, &hash).await?;
                }
                if account.password_must_change {
                    if account.password_expires_at.is_some_and(|t| t < now()) {
                        return Ok(SignIn::TemporaryPasswordExpired);
                    }
                    return Ok(SignIn::MustChangePassword(Box::new(account)));
                }
                Ok(SignIn::Authenticated(Box::new(account)))
            }
        }
    }

    pub(crate) async fn hash(&self, password: Password) -> Result<PasswordHash> {
        Ok(self
            .hasher
            .run(move |hasher| hasher.hash(&password))
            .await??)
    }

    /// Checks a new password against the policy for this account, returning every
    /// broken rule at once.
    pub async fn check_policy(
        &self,
        account: &Account,
        password: &Password,
    ) -> Result<Vec<PolicyViolation>> {
        let history = self
            .store
            .password_history(&account.id, self.policy.history)
            .await?;
        let mut previous: Vec<PasswordHash> = account.password.iter().cloned().collect();
        previous.extend(history);
        previous.truncate(self.policy.history);
        let policy = self.policy.clone();
        let account = account.clone();
        let password = Password::new(password.expose().to_string());
        // The policy verifies the new password against the previous hashes: argon2 work.
        Ok(self
            .hasher
            .run(move |hasher| {
                let names = [account.given_name.as_str(), account.family_name.as_str()];
                let ctx = PolicyContext {
                    username: Some(account.username.as_str()),
                    names: &names,
                    fiscal_code: account.fiscal_code.as_ref().map(|f| f.as_str()),
                    previous_hashes: &previous,
                };
                match policy.check(&password, &ctx, hasher) {
                    Ok(()) => Vec::new(),
                    Err(v) => v,
                }
            })
            .await?)
    }

    /// Saves the profile fields (names, birth data, emails, kind, status); `/userinfo`
    /// shows the change at once.
    pub async fn update_profile(&self, account: &Account) -> Result<()> {
        self.store.update_profile(account).await?;
        self.claims.invalidate(&account.id);
        Ok(())
    }

    /// Sets a password the person chose (after the policy check).
    pub async fn set_password(&self, account: &Account, password: Password) -> Result<()> {
        let hash = self.hash(password).await?;
        self.store
            .replace_password(&account.id, &hash, false, None, self.policy.history)
            .await
    }

    /// Sets a temporary password that must be changed at first sign-in and stops
    /// working at `expires_at`.
    pub async fn set_temporary_password(
        &self,
        account: &Account,
        password: Password,
        expires_at: i64,
    ) -> Result<()> {
        let hash = self.hash(password).await?;
        self.store
            .replace_password(
                &account.id,
                &hash,
                true,
                Some(expires_at),
                self.policy.history,
            )
            .await
    }
}
