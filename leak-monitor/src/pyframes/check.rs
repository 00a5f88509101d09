//! Before a layout from a table is trusted (versions without `_Py_DebugOffsets`: 3.10-3.12),
//! it is checked against the live process, so a patch release or a distribution build that
//! moved a field makes the walk fall back with a reason instead of attributing with a wrong
//! layout: every thread state must name a live task of the process, and the code object of
//! each thread's current frame must be a `code` object.

use super::layout::Layout;
use super::memory::Memory;
use super::FramesError;
use leak_monitor_common::NO_OFFSET;
use std::collections::{HashMap, HashSet};

/// `PyObject.ob_type` and `PyTypeObject.tp_name`, the same in every CPython 3.
const OB_TYPE: u64 = 8;
const TP_NAME: u64 = 24;

/// Tasks of `pid` now (/proc/PID/task).
pub fn live_tasks(pid: i32) -> Result<HashSet<u32>, FramesError> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| FramesError::Proc(format!("/proc/{pid}/task: {e}")))?;
    Ok(dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect())
}

/// Checks a table layout against what was read with it: `threads` (tid -> thread state) and
/// the process's live `tasks`.
pub fn table_layout(
    memory: &dyn Memory,
    layout: &Layout,
    threads: &HashMap<u32, u64>,
    tasks: &HashSet<u32>,
) -> Result<(), FramesError> {
    let version = format!("{}.{}", layout.major, layout.minor);
    let mismatch =
        |what: String| FramesError::Mismatch(format!("CPython {version}'s layout table: {what}"));
    if threads.is_empty() {
        return Err(mismatch("no thread state names a thread".into()));
    }
    let strangers: Vec<u32> = threads
        .keys()
        .copied()
        .filter(|tid| !tasks.contains(tid))
        .collect();
    if !strangers.is_empty() {
        return Err(mismatch(format!(
            "thread states name threads the process does not have: {strangers:?}"
        )));
    }
    let (mut code, mut other) = (0, 0);
    for &tstate in threads.values() {
        match current_code_type(memory, layout, tstate) {
            Some(name) if name == "code" => code += 1,
            Some(_) => other += 1,
            None => {}
        }
    }
    // Frames change under the read; one `code` and nothing else means the layout is right.
    if other > 0 && code == 0 {
        return Err(mismatch(format!(
            "{other} current frames point at no code object"
        )));
    }
    Ok(())
}

/// The type name of the code object of a thread's current frame; `None` when the thread has
/// no frame or a pointer on the way cannot be read.
fn current_code_type(memory: &dyn Memory, layout: &Layout, tstate: u64) -> Option<String> {
    let k = layout.kernel;
    let mut frame = memory.read_u64(tstate + u64::from(k.tstate_frame)).ok()?;
    if k.cframe_current != NO_OFFSET && frame != 0 {
        frame = memory.read_u64(frame + u64::from(k.cframe_current)).ok()?;
    }
    if frame == 0 {
        return None;
    }
    let code = memory.read_u64(frame + u64::from(k.frame_code)).ok()? & !k.code_tag_mask;
    let ty = memory.read_u64(code + OB_TYPE).ok()?;
    let name = memory.read_u64(ty + TP_NAME).ok()?;
    let mut bytes = [0u8; 16];
    memory.read(name, &mut bytes).ok()?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyframes::layout::from_table;
    use crate::pyframes::memory::FixtureMemory;

    /// A 3.10 process: two thread states, the first with a frame whose code object's type is
    /// named `type_name`.
    fn process(type_name: &[u8]) -> (FixtureMemory, HashMap<u32, u64>) {
        let mut memory = FixtureMemory::default();
        let word = |v: u64| v.to_le_bytes().to_vec();
        // tstate->frame (24) -> frame; frame->f_code (32) -> code; code->ob_type -> type;
        // type->tp_name -> the name.
        let mut tstate = vec![0u8; 24];
        tstate.extend(word(0x2000));
        memory.put(0x1000, tstate);
        let mut frame = vec![0u8; 32];
        frame.extend(word(0x3000));
        memory.put(0x2000, frame);
        let mut code = vec![0u8; 8];
        code.extend(word(0x4000));
        memory.put(0x3000, code);
        let mut ty = vec![0u8; 24];
        ty.extend(word(0x5000));
        memory.put(0x4000, ty);
        let mut name = type_name.to_vec();
        name.resize(16, 0);
        memory.put(0x5000, name);
        // A thread with no frame.
        memory.put(0x6000, vec![0u8; 32]);
        (memory, HashMap::from([(101, 0x1000), (102, 0x6000)]))
    }

    #[test]
    fn a_table_that_reads_live_threads_and_a_code_object_passes() {
        let layout = from_table(3, 10).unwrap();
        let (memory, threads) = process(b"code\0");
        let tasks = HashSet::from([100, 101, 102]);
        table_layout(&memory, &layout, &threads, &tasks).unwrap();
    }

    #[test]
    fn a_wrong_table_is_refused_with_the_reason() {
        let layout = from_table(3, 10).unwrap();
        let (memory, threads) = process(b"dict\0");
        let tasks = HashSet::from([101, 102]);
        let err = table_layout(&memory, &layout, &threads, &tasks).unwrap_err();
        assert!(err.to_string().contains("no code object"), "{err}");
        let (memory, threads) = process(b"code\0");
        let err = table_layout(&memory, &layout, &threads, &HashSet::from([101])).unwrap_err();
        assert!(err.to_string().contains("[102]"), "{err}");
        let err = table_layout(&memory, &layout, &HashMap::new(), &HashSet::new()).unwrap_err();
        assert!(err.to_string().contains("no thread state"), "{err}");
    }
}
