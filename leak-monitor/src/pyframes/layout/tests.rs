//! Layout tables sanity, and `_Py_DebugOffsets` decoding from byte fixtures built field by
//! field from the documented struct (Include/internal/pycore_debug_offsets.h).

use super::*;

fn all_tables() -> [Layout; 2] {
    [from_table(3, 11).unwrap(), from_table(3, 12).unwrap()]
}

#[test]
fn tables_exist_for_310_to_312_only() {
    assert!(from_table(3, 9).is_none());
    assert!(from_table(3, 10).is_some());
    assert!(from_table(3, 13).is_none());
    assert!(!has_debug_offsets(3, 12));
    assert!(has_debug_offsets(3, 13));
}

#[test]
fn table_offsets_are_aligned_distinct_and_agree() {
    for layout in all_tables() {
        let k = layout.kernel;
        // Pointers are 8-aligned; `owner` is a char after the int `stacktop` at 64.
        for pointer in [
            k.frame_code,
            k.frame_previous,
            k.frame_instr,
            k.tstate_frame,
        ] {
            assert_eq!(pointer % 8, 0, "{layout:?}");
        }
        assert!(k.frame_owner > 64 && k.frame_owner < 72, "{layout:?}");
        let mut frame = [k.frame_code, k.frame_previous, k.frame_instr, k.frame_owner];
        frame.sort_unstable();
        assert!(frame.windows(2).all(|w| w[0] != w[1]), "{layout:?}");
        assert_eq!(u64::from(k.code_adaptive), layout.code.adaptive);
        assert_ne!(
            k.cframe_current, NO_OFFSET,
            "3.11/3.12 go through _PyCFrame"
        );
        // The code object's pointers precede the bytecode.
        let c = layout.code;
        assert!(c.filename < c.name && c.name < c.qualname && c.qualname < c.linetable);
        assert!(c.linetable < c.adaptive && c.firstlineno < c.filename);
        assert!(layout.tstate_native_thread_id > u64::from(k.tstate_frame));
        assert!(fits_frame_chunk(&k), "{layout:?}");
        // The kernel's copies agree with user space's.
        assert_eq!(u64::from(k.interp_threads_head), layout.interp_threads_head);
        assert_eq!(
            u64::from(k.tstate_native_thread_id),
            layout.tstate_native_thread_id
        );
    }
    let [v311, v312] = all_tables();
    // 3.12 moved f_code first, added C-stack shims and dropped `wstr` from strings.
    assert_eq!(v311.kernel.owner_cstack, NO_OFFSET);
    assert_eq!(v312.kernel.owner_cstack, 3);
    assert_eq!(v312.kernel.frame_code, 0);
    assert_eq!(v311.objects.ascii_size - v312.objects.ascii_size, 8);
}

/// 3.10 frames are `PyFrameObject`s: no `_PyCFrame`, no owner byte, an `int f_lasti` index;
/// threads are named by `pthread_t`; code objects have no `co_qualname`.
#[test]
fn the_310_table_walks_frame_objects() {
    let v310 = from_table(3, 10).unwrap();
    let k = v310.kernel;
    assert_eq!(k.cframe_current, NO_OFFSET);
    assert_eq!(k.frame_owner, NO_OFFSET);
    assert_eq!(k.owner_cstack, NO_OFFSET);
    assert_eq!(k.instr_is_index, 1);
    assert!(fits_frame_chunk(&k));
    assert_eq!(v310.linetable, LineTableFormat::Pairs310);
    assert_eq!(v310.code.qualname, v310.code.name);
    assert_eq!(
        v310.thread_ident,
        ThreadIdent::Pthread {
            tid_offset: GLIBC_PTHREAD_TID
        }
    );
    assert_eq!(
        u64::from(k.tstate_native_thread_id),
        v310.tstate_native_thread_id
    );
    assert_eq!(u64::from(k.interp_threads_head), v310.interp_threads_head);
    // Every other version names threads by tid and points at instructions.
    for layout in all_tables() {
        assert_eq!(layout.thread_ident, ThreadIdent::Native);
        assert_eq!(layout.kernel.instr_is_index, 0);
    }
}

/// Named fields of one fixture: (section, field index, value).
struct Fixture {
    words: Vec<u64>,
}

impl Fixture {
    fn new(version: u64, lengths: [usize; 5]) -> (Fixture, [usize; 5]) {
        let mut starts = [0; 5];
        let mut at = 3;
        for (s, len) in starts.iter_mut().zip(lengths) {
            *s = at;
            at += len;
        }
        let mut words = vec![0u64; DEBUG_OFFSETS_PREFIX / 8];
        words[0] = u64::from_le_bytes(*b"xdebugpy");
        words[1] = version;
        words[2] = 0;
        (Fixture { words }, starts)
    }

    fn set(&mut self, section: usize, index: usize, value: u64) {
        self.words[section + index] = value;
    }

    fn bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// A 3.13-shaped `_Py_DebugOffsets` with distinct values, so a field read from the wrong slot
/// shows up.
fn fixture_313() -> Fixture {
    let (mut f, [runtime, interp, thread, frame, code]) =
        Fixture::new(0x030D_01F0, [3, 13, 9, 6, 10]);
    // runtime_state: size, finalizing, interpreters_head
    f.set(runtime, 0, 1800);
    f.set(runtime, 1, 1704);
    f.set(runtime, 2, 632);
    // interpreter_state: size, id, next, threads_head, gc, ...
    f.set(interp, 0, 90000);
    f.set(interp, 1, 8);
    f.set(interp, 2, 16);
    f.set(interp, 3, 7304);
    f.set(interp, 4, 10000);
    // thread_state: size, prev, next, interp, current_frame, thread_id, native_thread_id, ...
    f.set(thread, 0, 600);
    f.set(thread, 1, 0);
    f.set(thread, 2, 8);
    f.set(thread, 3, 16);
    f.set(thread, 4, 72);
    f.set(thread, 5, 144);
    f.set(thread, 6, 152);
    // interpreter_frame: size, previous, executable, instr_ptr, localsplus, owner
    f.set(frame, 0, 80);
    f.set(frame, 1, 8);
    f.set(frame, 2, 0);
    f.set(frame, 3, 56);
    f.set(frame, 4, 72);
    f.set(frame, 5, 70);
    // code_object: size, filename, name, qualname, linetable, firstlineno, argcount,
    // localsplusnames, localspluskinds, co_code_adaptive
    f.set(code, 0, 208);
    f.set(code, 1, 112);
    f.set(code, 2, 120);
    f.set(code, 3, 128);
    f.set(code, 4, 136);
    f.set(code, 5, 68);
    f.set(code, 9, 200);
    f
}

#[test]
fn decodes_a_313_debug_offsets_fixture() {
    let layout = from_debug_offsets(&fixture_313().bytes()).unwrap();
    assert_eq!((layout.major, layout.minor), (3, 13));
    assert_eq!(layout.runtime_interpreters_head, 632);
    assert_eq!(layout.interp_next, 16);
    assert_eq!(layout.interp_threads_head, 7304);
    assert_eq!(layout.tstate_next, 8);
    assert_eq!(layout.tstate_native_thread_id, 152);
    assert_eq!(
        layout.code,
        CodeLayout {
            filename: 112,
            name: 120,
            qualname: 128,
            linetable: 136,
            firstlineno: 68,
            adaptive: 200,
        }
    );
    assert_eq!(
        layout.kernel,
        PyLayout {
            code_tag_mask: 0,
            tstate_frame: 72,
            cframe_current: NO_OFFSET,
            frame_code: 0,
            frame_previous: 8,
            frame_instr: 56,
            frame_owner: 70,
            owner_cstack: 3,
            code_adaptive: 200,
            tstate_interp: 16,
            interp_threads_head: 7304,
            tstate_native_thread_id: 152,
            instr_is_index: 0,
        }
    );
}

#[test]
fn decodes_a_314_fixture_with_its_longer_sections() {
    let (mut f, [runtime, interp, thread, frame, code]) =
        Fixture::new(0x030E_00F0, [3, 16, 9, 8, 11]);
    f.set(runtime, 0, 2000);
    f.set(runtime, 2, 700);
    f.set(interp, 0, 90000);
    f.set(interp, 2, 24);
    f.set(interp, 3, 8000);
    f.set(thread, 0, 700);
    f.set(thread, 2, 8);
    f.set(thread, 4, 80);
    f.set(thread, 6, 160);
    f.set(frame, 0, 96);
    f.set(frame, 1, 8);
    f.set(frame, 2, 0);
    f.set(frame, 3, 64);
    f.set(frame, 5, 78);
    f.set(code, 0, 240);
    f.set(code, 5, 68);
    f.set(code, 9, 224);
    let layout = from_debug_offsets(&f.bytes()).unwrap();
    assert_eq!(layout.minor, 14);
    assert_eq!(layout.interp_threads_head, 8000);
    assert_eq!(layout.tstate_native_thread_id, 160);
    assert_eq!(layout.kernel.tstate_frame, 80);
    assert_eq!(layout.kernel.frame_instr, 64);
    assert_eq!(layout.kernel.frame_owner, 78);
    assert_eq!(layout.kernel.code_adaptive, 224);
    assert_eq!(layout.kernel.code_tag_mask, 0b11);
    assert!(fits_frame_chunk(&layout.kernel));
    let mut wide = layout.kernel;
    wide.frame_owner = 200;
    assert!(!fits_frame_chunk(&wide));
}

/// The first words of `_PyRuntime` in Debian's CPython 3.15.2 (read from a live process):
/// the thread section grew to 16 fields and `err_stackitem` sits before the frame section.
const RUNTIME_3_15_2: [u64; 60] = [
    u64::from_le_bytes(*b"xdebugpy"),
    0x030F_02F0,
    0,
    346568,
    912,
    936,
    226240,
    7272,
    7264,
    7336,
    7352,
    7400,
    7592,
    7576,
    7584,
    16,
    7736,
    0,
    7752,
    7744,
    7944,
    0,
    888,
    0,
    8,
    16,
    72,
    80,
    88,
    96,
    176,
    184,
    256,
    32,
    36,
    40,
    136,
    288,
    0,
    88,
    8,
    0,
    56,
    80,
    74,
    64,
    0,
    216,
    112,
    120,
    128,
    136,
    68,
    52,
    96,
    104,
    208,
    0,
    16,
    8,
];

#[test]
fn decodes_315_debug_offsets_read_from_a_live_interpreter() {
    let bytes: Vec<u8> = RUNTIME_3_15_2
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let layout = from_debug_offsets(&bytes).unwrap();
    assert_eq!((layout.major, layout.minor), (3, 15));
    assert_eq!(layout.runtime_interpreters_head, 936);
    assert_eq!(layout.interp_threads_head, 7336);
    assert_eq!(layout.tstate_next, 8);
    assert_eq!(layout.tstate_native_thread_id, 184);
    assert_eq!(layout.kernel.tstate_frame, 72);
    assert_eq!(layout.kernel.frame_previous, 8);
    assert_eq!(layout.kernel.frame_code, 0);
    assert_eq!(layout.kernel.frame_instr, 56);
    assert_eq!(layout.kernel.frame_owner, 74);
    assert_eq!(layout.code.filename, 112);
    assert_eq!(layout.code.firstlineno, 68);
    assert_eq!(layout.kernel.code_adaptive, 208);
    assert_eq!(layout.kernel.code_tag_mask, 0b11);
    assert!(fits_frame_chunk(&layout.kernel));
    assert_eq!(
        debug_offset(&bytes, DebugSection::Interpreter, 5).unwrap(),
        7400
    );
    assert_eq!(debug_offset(&bytes, DebugSection::Frame, 4).unwrap(), 80);
    assert_eq!(debug_offset(&bytes, DebugSection::Code, 7).unwrap(), 96);
}

#[test]
fn bad_debug_offsets_are_errors() {
    let good = fixture_313().bytes();
    // No cookie.
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(
        from_debug_offsets(&bad),
        Err(FramesError::DebugOffsets(_))
    ));
    // Truncated anywhere: an error, never a panic.
    for len in 0..good.len() {
        let _ = from_debug_offsets(&good[..len]);
    }
    assert!(from_debug_offsets(&good[..100]).is_err());
    // An unknown future version.
    let mut future = fixture_313();
    future.words[1] = 0x0310_00F0;
    assert!(matches!(
        from_debug_offsets(&future.bytes()),
        Err(FramesError::Unsupported(_))
    ));
    // Free-threaded builds are refused.
    let mut threaded = fixture_313();
    threaded.words[2] = 1;
    assert!(matches!(
        from_debug_offsets(&threaded.bytes()),
        Err(FramesError::FreeThreaded(..))
    ));
    // An offset past its struct's size.
    let mut wild = fixture_313();
    wild.words[3 + 3 + 13 + 6] = 10_000;
    assert!(from_debug_offsets(&wild.bytes()).is_err());
}

/// `measure/measured.txt`: offsetof over each version's headers (`measure/measure.sh`).
fn measured(version: &str) -> Vec<(String, u64)> {
    let text = include_str!("measure/measured.txt");
    let rows: Vec<(String, u64)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split(' ');
            (w.next()? == version).then_some(())?;
            Some((w.next()?.to_owned(), w.next()?.parse().ok()?))
        })
        .collect();
    assert!(
        rows.len() >= 15,
        "{version}: {} measured offsets",
        rows.len()
    );
    rows
}

/// A layout's value for a measured key; `None` for keys a version does not have.
fn layout_value(layout: &Layout, key: &str) -> u64 {
    let k = layout.kernel;
    match key {
        "runtime_interpreters_head" => layout.runtime_interpreters_head,
        "interp_next" => layout.interp_next,
        "interp_threads_head" => {
            assert_eq!(u64::from(k.interp_threads_head), layout.interp_threads_head);
            layout.interp_threads_head
        }
        "tstate_next" => layout.tstate_next,
        "tstate_interp" => u64::from(k.tstate_interp),
        "tstate_frame" => u64::from(k.tstate_frame),
        "tstate_native_thread_id" => {
            assert_eq!(
                u64::from(k.tstate_native_thread_id),
                layout.tstate_native_thread_id
            );
            layout.tstate_native_thread_id
        }
        "cframe_current" => u64::from(k.cframe_current),
        "frame_code" => u64::from(k.frame_code),
        "frame_previous" => u64::from(k.frame_previous),
        "frame_instr" => u64::from(k.frame_instr),
        "frame_owner" => u64::from(k.frame_owner),
        "code_firstlineno" => layout.code.firstlineno,
        "code_filename" => layout.code.filename,
        "code_name" => layout.code.name,
        "code_qualname" => layout.code.qualname,
        "code_linetable" => layout.code.linetable,
        "code_adaptive" => layout.code.adaptive,
        other => panic!("unknown measured key {other}"),
    }
}

/// The first bytes of `_PyRuntime` recorded from a live interpreter (`../fixtures/NAME.txt`).
fn recorded_runtime(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("src/pyframes/fixtures/{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap();
    let runtime = text
        .lines()
        .find_map(|l| l.strip_prefix("runtime "))
        .expect("runtime line");
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("mem {runtime} ")))
        .expect("the _PyRuntime bytes");
    let bytes: Vec<u8> = (0..data.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&data[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(bytes.len(), DEBUG_OFFSETS_PREFIX, "{name}");
    bytes
}

#[test]
fn tables_hold_the_offsets_measured_over_each_versions_headers() {
    for minor in [10, 11, 12] {
        let table = from_table(3, minor).unwrap();
        for (key, value) in measured(&format!("3.{minor}")) {
            assert_eq!(layout_value(&table, &key), value, "3.{minor} {key}");
        }
    }
}

/// 3.13.0's `_Py_DebugOffsets` as recorded from pyenv's interpreter decodes to the offsets
/// measured over its headers.
#[test]
fn decodes_313_debug_offsets_read_from_a_live_interpreter() {
    let bytes = recorded_runtime("pyenv-3.13");
    let layout = from_debug_offsets(&bytes).unwrap();
    assert_eq!((layout.major, layout.minor), (3, 13));
    for (key, value) in measured("3.13") {
        assert_eq!(layout_value(&layout, &key), value, "3.13 {key}");
    }
    assert_eq!(layout.kernel.cframe_current, NO_OFFSET);
    assert_eq!(layout.kernel.code_tag_mask, 0);
    assert!(fits_frame_chunk(&layout.kernel));
}

/// 3.14.10's, as recorded from Debian's interpreter (no headers here: the values are the
/// ones the recording walked to `hold.py`'s lines, see `fixtures`).
#[test]
fn decodes_314_debug_offsets_read_from_a_live_interpreter() {
    let bytes = recorded_runtime("debian-3.14");
    let layout = from_debug_offsets(&bytes).unwrap();
    assert_eq!((layout.major, layout.minor), (3, 14));
    assert_eq!(layout.kernel.code_tag_mask, 0b11);
    assert_eq!(layout.kernel.frame_code, 0);
    assert_eq!(layout.kernel.frame_previous, 8);
    assert!(fits_frame_chunk(&layout.kernel));
    assert_eq!(layout.tstate_next, 8);
    assert_eq!(
        (layout.code.filename, layout.code.name, layout.code.qualname),
        (112, 120, 128)
    );
    assert_eq!(layout.runtime_interpreters_head, 808);
    assert_eq!(layout.interp_threads_head, 7344);
    assert_eq!(layout.tstate_native_thread_id, 160);
    assert_eq!(layout.kernel.tstate_frame, 72);
    assert_eq!(layout.kernel.frame_instr, 56);
    assert_eq!(layout.kernel.frame_owner, 74);
    assert_eq!((layout.code.firstlineno, layout.code.adaptive), (68, 208));
}

/// No free-threaded build can be installed here, so its `_Py_DebugOffsets` are derived from
/// recorded ones: the same bytes with `free_threaded` set, as a 3.13t/3.14t build has them.
/// The refusal is the plain note the report carries: what works, what does not.
#[test]
fn a_free_threaded_build_is_refused_with_a_plain_note() {
    for (name, version) in [("pyenv-3.13", "3.13t"), ("debian-3.14", "3.14t")] {
        let mut bytes = recorded_runtime(name);
        bytes[16] = 1;
        let err = from_debug_offsets(&bytes).unwrap_err();
        assert!(
            matches!(err, FramesError::FreeThreaded(..)),
            "{name}: {err}"
        );
        let note = err.to_string();
        for says in [
            version,
            "Py_GIL_DISABLED",
            "memory, fds, threads and sockets are sampled and traced",
            "neither the in-kernel frame walk nor the heap census",
        ] {
            assert!(note.contains(says), "{name}: {note:?} lacks {says:?}");
        }
    }
}
