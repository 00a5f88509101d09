//! The kernel's Python maps from user space: `PY_LAYOUT` (tgid -> where its CPython keeps the
//! frame chain) and `PY_THREADS` (tid -> its `PyThreadState`). A cloneable handle, so the
//! frame reader (`crate::pyframes`) keeps them current from its own thread.

use aya::maps::{HashMap as BpfHashMap, MapData};
use leak_monitor_common::PyLayout;
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a map update failed.
#[derive(Debug, thiserror::Error)]
#[error("updating the kernel's {map} map: {why}")]
pub struct PyMapsError {
    pub map: &'static str,
    pub why: String,
}

struct Maps {
    threads: BpfHashMap<MapData, u32, u64>,
    layouts: BpfHashMap<MapData, u32, PyLayout>,
}

/// Shared handle on the two maps.
#[derive(Clone)]
pub struct PyMaps {
    inner: Arc<Mutex<Maps>>,
}

impl PyMaps {
    pub(super) fn new(
        threads: BpfHashMap<MapData, u32, u64>,
        layouts: BpfHashMap<MapData, u32, PyLayout>,
    ) -> PyMaps {
        PyMaps {
            inner: Arc::new(Mutex::new(Maps { threads, layouts })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Maps> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lets the kernel walk the frames of process `tgid`.
    pub fn set_layout(&self, tgid: u32, layout: PyLayout) -> Result<(), PyMapsError> {
        self.lock()
            .layouts
            .insert(tgid, layout, 0)
            .map_err(|e| PyMapsError {
                map: "PY_LAYOUT",
                why: e.to_string(),
            })
    }

    /// Stops the walk for `tgid` (absent already is fine).
    pub fn remove_layout(&self, tgid: u32) {
        let _ = self.lock().layouts.remove(&tgid);
    }

    pub fn set_thread(&self, tid: u32, tstate: u64) -> Result<(), PyMapsError> {
        self.lock()
            .threads
            .insert(tid, tstate, 0)
            .map_err(|e| PyMapsError {
                map: "PY_THREADS",
                why: e.to_string(),
            })
    }

    pub fn remove_thread(&self, tid: u32) {
        let _ = self.lock().threads.remove(&tid);
    }
}
