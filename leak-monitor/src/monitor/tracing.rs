//! The run's eBPF tracing, shared by its monitors: the tracer and the table of Python sites the
//! kernel's frames were resolved to (`attribution::kernel_sites`), installed as the tracer's
//! resolver.

use crate::attribution::kernel_sites::{KernelSites, KernelSitesHandle};
use crate::capabilities::Privileges;
use crate::events::{Engagement, Tracer, TracerError};

pub struct Tracing {
    pub tracer: Tracer,
    pub sites: KernelSitesHandle,
    /// `--track-allocations`: Python targets get the allocator probes too.
    pub allocations: bool,
}

impl Tracing {
    /// Loads and attaches the kernel programs, with the kernel-frames resolver installed.
    pub fn start(
        privileges: Privileges,
        allocations: bool,
        engagement: Engagement,
    ) -> Result<Tracing, TracerError> {
        let tracer = Tracer::start_with(privileges, engagement)?;
        let (resolver, sites) = KernelSites::new();
        tracer.set_resolver(Box::new(resolver));
        Ok(Tracing {
            tracer,
            sites,
            allocations,
        })
    }
}
