//! `/proc/PID/smaps`, reduced to what the breakdown needs: each mapping's range, permissions,
//! name, resident and anonymous bytes. Reading it walks the target's page tables under its
//! mmap lock, so it is read only at moments of growth (see `memory::Breakdowns`), never on
//! the sampling path.

/// One mapping of the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// `rw-p`, `r-xp`, `rw-s`...
    pub perms: String,
    /// The path or pseudo-name (`[heap]`, `[stack]`, `/memfd:x (deleted)`); empty when anonymous.
    pub name: String,
    pub rss: u64,
    /// Private anonymous pages, including the copied-on-write pages of a file's mapping.
    pub anonymous: u64,
}

impl Mapping {
    pub fn is_shared(&self) -> bool {
        self.perms.as_bytes().get(3) == Some(&b's')
    }

    pub fn is_writable(&self) -> bool {
        self.perms.as_bytes().get(1) == Some(&b'w')
    }

    /// Shared memory: a shared mapping of anonymous memory, a memfd, SysV or POSIX shm.
    pub fn is_shmem(&self) -> bool {
        self.is_shared()
            && (self.name.is_empty()
                || self.name.starts_with("/dev/shm/")
                || self.name.starts_with("/memfd:")
                || self.name.starts_with("/SYSV")
                || self.name.starts_with("[anon_shmem"))
    }

    pub fn is_anonymous(&self) -> bool {
        self.name.is_empty() || self.name.starts_with("[anon:")
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// Parses the text of `/proc/PID/smaps`; lines it does not know are skipped.
pub fn parse(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(mapping) = header(line) {
            out.push(mapping);
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        if let Some(kb) = field_kb(line, "Rss:") {
            current.rss = kb * 1024;
        } else if let Some(kb) = field_kb(line, "Anonymous:") {
            current.anonymous = kb * 1024;
        }
    }
    out
}

/// `start-end perms offset dev inode [name]`.
fn header(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    if perms.len() != 4 {
        return None;
    }
    let _offset = fields.next()?;
    let dev = fields.next()?;
    if !dev.contains(':') {
        return None;
    }
    let _inode = fields.next()?;
    let name = fields.next().unwrap_or("").trim().to_string();
    Some(Mapping {
        start,
        end,
        perms: perms.to_string(),
        name,
        rss: 0,
        anonymous: 0,
    })
}

fn field_kb(line: &str, key: &str) -> Option<u64> {
    let rest = line.strip_prefix(key)?.trim();
    rest.strip_suffix("kB")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED: &str = "\
55cbd8f78000-55cbd8f7a000 r--p 00000000 fe:00 247030                     /usr/bin/python3.12
Size:                  8 kB
Rss:                   8 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
55cbd8f90000-55cbd8f92000 rw-p 00010000 fe:00 247030                     /usr/bin/python3.12
Rss:                   8 kB
Anonymous:             4 kB
5600000000-5600100000 rw-p 00000000 00:00 0                              [heap]
Rss:                1024 kB
Anonymous:          1024 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 
Rss:                 132 kB
Anonymous:           132 kB
7f0000100000-7f0000200000 rw-s 00000000 00:01 77                         /dev/shm/x
Rss:                  64 kB
Anonymous:             0 kB
";

    #[test]
    fn reads_recorded_smaps() {
        let maps = parse(RECORDED);
        assert_eq!(maps.len(), 5);
        assert_eq!(maps[1].rss, 8192);
        assert_eq!(maps[1].anonymous, 4096);
        assert_eq!(maps[2].name, "[heap]");
        assert!(maps[3].is_anonymous() && maps[3].is_writable() && !maps[3].is_shared());
        assert_eq!(maps[3].len(), 0x21000);
        assert!(maps[4].is_shmem());
        assert!(!maps[0].is_shmem());
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(parse("Rss: 4 kB\nnot a header\n1-2 rw\n").is_empty());
    }
}
