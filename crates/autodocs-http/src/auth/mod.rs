//! Authentication adapters: Django-compatible password hashes and
//! SimpleJWT-compatible tokens.

pub mod jwt;
pub mod password;
pub mod throttled;

pub use jwt::JwtTokenService;
pub use password::DjangoPasswordHasher;
pub use throttled::{BoundedHasher, HashQueue, QueueFull};
