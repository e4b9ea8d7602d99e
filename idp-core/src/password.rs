//! Passwords that people choose: argon2id hashing and verification here, the policy
//! and temporary passwords in [`policy`] (re-exported). Machine-generated secrets
//! are not passwords and live in [`crate::secret`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash as PhcHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use serde::Deserialize;
use tokio::sync::Semaphore;

pub mod policy;

pub use policy::{PasswordPolicy, PolicyContext, PolicyViolation, generate_temporary};

/// Why hashing or verifying could not be done (as opposed to a wrong password,
/// which is [`Verification::Invalid`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error(
        "password hash parameters m={memory_kib} KiB, t={iterations}, p={parallelism} are weaker \
         than the minimum m=19456 KiB, t=2, p=1"
    )]
    WeakParams {
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
    #[error("invalid password hash parameters: {0}")]
    InvalidParams(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("the stored password hash is not a valid PHC string")]
    MalformedHash,
    #[error("the stored password hash uses an unsupported algorithm {found:?}")]
    UnsupportedAlgorithm { found: String },
}

impl PasswordError {
    /// None of these is the person's fault, so the page says only that something
    /// went wrong on our side.
    pub fn message_it(&self) -> &'static str {
        "Si è verificato un errore interno durante la verifica della password. Riprovare più tardi."
    }
}

/// A password typed by a person. `Debug` prints `Password(***)` and there is no
/// `Display`, so it cannot end up in a log line or a page by accident.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(value: String) -> Password {
        Password(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A password hash as a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
/// `Debug` shows only the algorithm: the hash is what an attacker would crack.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string read back from storage; it is parsed when verified.
    pub fn from_phc(phc: String) -> PasswordHash {
        PasswordHash(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn algorithm(&self) -> &str {
        self.0
            .strip_prefix('$')
            .and_then(|rest| rest.split('$').next())
            .filter(|alg| {
                alg.len() <= 16 && alg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .unwrap_or("?")
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({}…)", self.algorithm())
    }
}

const MIN_MEMORY_KIB: u32 = 19456;
const MIN_ITERATIONS: u32 = 2;
const MIN_PARALLELISM: u32 = 1;

/// Argon2id cost parameters. The default is the minimum we accept, which is
/// OWASP's recommended argon2id configuration (19 MiB, 2 passes, 1 lane).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            memory_kib: MIN_MEMORY_KIB,
            iterations: MIN_ITERATIONS,
            parallelism: MIN_PARALLELISM,
        }
    }
}

impl HashParams {
    /// Refuses a configuration weaker than the default, so that a typo in a config
    /// file cannot quietly make every stored hash cheap to crack.
    pub fn validate(&self) -> Result<(), PasswordError> {
        if self.memory_kib < MIN_MEMORY_KIB
            || self.iterations < MIN_ITERATIONS
            || self.parallelism < MIN_PARALLELISM
        {
            return Err(PasswordError::WeakParams {
                memory_kib: self.memory_kib,
                iterations: self.iterations,
                parallelism: self.parallelism,
            });
        }
        self.argon2_params().map(|_| ())
    }

    fn argon2_params(&self) -> Result<Params, PasswordError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::InvalidParams(e.to_string()))
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches. `needs_rehash` says the stored hash was made with
    /// another algorithm or other costs: store a fresh hash now, while the
    /// plain password is at hand.
    Valid {
        needs_rehash: bool,
    },
    Invalid,
}

/// Hashes and verifies passwords with argon2id. Each call is deliberately slow
/// (tens of milliseconds of CPU and ~19 MiB of memory): async callers go through
/// [`PasswordHasher::run`], which runs the work on a blocking thread and lets only as
/// many run at once as there are cores to run them.
#[derive(Clone)]
pub struct PasswordHasher {
    params: HashParams,
    argon2: Argon2<'static>,
    /// The hash that [`PasswordHasher::dummy_verify`] checks against, made on first use.
    dummy: Arc<OnceLock<Option<PasswordHash>>>,
    /// One permit per core that may run argon2 (shared by clones). More hashes at once
    /// than cores only add memory (each holds its ~19 MiB) and latency to all of them.
    slots: Arc<Semaphore>,
    /// Argon2 working memory kept between calls, at most one buffer per slot. Without
    /// it every call allocates and frees ~19 MiB; the allocator keeps such blocks in
    /// per-thread arenas, so the blocking pool's many threads ended up holding
    /// gigabytes. The argon2 crate takes caller memory for exactly this purpose.
    memory: Arc<Mutex<Vec<WorkingMemory>>>,
    /// What argon2 has cost so far (shared by clones): see [`PasswordHasher::work_done`].
    work: Arc<WorkCounters>,
}

/// What argon2 has cost a [`PasswordHasher`] (and its clones) since it was made: how many
/// computations (hashes, verifications, the timing-only verifications of unknown
/// usernames) and the CPU time of the threads while they ran them. For capacity planning
/// (`/metrics`), and for the benchmark, which compares it with the server's whole CPU
/// during logins: what is not argon2 is the cost of everything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashWork {
    pub computations: u64,
    pub cpu: Duration,
}

#[derive(Default)]
struct WorkCounters {
    computations: AtomicU64,
    cpu_nanos: AtomicU64,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

const ARGON2ID: &str = "argon2id";

impl PasswordHasher {
    pub fn new(params: HashParams) -> Result<Self, PasswordError> {
        params.validate()?;
        Self::build(params)
    }

    /// Skips the minimum-strength check, because hashing at 19 MiB in every test
    /// would make the suite slow. Never available outside tests.
    #[cfg(test)]
    pub(crate) fn new_unchecked(params: HashParams) -> Self {
        Self::build(params).expect("test hash parameters must be valid for argon2")
    }

    /// A hasher cheap enough for tests anywhere in the crate.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self::new_unchecked(HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
    }

    fn build(params: HashParams) -> Result<Self, PasswordError> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.argon2_params()?);
        Ok(PasswordHasher {
            params,
            argon2,
            dummy: Arc::new(OnceLock::new()),
            slots: Arc::new(Semaphore::new(argon2_slots())),
            memory: Arc::new(Mutex::new(Vec::new())),
            work: Arc::new(WorkCounters::default()),
        })
    }

    /// What argon2 has cost so far: computations, and their CPU time.
    pub fn work_done(&self) -> HashWork {
        HashWork {
            computations: self.work.computations.load(Ordering::Relaxed),
            cpu: Duration::from_nanos(self.work.cpu_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Runs `work` (hashing, verifying, a policy check that verifies) on a blocking
    /// thread once one of the argon2 slots is free, so that at most one argon2 runs
    /// per available core (`available_parallelism`, which honours CPU affinity).
    pub async fn run<R, F>(self: &Arc<Self>, work: F) -> Result<R, PasswordError>
    where
        F: FnOnce(&PasswordHasher) -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        let hasher = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let result = work(&hasher);
            drop(permit);
            result
        })
        .await
        .map_err(|e| PasswordError::Hashing(e.to_string()))
    }

    /// Argon2 of `password` and `salt` with `argon2`'s costs into `out`, in working
    /// memory taken from (and given back to) the pool.
    fn compute(
        &self,
        argon2: &Argon2<'_>,
        params: &Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> argon2::Result<()> {
        let taken = self
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut memory = match taken {
            Some(m) if m.len() >= params.block_count() => m,
            _ => WorkingMemory::new(params.block_count()),
        };
        let started = thread_cpu_time();
        let result = argon2.hash_password_into_with_memory(password, salt, out, memory.blocks());
        let spent = thread_cpu_time().saturating_sub(started);
        self.work.computations.fetch_add(1, Ordering::Relaxed);
        self.work.cpu_nanos.fetch_add(
            u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let mut pool = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        // A buffer grown for a costlier stored hash is not kept past the usual size.
        if pool.len() < argon2_slots() && memory.len() <= self.params.memory_kib as usize {
            pool.push(memory);
        }
        result
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    pub fn hash(&self, password: &Password) -> Result<PasswordHash, PasswordError> {
        let hashing = |e: &dyn fmt::Display| PasswordError::Hashing(e.to_string());
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .as_salt()
            .decode_b64(&mut salt_bytes)
            .map_err(|e| hashing(&e))?;
        let params = self.argon2_params();
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = Output::init_with(output_len, |out| {
            self.compute(
                &self.argon2,
                &params,
                password.expose().as_bytes(),
                salt_bytes,
                out,
            )
            .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .map_err(|e| hashing(&e))?;
        let phc = PhcHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: (&params).try_into().map_err(|e| hashing(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(PasswordHash(phc.to_string()))
    }

    fn argon2_params(&self) -> Params {
        self.argon2.params().clone()
    }

    /// Verifies with the costs recorded in the stored hash (so that old hashes
    /// keep working after the configuration is raised) and reports whether the
    /// stored hash should be replaced.
    pub fn verify(
        &self,
        password: &Password,
        stored: &PasswordHash,
    ) -> Result<Verification, PasswordError> {
        let phc = PhcHash::new(stored.as_str()).map_err(|_| PasswordError::MalformedHash)?;
        let algorithm = phc.algorithm.as_str();
        if !matches!(algorithm, "argon2id" | "argon2i" | "argon2d") {
            return Err(PasswordError::UnsupportedAlgorithm {
                found: algorithm.to_string(),
            });
        }
        // What `PasswordVerifier::verify_password` does, with pooled working memory:
        // the costs, salt and output length come from the stored hash.
        let hashing = |e: &dyn fmt::Display| PasswordError::Hashing(e.to_string());
        let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
            return Err(PasswordError::MalformedHash);
        };
        let argon_algorithm = Algorithm::try_from(phc.algorithm).map_err(|e| hashing(&e))?;
        let version = phc
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| hashing(&e))?
            .unwrap_or_default();
        let params = Params::try_from(&phc).map_err(|e| hashing(&e))?;
        let argon2 = Argon2::new(argon_algorithm, version, params.clone());
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| hashing(&e))?;
        let computed = Output::init_with(expected.len(), |out| {
            self.compute(
                &argon2,
                &params,
                password.expose().as_bytes(),
                salt_bytes,
                out,
            )
            .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .map_err(|e| hashing(&e))?;
        // `Output`'s equality is constant-time.
        if computed == expected {
            Ok(Verification::Valid {
                needs_rehash: self.needs_rehash(&phc),
            })
        } else {
            Ok(Verification::Invalid)
        }
    }

    fn needs_rehash(&self, phc: &PhcHash<'_>) -> bool {
        let Ok(stored) = Params::try_from(phc) else {
            return true;
        };
        phc.algorithm.as_str() != ARGON2ID
            || phc.version != Some(Version::V0x13.into())
            || stored.m_cost() != self.params.memory_kib
            || stored.t_cost() != self.params.iterations
            || stored.p_cost() != self.params.parallelism
    }

    /// Spends the time of a real verification and throws the result away. Called
    /// when a login names an unknown username, so that response time does not
    /// tell which usernames exist. The fixed hash is made on the first call (that
    /// one call costs a hash more; it happens once per process).
    pub fn dummy_verify(&self, password: &Password) {
        let dummy = self.dummy.get_or_init(|| {
            self.hash(&Password::new("dummy password for timing".to_string()))
                .ok()
        });
        match dummy {
            Some(hash) => {
                let _ = self.verify(password, hash);
            }
            // Cannot happen with parameters that passed validation; hashing costs
            // about the same as verifying, so timing is still preserved.
            None => {
                let _ = self.hash(password);
            }
        }
    }
}

/// Argon2 working memory: `count` zeroed blocks (~19 MiB by default) on transparent
/// huge pages where the kernel grants them (`madvise` mode, the usual default): argon2
/// reads blocks all over its memory, and with 4 KiB pages such reads often miss the
/// TLB. The advice is given before the first write, so the pages are huge from the
/// start; it is only advice, and a kernel that refuses it leaves 4 KiB pages.
///
/// The kernel backs with a huge page only a whole 2 MiB-aligned stretch, and the
/// allocator's blocks start wherever they fall: sized to the blocks alone, 2 to 3 of the
/// 19 MiB stayed on small pages, more or fewer from one process to the next (seen: 16
/// MiB huge in the server, 18 in the benchmark's argon2 floor). So the allocation has
/// room for the blocks to start and end on 2 MiB boundaries, at the price of up to
/// 2 MiB (the stretch before the start) resident beside them.
struct WorkingMemory {
    buffer: Vec<Block>,
    /// Where the blocks start in `buffer`: its first block that starts on a 2 MiB
    /// boundary or within the KiB after one (the allocator aligns blocks to 64 bytes,
    /// not to their size), so that every 2 MiB stretch the blocks touch is whole.
    start: usize,
    /// How many blocks it was made for.
    count: usize,
}

/// The stretch a transparent huge page covers (x86-64 and most arm64 kernels).
const HUGE_PAGE: usize = 2 << 20;

impl WorkingMemory {
    fn new(count: usize) -> Self {
        let block = std::mem::size_of::<Block>();
        let per_huge_page = HUGE_PAGE / block;
        if count < per_huge_page {
            // Less than one huge page (the cheap costs of the tests): nothing to align.
            return WorkingMemory {
                buffer: vec![Block::default(); count],
                start: 0,
                count,
            };
        }
        // The blocks rounded up to whole huge pages, and a huge page's worth before them
        // to reach a boundary (the start is less than a huge page in: `start` is at
        // most `per_huge_page`, so the rounded blocks always fit).
        let rounded = count.div_ceil(per_huge_page) * per_huge_page;
        let capacity = per_huge_page + rounded;
        let mut buffer: Vec<Block> = Vec::with_capacity(capacity);
        let address = buffer.as_ptr() as usize;
        #[cfg(target_os = "linux")]
        advise_huge_pages(buffer.as_mut_ptr().cast(), capacity * block);
        let start = (address.next_multiple_of(HUGE_PAGE) - address).div_ceil(block);
        buffer.resize(start + rounded, Block::default());
        WorkingMemory {
            buffer,
            start,
            count,
        }
    }

    /// How many blocks it was made for.
    fn len(&self) -> usize {
        self.count
    }

    fn blocks(&mut self) -> &mut [Block] {
        &mut self.buffer[self.start..self.start + self.count]
    }
}

/// `madvise(MADV_HUGEPAGE)` over the whole pages inside `[start, start + len)`.
#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    let first = (start as usize).div_ceil(PAGE) * PAGE;
    let end = (start as usize + len) / PAGE * PAGE;
    if end > first {
        // SAFETY: the range lies inside an allocation this function's caller owns and
        // has not handed out; MADV_HUGEPAGE changes no contents and no permissions,
        // only how the kernel backs the pages, and its failure is harmless.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

/// The CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`): time the
/// thread spent waiting for the core is not counted, unlike a wall clock's.
#[cfg(unix)]
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to write; the clock id is a
    // constant every Unix this builds on knows. On failure `now` stays zero.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now);
    }
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// Elsewhere, no per-thread clock: the CPU time is not counted (reads zero).
#[cfg(not(unix))]
fn thread_cpu_time() -> Duration {
    Duration::ZERO
}

/// How many argon2 computations may run at once: the cores this process may use.
fn argon2_slots() -> usize {
    static SLOTS: OnceLock<usize> = OnceLock::new();
    *SLOTS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::new(s.to_string())
    }

    fn no_context() -> PolicyContext<'static> {
        PolicyContext {
            username: None,
            names: &[],
            fiscal_code: None,
            previous_hashes: &[],
        }
    }

    #[test]
    fn a_password_is_hashed_as_argon2id_and_verifies() {
        let hasher = PasswordHasher::for_tests();
        let hash = hasher.hash(&pw("Corretta#2024")).unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            hasher.verify(&pw("Corretta#2024"), &hash),
            Ok(Verification::Valid {
                needs_rehash: false
            })
        );
        assert_eq!(
            hasher.verify(&pw("Sbagliata#2024"), &hash),
            Ok(Verification::Invalid)
        );
    }

    #[test]
    fn the_pooled_huge_page_memory_gives_argon2s_own_answer_at_the_default_cost() {
        let params = HashParams::default();
        let hasher = PasswordHasher::new(params).unwrap();
        let argon2 = hasher.argon2.clone();
        let costs = hasher.argon2_params();
        let mut memory = WorkingMemory::new(costs.block_count());
        assert_eq!(memory.len(), costs.block_count());
        let blocks = memory.blocks();
        assert!(
            (blocks.as_ptr() as usize) % HUGE_PAGE < std::mem::size_of::<Block>(),
            "the blocks start within a block of a 2 MiB boundary"
        );
        assert!(blocks.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)));
        let salt = b"sale-di-prova-16";
        let mut expected = [0u8; 32];
        argon2
            .hash_password_into(b"Corretta#2024", salt, &mut expected)
            .unwrap();
        // Twice: the second call reuses the pooled buffer the first one left behind.
        for _ in 0..2 {
            let mut out = [0u8; 32];
            hasher
                .compute(&argon2, &costs, b"Corretta#2024", salt, &mut out)
                .unwrap();
            assert_eq!(out, expected);
        }
        assert_eq!(
            hasher.memory.lock().unwrap().len(),
            1,
            "kept for the next call"
        );
    }

    #[test]
    fn every_argon2_computation_and_its_cpu_time_are_counted_across_clones() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        assert_eq!(hasher.work_done(), HashWork::default());
        let hash = hasher.hash(&pw("Corretta#2024")).unwrap();
        let clone = hasher.clone();
        let _ = clone.verify(&pw("Sbagliata#2024"), &hash).unwrap();
        clone.dummy_verify(&pw("Sbagliata#2024"));
        // hash, verify, and the dummy check: a first one makes its fixed hash too
        let work = hasher.work_done();
        assert_eq!(work.computations, 4);
        // 19 MiB and two passes take milliseconds of CPU, whatever the machine.
        assert!(work.cpu > Duration::from_micros(500), "{work:?}");
        assert!(work.cpu < Duration::from_secs(60), "{work:?}");
        let _ = hasher.verify(&pw("Corretta#2024"), &hash).unwrap();
        let more = clone.work_done();
        assert_eq!(more.computations, 5);
        assert!(more.cpu > work.cpu);
    }

    #[test]
    fn the_same_password_gets_a_different_salt_each_time() {
        let hasher = PasswordHasher::for_tests();
        let a = hasher.hash(&pw("Corretta#2024")).unwrap();
        let b = hasher.hash(&pw("Corretta#2024")).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn the_default_parameters_hash_and_verify_for_real() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let hash = hasher.hash(&pw("Corretta#2024")).unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            hasher.verify(&pw("Corretta#2024"), &hash),
            Ok(Verification::Valid {
                needs_rehash: false
            })
        );
    }

    #[test]
    fn a_stored_hash_with_other_costs_verifies_but_asks_for_a_rehash() {
        let old = PasswordHasher::for_tests();
        let hash = old.hash(&pw("Corretta#2024")).unwrap();
        for params in [
            HashParams {
                memory_kib: 128,
                iterations: 1,
                parallelism: 1,
            },
            HashParams {
                memory_kib: 64,
                iterations: 2,
                parallelism: 1,
            },
            HashParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 2,
            },
        ] {
            let current = PasswordHasher::new_unchecked(params);
            assert_eq!(
                current.verify(&pw("Corretta#2024"), &hash),
                Ok(Verification::Valid { needs_rehash: true }),
                "{params:?}"
            );
            assert_eq!(
                current.verify(&pw("Sbagliata#2024"), &hash),
                Ok(Verification::Invalid)
            );
        }
    }

    #[test]
    fn a_stored_argon2i_hash_verifies_but_asks_for_a_rehash() {
        let params = Params::new(64, 1, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let phc = argon2::PasswordHasher::hash_password(&argon2i, b"Corretta#2024", &salt)
            .unwrap()
            .to_string();
        let hasher = PasswordHasher::for_tests();
        assert_eq!(
            hasher.verify(&pw("Corretta#2024"), &PasswordHash::from_phc(phc)),
            Ok(Verification::Valid { needs_rehash: true })
        );
    }

    #[test]
    fn a_malformed_or_foreign_hash_is_an_error_not_a_wrong_password() {
        let hasher = PasswordHasher::for_tests();
        assert_eq!(
            hasher.verify(&pw("x"), &PasswordHash::from_phc("not a hash".to_string())),
            Err(PasswordError::MalformedHash)
        );
        let bcrypt = PasswordHash::from_phc(
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".to_string(),
        );
        assert!(hasher.verify(&pw("x"), &bcrypt).is_err());
        let scrypt = PasswordHash::from_phc("$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E".to_string());
        assert!(matches!(
            hasher.verify(&pw("x"), &scrypt),
            Err(PasswordError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn parameters_weaker_than_the_minimum_are_refused() {
        assert_eq!(HashParams::default().validate(), Ok(()));
        assert!(
            HashParams {
                memory_kib: 65536,
                iterations: 3,
                parallelism: 4
            }
            .validate()
            .is_ok()
        );
        for weak in [
            HashParams {
                memory_kib: 19455,
                ..HashParams::default()
            },
            HashParams {
                iterations: 1,
                ..HashParams::default()
            },
            HashParams {
                parallelism: 0,
                ..HashParams::default()
            },
        ] {
            assert!(
                matches!(weak.validate(), Err(PasswordError::WeakParams { .. })),
                "{weak:?}"
            );
            assert!(PasswordHasher::new(weak).is_err());
        }
    }

    #[test]
    fn a_dummy_verification_runs_and_reuses_its_hash() {
        let hasher = PasswordHasher::for_tests();
        hasher.dummy_verify(&pw("whatever"));
        let first = hasher.dummy.get().cloned();
        assert!(matches!(first, Some(Some(_))));
        hasher.dummy_verify(&pw("something else"));
        assert_eq!(hasher.dummy.get().cloned(), first);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_argon2_runs_at_once_than_there_are_cores() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let hasher = Arc::new(PasswordHasher::for_tests());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..argon2_slots() * 4 + 4 {
            let (hasher, in_flight, most) = (hasher.clone(), in_flight.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                hasher
                    .run(move |h| {
                        most.fetch_max(in_flight.fetch_add(1, SeqCst) + 1, SeqCst);
                        let hash = h.hash(&pw("Segreta#2024")).unwrap();
                        // Long enough for unbounded runs to overlap.
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        let verified = h.verify(&pw("Segreta#2024"), &hash).unwrap();
                        in_flight.fetch_sub(1, SeqCst);
                        verified
                    })
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Verification::Valid { .. }));
        }
        let most = most.load(SeqCst);
        assert!((1..=argon2_slots()).contains(&most), "{most} ran at once");
        let kept = hasher.memory.lock().unwrap().len();
        assert!(
            (1..=argon2_slots()).contains(&kept),
            "{kept} working buffers kept"
        );
    }

    #[test]
    fn passwords_and_hashes_never_show_in_debug_output() {
        let password = pw("Segreta#2024");
        let shown = format!("{password:?}");
        assert_eq!(shown, "Password(***)");
        let hasher = PasswordHasher::for_tests();
        let hash = hasher.hash(&password).unwrap();
        let shown = format!("{hash:?} {hasher:?}");
        assert!(shown.contains("PasswordHash(argon2id…)"));
        assert!(!shown.contains(hash.as_str()));
        assert!(!shown.contains("$argon2id$"));
        let ctx = PolicyContext {
            previous_hashes: std::slice::from_ref(&hash),
            ..no_context()
        };
        assert!(!format!("{ctx:?}").contains(hash.as_str()));
    }

    #[test]
    fn a_password_deserializes_from_a_plain_string() {
        let p: Password = serde_json::from_str("\"Segreta#2024\"").unwrap();
        assert_eq!(p.expose(), "Segreta#2024");
    }
}
