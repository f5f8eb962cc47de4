//! The port conformance suite, on the in-memory adapter.

use autodocs_conformance::Fixture;
use autodocs_memory::MemoryUnitOfWork;

autodocs_conformance::port_conformance!(|| Fixture::new(MemoryUnitOfWork::new()));
