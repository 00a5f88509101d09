//! A CPython process's threads, from its `_PyRuntime` (found by `crate::targets::runtime`):
//! interpreters -> thread states -> `native_thread_id` (3.10: the tid in glibc's
//! `struct pthread` that `thread_id` points at).

use super::layout::{Layout, ThreadIdent};
use super::memory::Memory;
use super::FramesError;
use std::collections::{HashMap, HashSet};

/// Guards against a corrupt or racing list.
const MAX_INTERPRETERS: usize = 64;
const MAX_THREADS: usize = 4096;

/// Every thread state of every interpreter: native thread id -> `PyThreadState` address.
pub fn thread_states(
    memory: &dyn Memory,
    layout: &Layout,
    runtime: u64,
) -> Result<HashMap<u32, u64>, FramesError> {
    let mut found = HashMap::new();
    let mut seen = HashSet::new();
    let mut interp = memory.read_u64(runtime + layout.runtime_interpreters_head)?;
    let mut interpreters = 0;
    while interp != 0 && interpreters < MAX_INTERPRETERS {
        interpreters += 1;
        let mut tstate = memory.read_u64(interp + layout.interp_threads_head)?;
        // A cycle or a runaway list: stop rather than loop.
        while tstate != 0 && seen.len() < MAX_THREADS && seen.insert(tstate) {
            // Newest first: a state not started yet carries its creator's id (3.10, 3.11)
            // and is overwritten by the creator's own, older state further down.
            if let Some(tid) = thread_tid(memory, layout, tstate)? {
                found.insert(tid, tstate);
            }
            tstate = memory.read_u64(tstate + layout.tstate_next)?;
        }
        interp = memory.read_u64(interp + layout.interp_next)?;
    }
    Ok(found)
}

/// The OS thread of one thread state; `None` when it has none yet.
fn thread_tid(
    memory: &dyn Memory,
    layout: &Layout,
    tstate: u64,
) -> Result<Option<u32>, FramesError> {
    let ident = memory.read_u64(tstate + layout.tstate_native_thread_id)?;
    if ident == 0 {
        return Ok(None);
    }
    let tid = match layout.thread_ident {
        ThreadIdent::Native => u32::try_from(ident).ok(),
        // A thread that just ended may have freed its `struct pthread`: no tid, not an error.
        ThreadIdent::Pthread { tid_offset } => memory.read_u32(ident + tid_offset).ok(),
    };
    Ok(tid.filter(|&tid| tid != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyframes::layout::from_table;
    use crate::pyframes::memory::FixtureMemory;

    #[test]
    fn walks_interpreters_and_threads() {
        let layout = from_table(3, 11).unwrap();
        let mut memory = FixtureMemory::default();
        let runtime = 0x1000;
        let mut rt = vec![0u8; 64];
        rt[40..48].copy_from_slice(&0x2000u64.to_le_bytes());
        memory.put(runtime, rt);
        let mut interp = vec![0u8; 32];
        interp[16..24].copy_from_slice(&0x3000u64.to_le_bytes());
        memory.put(0x2000, interp);
        let tstate = |next: u64, tid: u64| {
            let mut t = vec![0u8; 200];
            t[8..16].copy_from_slice(&next.to_le_bytes());
            t[160..168].copy_from_slice(&tid.to_le_bytes());
            t
        };
        memory.put(0x3000, tstate(0x4000, 101));
        memory.put(0x4000, tstate(0, 102));
        let found = thread_states(&memory, &layout, runtime).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[&101], 0x3000);
        assert_eq!(found[&102], 0x4000);
        // A cycle ends.
        memory.put(0x4000, tstate(0x3000, 102));
        let mut cyclic = FixtureMemory::default();
        let mut rt = vec![0u8; 64];
        rt[40..48].copy_from_slice(&0x2000u64.to_le_bytes());
        cyclic.put(runtime, rt);
        let mut interp = vec![0u8; 32];
        interp[16..24].copy_from_slice(&0x3000u64.to_le_bytes());
        cyclic.put(0x2000, interp);
        cyclic.put(0x3000, tstate(0x4000, 101));
        cyclic.put(0x4000, tstate(0x3000, 102));
        assert_eq!(thread_states(&cyclic, &layout, runtime).unwrap().len(), 2);
    }
}
