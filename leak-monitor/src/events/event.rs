//! Typed events: the kernel's fixed-size `Event` records decoded into what they mean. A
//! creating event may arrive as a longer `StackedEvent` that carries the thread's Python stack
//! as read in the kernel; the two are told apart by record length.

use crate::sampling::FdKind;
use leak_monitor_common::{kind, nr, Event, PyStack, StackedEvent};

/// One thing a followed process did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A new fd. `copied_from` is the source fd of dup/dup2/dup3/fcntl(F_DUPFD*).
    FdOpened {
        fd: i32,
        kind: FdKind,
        call: Syscall,
        copied_from: Option<i32>,
    },
    FdClosed {
        fd: i32,
    },
    FdRangeClosed {
        first: i32,
        last: i32,
    },
    ThreadCreated {
        child: u32,
    },
    ThreadExited,
    Exec,
    Forked {
        child: u32,
    },
    PageFault {
        address: u64,
    },
    /// The allocator returned a tracked heap block (allocation tracking).
    Allocated {
        address: u64,
        size: u64,
    },
    /// A tracked heap block was freed.
    Freed {
        address: u64,
    },
    /// `pages` more new pages from `start`, continuing the thread's fault on the page below.
    PageRun {
        start: u64,
        pages: u64,
    },
    /// Memory given back (munmap, madvise DONTNEED/FREE/REMOVE).
    Unmapped {
        start: u64,
        len: u64,
    },
    BrkMoved {
        brk: u64,
    },
    Remapped {
        old_start: u64,
        old_len: u64,
        new_start: u64,
        new_len: u64,
    },
}

/// A decoded event with who did it and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traced {
    pub tgid: u32,
    pub tid: u32,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub event: TraceEvent,
    /// The creating thread's Python stack, read in the kernel at the event (`None` for plain
    /// records: no stack was known or the event is not a creating one).
    pub stack: Option<PyStack>,
}

/// The syscall that made an fd, for reports ("accept4", "openat") and per-event counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Syscall(pub u32);

impl Syscall {
    pub fn name(self) -> &'static str {
        match u64::from(self.0) {
            nr::OPEN => "open",
            nr::OPENAT => "openat",
            nr::OPENAT2 => "openat2",
            nr::CREAT => "creat",
            nr::SOCKET => "socket",
            nr::SOCKETPAIR => "socketpair",
            nr::ACCEPT => "accept",
            nr::ACCEPT4 => "accept4",
            nr::PIPE => "pipe",
            nr::PIPE2 => "pipe2",
            nr::DUP => "dup",
            nr::DUP2 => "dup2",
            nr::DUP3 => "dup3",
            nr::FCNTL => "fcntl",
            nr::EVENTFD | nr::EVENTFD2 => "eventfd",
            nr::EPOLL_CREATE | nr::EPOLL_CREATE1 => "epoll_create",
            nr::TIMERFD_CREATE => "timerfd_create",
            nr::SIGNALFD | nr::SIGNALFD4 => "signalfd",
            nr::MEMFD_CREATE => "memfd_create",
            nr::INOTIFY_INIT | nr::INOTIFY_INIT1 => "inotify_init",
            nr::PIDFD_OPEN => "pidfd_open",
            nr::PIDFD_GETFD => "pidfd_getfd",
            nr::USERFAULTFD => "userfaultfd",
            nr::PERF_EVENT_OPEN => "perf_event_open",
            nr::FANOTIFY_INIT => "fanotify_init",
            nr::IO_URING_SETUP => "io_uring_setup",
            _ => "other",
        }
    }

    /// The kind of fd this call makes; `None` for copies, which take the source's kind.
    pub fn fd_kind(self) -> Option<FdKind> {
        Some(match u64::from(self.0) {
            nr::OPEN | nr::OPENAT | nr::OPENAT2 | nr::CREAT | nr::MEMFD_CREATE => FdKind::File,
            nr::SOCKET | nr::SOCKETPAIR | nr::ACCEPT | nr::ACCEPT4 => FdKind::Socket,
            nr::PIPE | nr::PIPE2 => FdKind::Pipe,
            nr::DUP | nr::DUP2 | nr::DUP3 | nr::FCNTL | nr::PIDFD_GETFD => return None,
            _ => FdKind::AnonInode,
        })
    }

    /// accept/accept4: one event per accepted connection, the unit of `per_event`.
    pub fn is_accept(self) -> bool {
        matches!(u64::from(self.0), nr::ACCEPT | nr::ACCEPT4)
    }
}

/// Why a record could not be decoded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("event record of {0} bytes, expected {size}", size = std::mem::size_of::<Event>())]
    Size(usize),
    #[error("unknown event kind {0}")]
    Kind(u32),
}

/// Decodes one ring buffer record.
pub fn decode(bytes: &[u8]) -> Result<Traced, DecodeError> {
    if bytes.len() < std::mem::size_of::<Event>() {
        return Err(DecodeError::Size(bytes.len()));
    }
    // SAFETY: the length is checked above; `Event` is plain integers (any bit pattern is valid)
    // and read_unaligned makes no alignment assumption about the ring buffer's bytes.
    let raw: Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) };
    let mut traced = decode_event(&raw)?;
    traced.stack = stack_of(bytes);
    Ok(traced)
}

/// The Python stack of a `StackedEvent` record; `None` for a plain `Event`.
fn stack_of(bytes: &[u8]) -> Option<PyStack> {
    if bytes.len() < std::mem::size_of::<StackedEvent>() {
        return None;
    }
    // SAFETY: the length is checked above; `StackedEvent` is plain integers and the read is
    // unaligned.
    let stacked: StackedEvent =
        unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<StackedEvent>()) };
    let mut stack = stacked.stack;
    // A corrupt depth must not index past the arrays.
    stack.depth = stack.depth.min(leak_monitor_common::MAX_FRAMES as u32);
    Some(stack)
}

/// Decodes one event (the fd values are C ints carried in u64s).
pub fn decode_event(raw: &Event) -> Result<Traced, DecodeError> {
    let fd = |v: u64| v as i32;
    let call = Syscall(raw.detail);
    let event = match raw.kind {
        kind::FD_OPEN => {
            let copied_from = call.fd_kind().is_none().then_some(fd(raw.b));
            TraceEvent::FdOpened {
                fd: fd(raw.a),
                kind: call.fd_kind().unwrap_or(FdKind::Other),
                call,
                copied_from,
            }
        }
        // Pairs are decoded into two FdOpened by `expand`; here the first half.
        kind::FD_OPEN_PAIR => TraceEvent::FdOpened {
            fd: fd(raw.a),
            kind: call.fd_kind().unwrap_or(FdKind::Other),
            call,
            copied_from: None,
        },
        kind::FD_CLOSE => TraceEvent::FdClosed { fd: fd(raw.a) },
        kind::FD_CLOSE_RANGE => TraceEvent::FdRangeClosed {
            first: fd(raw.a),
            // close_range(first, ~0U) means "to the end".
            last: i32::try_from(raw.b).unwrap_or(i32::MAX),
        },
        kind::THREAD_NEW => TraceEvent::ThreadCreated {
            child: raw.a as u32,
        },
        kind::THREAD_EXIT => TraceEvent::ThreadExited,
        kind::EXEC => TraceEvent::Exec,
        kind::FORK => TraceEvent::Forked {
            child: raw.a as u32,
        },
        kind::PAGE_FAULT => TraceEvent::PageFault { address: raw.a },
        kind::ALLOC => TraceEvent::Allocated {
            address: raw.a,
            size: raw.b,
        },
        kind::FREE => TraceEvent::Freed { address: raw.a },
        kind::PAGE_RUN => TraceEvent::PageRun {
            start: raw.a,
            pages: raw.b,
        },
        kind::UNMAP => TraceEvent::Unmapped {
            start: raw.a,
            len: raw.b,
        },
        kind::BRK => TraceEvent::BrkMoved { brk: raw.a },
        kind::REMAP => TraceEvent::Remapped {
            old_start: raw.a,
            old_len: raw.b,
            new_start: raw.c,
            new_len: raw.d,
        },
        other => return Err(DecodeError::Kind(other)),
    };
    Ok(Traced {
        tgid: raw.tgid,
        tid: raw.tid,
        ts_ns: raw.ts_ns,
        event,
        stack: None,
    })
}

/// The second fd of a pipe/socketpair record, which `decode_event` leaves out.
pub fn pair_second(raw: &Event) -> Option<Traced> {
    (raw.kind == kind::FD_OPEN_PAIR).then(|| {
        let call = Syscall(raw.detail);
        Traced {
            tgid: raw.tgid,
            tid: raw.tid,
            ts_ns: raw.ts_ns,
            event: TraceEvent::FdOpened {
                fd: raw.b as i32,
                kind: call.fd_kind().unwrap_or(FdKind::Other),
                call,
                copied_from: None,
            },
            stack: None,
        }
    })
}

/// The second fd of a pipe/socketpair ring buffer record.
pub fn pair_second_bytes(bytes: &[u8]) -> Option<Traced> {
    if bytes.len() < std::mem::size_of::<Event>() {
        return None;
    }
    // SAFETY: as in `decode`.
    let raw: Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) };
    let mut second = pair_second(&raw)?;
    second.stack = stack_of(bytes);
    Some(second)
}

/// The label of an event in `leak_monitor_events_total{kind}`.
pub fn metric_kind(event: &TraceEvent) -> &'static str {
    match event {
        TraceEvent::FdOpened { .. } => "fd_open",
        TraceEvent::FdClosed { .. } | TraceEvent::FdRangeClosed { .. } => "fd_close",
        TraceEvent::ThreadCreated { .. } => "thread_new",
        TraceEvent::ThreadExited => "thread_exit",
        TraceEvent::Exec => "exec",
        TraceEvent::Forked { .. } => "fork",
        TraceEvent::PageFault { .. } | TraceEvent::PageRun { .. } => "page_fault",
        TraceEvent::Allocated { .. } => "alloc",
        TraceEvent::Freed { .. } => "free",
        TraceEvent::Unmapped { .. } | TraceEvent::BrkMoved { .. } | TraceEvent::Remapped { .. } => {
            "unmap"
        }
    }
}

/// Now on CLOCK_MONOTONIC, in nanoseconds: the clock of every event's `ts_ns`.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec this frame owns; CLOCK_MONOTONIC always
    // exists on Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: u32, detail: u64, a: u64, b: u64) -> Event {
        Event {
            ts_ns: 7,
            a,
            b,
            tgid: 10,
            tid: 11,
            kind,
            detail: detail as u32,
            ..Event::default()
        }
    }

    #[test]
    fn fd_events_carry_kind_and_source() {
        let opened = decode_event(&raw(kind::FD_OPEN, nr::ACCEPT4, 5, 0)).unwrap();
        assert_eq!(
            opened.event,
            TraceEvent::FdOpened {
                fd: 5,
                kind: FdKind::Socket,
                call: Syscall(nr::ACCEPT4 as u32),
                copied_from: None
            }
        );
        let dup = decode_event(&raw(kind::FD_OPEN, nr::DUP2, 9, 3)).unwrap();
        assert!(matches!(
            dup.event,
            TraceEvent::FdOpened {
                fd: 9,
                copied_from: Some(3),
                ..
            }
        ));
        let pair = raw(kind::FD_OPEN_PAIR, nr::PIPE2, 3, 4);
        assert!(matches!(
            decode_event(&pair).unwrap().event,
            TraceEvent::FdOpened {
                fd: 3,
                kind: FdKind::Pipe,
                ..
            }
        ));
        assert!(matches!(
            pair_second(&pair).unwrap().event,
            TraceEvent::FdOpened {
                fd: 4,
                kind: FdKind::Pipe,
                ..
            }
        ));
        assert_eq!(pair_second(&raw(kind::FD_CLOSE, 3, 1, 0)), None);
    }

    #[test]
    fn page_runs_and_heap_blocks_decode_with_their_metric_kinds() {
        let run = decode_event(&raw(kind::PAGE_RUN, 0, 0x7000_1000, 31)).unwrap();
        assert_eq!(
            run.event,
            TraceEvent::PageRun {
                start: 0x7000_1000,
                pages: 31
            }
        );
        assert_eq!(metric_kind(&run.event), "page_fault");
        let block = decode_event(&raw(kind::ALLOC, 0, 0x5555_0000, 30_720)).unwrap();
        assert_eq!(
            block.event,
            TraceEvent::Allocated {
                address: 0x5555_0000,
                size: 30_720
            }
        );
        assert_eq!(metric_kind(&block.event), "alloc");
        let freed = decode_event(&raw(kind::FREE, 0, 0x5555_0000, 0)).unwrap();
        assert_eq!(
            freed.event,
            TraceEvent::Freed {
                address: 0x5555_0000
            }
        );
        assert_eq!(metric_kind(&freed.event), "free");
    }

    #[test]
    fn close_range_to_the_end_is_clamped() {
        let e = decode_event(&raw(
            kind::FD_CLOSE_RANGE,
            nr::CLOSE_RANGE,
            3,
            u32::MAX as u64,
        ))
        .unwrap();
        assert_eq!(
            e.event,
            TraceEvent::FdRangeClosed {
                first: 3,
                last: i32::MAX
            }
        );
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        assert_eq!(decode(&[0u8; 10]), Err(DecodeError::Size(10)));
        assert_eq!(decode_event(&raw(99, 0, 0, 0)), Err(DecodeError::Kind(99)));
        let bytes = [0xffu8; 64];
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn stacked_records_carry_their_stack() {
        let mut stacked = StackedEvent {
            event: raw(kind::FD_OPEN, nr::OPENAT, 5, 0),
            stack: PyStack::default(),
        };
        stacked.stack.depth = 2;
        stacked.stack.code[0] = 0xdead_0000;
        stacked.stack.instr_offset[0] = 7;
        // SAFETY: StackedEvent is plain integers without padding.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&stacked as *const StackedEvent).cast::<u8>(),
                std::mem::size_of::<StackedEvent>(),
            )
        };
        let traced = decode(bytes).unwrap();
        assert_eq!(traced.stack.unwrap().code[0], 0xdead_0000);
        assert_eq!(traced.stack.unwrap().instr_offset[0], 7);
        // A plain record has none; a corrupt depth is clamped.
        assert_eq!(decode(&bytes[..56]).unwrap().stack, None);
        stacked.stack.depth = u32::MAX;
        // SAFETY: as above.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&stacked as *const StackedEvent).cast::<u8>(),
                std::mem::size_of::<StackedEvent>(),
            )
        };
        assert_eq!(
            decode(bytes).unwrap().stack.unwrap().depth as usize,
            leak_monitor_common::MAX_FRAMES
        );
    }
}
