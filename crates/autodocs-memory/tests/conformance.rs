//! The port conformance suite, on the in-memory adapter.

use autodocs_conformance::Fixture;
use autodocs_memory::MemoryUnitOfWork;

autodocs_conformance::port_conformance!(|| Fixture::new(MemoryUnitOfWork::new()));

mod rate_windows {
    use autodocs_conformance::WindowsFixture;
    use autodocs_memory::InProcessRateWindows;

    autodocs_conformance::rate_windows_conformance!(|| WindowsFixture::new(
        InProcessRateWindows::new()
    ));
}
