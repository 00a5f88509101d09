//! Headless Chromium (Debian's `chromium` package) for the HTML report tests: a screenshot and
//! the DOM after parsing, each from a fresh profile, with the network features switched off so
//! the browser only reads the local file.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A cold start on a loaded 2-core machine takes a few seconds; this is a hang guard.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `chromium --headless ... EXTRA file://PAGE`; panics if it fails or hangs.
fn chromium(page: &Path, extra: &[String]) -> Output {
    let profile = tempfile::tempdir().expect("temp dir for the Chromium profile");
    let page = page.canonicalize().expect("the page exists");
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = crate::support::die_with_parent(&mut command)
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot run chromium ({err}); install it with `apt-get install -y chromium` or `cargo xtask setup`")
        });
    // The pipes are read by wait_with_output; a watchdog thread kills a hung browser.
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < TIMEOUT {
            std::thread::sleep(Duration::from_millis(200));
            if crate::support::process_ended(pid) {
                return false;
            }
        }
        // SAFETY: kill(2) has no memory effects; the pid is our child, not yet reaped (it
        // has not ended).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        true
    });
    let output = child.wait_with_output().expect("wait for chromium");
    assert!(
        !watchdog.join().unwrap(),
        "chromium hung for {TIMEOUT:?} on {}",
        page.display()
    );
    assert!(
        output.status.success(),
        "chromium failed ({}) on {}:\n{}",
        output.status,
        page.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Takes a `width`x`height` screenshot of the page into `png`.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) {
    chromium(
        page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
        ],
    );
}

/// The page's DOM after parsing, as Chromium serialises it.
pub fn dump_dom(page: &Path) -> String {
    let output = chromium(page, &["--dump-dom".to_string()]);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Width and height from a PNG's IHDR chunk; panics if the bytes are not a PNG.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "not a PNG ({} bytes)",
        bytes.len()
    );
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}
