//! Django's `pbkdf2_sha256` password hashes.
//!
//! The format is `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`: the key is
//! PBKDF2-HMAC-SHA256 of the UTF-8 password over the salt's ASCII bytes, 32
//! bytes long, in standard base64 with padding. Hashes made by Django verify
//! here and the reverse, so accounts move between the two backends as they are.

use autodocs_domain::ports::{PasswordCheck, PasswordHasher};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::distr::{Alphanumeric, SampleString as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// The algorithm name Django writes first in the encoded hash.
const ALGORITHM: &str = "pbkdf2_sha256";

/// Length of the derived key, in bytes (SHA-256's output, Django's `dklen`).
const KEY_LEN: usize = 32;

/// Characters in a fresh salt: Django's `ceil(128 / log2(62))`.
const SALT_CHARS: usize = 22;

/// Salt used by [`DjangoPasswordHasher::burn`]; any value does.
const DUMMY_SALT: &str = "autodocsburnsaltXXXXXX";

/// Hashes and checks passwords exactly as Django 5.2's `PBKDF2PasswordHasher`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DjangoPasswordHasher {
    iterations: u32,
}

impl DjangoPasswordHasher {
    /// Django 5.2's default number of iterations.
    pub const DEFAULT_ITERATIONS: u32 = 1_000_000;

    /// The most iterations a stored hash may ask for; above it the hash is
    /// refused rather than letting one row cost minutes of CPU.
    pub const MAX_ITERATIONS: u32 = 10_000_000;

    /// A hasher that makes hashes with `iterations` rounds and asks for the
    /// rehash of any stored hash with another count.
    ///
    /// # Panics
    ///
    /// If `iterations` is zero or above [`Self::MAX_ITERATIONS`]: a
    /// configuration error that must stop the program at start.
    pub fn new(iterations: u32) -> Self {
        assert!(
            (1..=Self::MAX_ITERATIONS).contains(&iterations),
            "PBKDF2 iterations must be between 1 and {}, not {iterations}",
            Self::MAX_ITERATIONS
        );
        Self { iterations }
    }

    /// The number of iterations new hashes use.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Encodes a password with the given salt and iterations, as Django's
    /// `PBKDF2PasswordHasher.encode` does.
    fn encode(password: &str, salt: &str, iterations: u32) -> String {
        let key = derive(password, salt, iterations);
        format!("{ALGORITHM}${iterations}${salt}${}", STANDARD.encode(key))
    }
}

impl Default for DjangoPasswordHasher {
    fn default() -> Self {
        Self::new(Self::DEFAULT_ITERATIONS)
    }
}

impl PasswordHasher for DjangoPasswordHasher {
    fn hash(&self, password: &str) -> String {
        let salt = Alphanumeric.sample_string(&mut rand::rng(), SALT_CHARS);
        Self::encode(password, &salt, self.iterations)
    }

    fn verify(&self, password: &str, encoded: &str) -> PasswordCheck {
        let Some(stored) = Decoded::parse(encoded) else {
            return PasswordCheck::Mismatch;
        };
        let key = derive(password, stored.salt, stored.iterations);
        if !bool::from(key.ct_eq(&stored.key)) {
            return PasswordCheck::Mismatch;
        }
        if stored.iterations != self.iterations || salt_too_weak(stored.salt) {
            PasswordCheck::MatchNeedsRehash
        } else {
            PasswordCheck::Match
        }
    }

    fn burn(&self, password: &str) {
        std::hint::black_box(derive(password, DUMMY_SALT, self.iterations));
    }
}

/// PBKDF2-HMAC-SHA256 of the password over the salt.
fn derive(password: &str, salt: &str, iterations: u32) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut key);
    key
}

/// Django's `must_update_salt`: a salt of less than 128 bits of entropy, as
/// if drawn from 62 characters, is renewed at the next login.
fn salt_too_weak(salt: &str) -> bool {
    salt.chars().count() < SALT_CHARS
}

/// A stored hash, parsed strictly.
struct Decoded<'a> {
    iterations: u32,
    salt: &'a str,
    key: [u8; KEY_LEN],
}

impl<'a> Decoded<'a> {
    /// Parses `pbkdf2_sha256$<iterations>$<salt>$<hash>`; `None` if anything
    /// is off, including a form Django itself would not have written (leading
    /// zeros, non-canonical base64), since Django compares the whole
    /// re-encoded string.
    fn parse(encoded: &'a str) -> Option<Self> {
        let mut fields = encoded.splitn(4, '$');
        let (algorithm, iterations, salt, hash) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if algorithm != ALGORITHM || salt.is_empty() {
            return None;
        }
        let canonical_number = !iterations.is_empty()
            && iterations.bytes().all(|b| b.is_ascii_digit())
            && !iterations.starts_with('0');
        if !canonical_number {
            return None;
        }
        let iterations: u32 = iterations.parse().ok()?;
        if iterations > DjangoPasswordHasher::MAX_ITERATIONS {
            return None;
        }
        let key: [u8; KEY_LEN] = STANDARD.decode(hash).ok()?.try_into().ok()?;
        Some(Self {
            iterations,
            salt,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        password: String,
        encoded: String,
    }

    /// Hashes Django 5.2 made itself.
    fn django_vectors() -> Vec<Vector> {
        let vectors: Vectors = serde_json::from_str(include_str!("testdata/django-pbkdf2.json"))
            .expect("test vectors are valid JSON");
        assert!(!vectors.vectors.is_empty());
        vectors.vectors
    }

    fn iterations_of(encoded: &str) -> u32 {
        encoded
            .split('$')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("vector has iterations")
    }

    #[test]
    fn every_django_vector_verifies() {
        for vector in django_vectors() {
            let hasher = DjangoPasswordHasher::new(iterations_of(&vector.encoded));
            assert_eq!(
                hasher.verify(&vector.password, &vector.encoded),
                PasswordCheck::Match,
                "{}",
                vector.encoded
            );
        }
    }

    #[test]
    fn encode_reproduces_django_exactly() {
        for vector in django_vectors() {
            let fields: Vec<&str> = vector.encoded.split('$').collect();
            let again = DjangoPasswordHasher::encode(
                &vector.password,
                fields[2],
                iterations_of(&vector.encoded),
            );
            assert_eq!(again, vector.encoded);
        }
    }

    #[test]
    fn a_wrong_password_fails() {
        for vector in django_vectors() {
            let hasher = DjangoPasswordHasher::new(iterations_of(&vector.encoded));
            let wrong = format!("{}x", vector.password);
            assert_eq!(
                hasher.verify(&wrong, &vector.encoded),
                PasswordCheck::Mismatch
            );
        }
    }

    #[test]
    fn a_tampered_hash_fails() {
        let encoded = "pbkdf2_sha256$1000$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=";
        let hasher = DjangoPasswordHasher::new(1000);
        assert_eq!(hasher.verify("short", encoded), PasswordCheck::Match);
        let tampered = [
            // one bit of the key
            "pbkdf2_sha256$1000$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ4=",
            // base64 with non-zero trailing bits (decodes to the same key elsewhere)
            "pbkdf2_sha256$1000$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ1=",
            // the salt
            "pbkdf2_sha256$1000$x7Y8z9A0b1C2d3E4f5G6h8$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            // the iterations
            "pbkdf2_sha256$1001$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            // the same number, not as Django writes it
            "pbkdf2_sha256$01000$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            // the algorithm
            "pbkdf2_sha1$1000$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            // the padding
            "pbkdf2_sha256$1000$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0",
            // something after the key
            "pbkdf2_sha256$1000$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=$",
        ];
        for encoded in tampered {
            assert_eq!(
                hasher.verify("short", encoded),
                PasswordCheck::Mismatch,
                "{encoded}"
            );
        }
    }

    #[test]
    fn garbage_fails_without_panicking() {
        let hasher = DjangoPasswordHasher::new(1000);
        let garbage = [
            "",
            "$",
            "$$$",
            "pbkdf2_sha256",
            "pbkdf2_sha256$",
            "pbkdf2_sha256$$$",
            "pbkdf2_sha256$1000$$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            "pbkdf2_sha256$0$salt$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            "pbkdf2_sha256$-5$salt$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            "pbkdf2_sha256$+5$salt$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            "pbkdf2_sha256$ 5$salt$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            "pbkdf2_sha256$99999999999999999999$salt$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            "pbkdf2_sha256$10000001$salt$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
            "pbkdf2_sha256$1000$salt$not base64!",
            "pbkdf2_sha256$1000$salt$AAAA",
            "pbkdf2_sha256$1000$salt$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0AAAA=",
            "bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuv",
            "argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA",
            "!unusablepassword",
            "pbkdf2_sha256$1000$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=\u{0}",
            "pbkdf2_sha256$１０００$x7Y8z9A0b1C2d3E4f5G6h7$46iZIADYxgBSMWOYlx5ApnTPWxcirX80JIO0zoZ8EZ0=",
        ];
        for encoded in garbage {
            assert_eq!(
                hasher.verify("short", encoded),
                PasswordCheck::Mismatch,
                "{encoded:?}"
            );
        }
    }

    #[test]
    fn hash_then_verify_round_trips() {
        let hasher = DjangoPasswordHasher::new(1000);
        for password in [
            "correct horse battery staple",
            "",
            "pässwörd ✓",
            "with$dollar",
        ] {
            let encoded = hasher.hash(password);
            let fields: Vec<&str> = encoded.split('$').collect();
            assert_eq!(fields.len(), 4, "{encoded}");
            assert_eq!(fields[0], "pbkdf2_sha256");
            assert_eq!(fields[1], "1000");
            assert_eq!(fields[2].len(), 22);
            assert!(
                fields[2].bytes().all(|b| b.is_ascii_alphanumeric()),
                "{encoded}"
            );
            assert_eq!(fields[3].len(), 44);
            assert_eq!(hasher.verify(password, &encoded), PasswordCheck::Match);
            assert_eq!(hasher.verify("other", &encoded), PasswordCheck::Mismatch);
        }
    }

    #[test]
    fn salts_are_fresh() {
        let hasher = DjangoPasswordHasher::new(1);
        assert_ne!(hasher.hash("same"), hasher.hash("same"));
    }

    #[test]
    fn fewer_iterations_than_configured_need_a_rehash() {
        let hasher = DjangoPasswordHasher::new(DjangoPasswordHasher::DEFAULT_ITERATIONS);
        let stored = "pbkdf2_sha256$600000$saltsaltsaltsaltsalt12$QYjPxqyooAr7OH1vK2Hhs0bltbGCedYiyDBtkWVwl7E=";
        assert_eq!(
            hasher.verify("pässwörd ✓ unicode", stored),
            PasswordCheck::MatchNeedsRehash
        );
        assert_eq!(hasher.verify("wrong", stored), PasswordCheck::Mismatch);
    }

    #[test]
    fn a_short_salt_needs_a_rehash() {
        let hasher = DjangoPasswordHasher::new(1000);
        let stored = DjangoPasswordHasher::encode("secret", "shortsalt", 1000);
        assert_eq!(
            hasher.verify("secret", &stored),
            PasswordCheck::MatchNeedsRehash
        );
    }

    #[test]
    fn burn_runs() {
        DjangoPasswordHasher::new(1000).burn("anything");
    }

    #[test]
    #[should_panic(expected = "PBKDF2 iterations")]
    fn zero_iterations_is_a_configuration_error() {
        let _ = DjangoPasswordHasher::new(0);
    }
}
