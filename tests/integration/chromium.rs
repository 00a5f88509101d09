//! Headless Chromium (Debian's `chromium` package) for the HTML report tests: a screenshot, the
//! DOM after parsing, and an inspection (console messages, fetched resources, layout overflow,
//! recorded by a probe script in a copy of the page), each from a fresh profile, with the
//! network features switched off so the browser only reads the local file.

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

/// What a page did in the browser: its console messages (from Chromium's log: the report has
/// no scripts, so any message is a fault), the resources it fetched (from the Resource Timing
/// API: anything at all is a network request the self-contained page must not make), the
/// layout problems found after load, and the DOM.
#[derive(Debug)]
pub struct Inspection {
    pub console: Vec<String>,
    pub requests: Vec<String>,
    pub layout: Vec<String>,
    pub dom: String,
}

/// Records errors, fetched resources and layout problems into the DOM once the page has loaded.
/// Layout: an element that reaches beyond the window's width, a box that scrolls sideways, or
/// content wider than its box, except in and for elements marked `data-scrolls` (code blocks
/// that say they scroll).
const PROBE: &str = r#"<script>
window.__lmErrors = [];
addEventListener('error', e => __lmErrors.push(String(e.message || e.type)), true);
addEventListener('load', () => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  const name = e => {
    const cls = (e.getAttribute('class') || '').trim().split(/\s+/).filter(Boolean).join('.');
    return e.tagName.toLowerCase() + (cls ? '.' + cls : '') + ' "' + (e.textContent || '').trim().slice(0, 50) + '"';
  };
  for (const e of document.body.querySelectorAll('*')) {
    if (e.id === 'lm-probe') continue;
    const marked = e.closest('[data-scrolls]');
    if (marked && marked !== e) continue;
    const r = e.getBoundingClientRect();
    if (r.width > 0 && (r.right > width + 0.5 || r.left < -0.5)) {
      problems.push('beyond the page (' + Math.round(r.left) + '..' + Math.round(r.right) + ' of ' + width + '): ' + name(e));
    }
    if (marked) continue;
    if (e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1) {
      problems.push('content wider than its box (' + e.scrollWidth + ' > ' + e.clientWidth + ', overflow-x ' + getComputedStyle(e).overflowX + '): ' + name(e));
    }
  }
  if (document.documentElement.scrollWidth > width) {
    problems.push('the page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + width);
  }
  const probe = document.createElement('pre');
  probe.id = 'lm-probe';
  probe.hidden = true;
  probe.textContent = JSON.stringify({
    errors: __lmErrors,
    requests: performance.getEntriesByType('resource').map(r => r.name),
    layout: problems,
  });
  document.body.append(probe);
});
</script>"#;

/// Opens a copy of `page` with the probe in a `width`x`height` window and reports what it saw.
pub fn inspect(page: &Path, width: u32, height: u32) -> Inspection {
    let html = std::fs::read_to_string(page).expect("read the page");
    let head = html
        .find("<head>")
        .map(|at| at + "<head>".len())
        .expect("the page has a <head>");
    let probed = page.with_extension(format!("probe-{width}.html"));
    std::fs::write(
        &probed,
        format!("{}{PROBE}{}", &html[..head], &html[head..]),
    )
    .expect("write the probed page");
    let output = chromium(
        &probed,
        &[
            "--dump-dom".to_string(),
            format!("--window-size={width},{height}"),
            "--enable-logging=stderr".to_string(),
            "--v=0".to_string(),
        ],
    );
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut console: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let start = dom
        .find("<pre id=\"lm-probe\" hidden=\"\">")
        .unwrap_or_else(|| panic!("the probe did not run (no results in the DOM):\n{dom}"));
    let json = &dom[start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</pre>").unwrap()];
    let json = json
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let found: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|err| panic!("probe results are not JSON ({err}): {json}"));
    let list = |key: &str| -> Vec<String> {
        found[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} in {found}"))
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    };
    console.extend(list("errors"));
    Inspection {
        console,
        requests: list("requests"),
        layout: list("layout"),
        dom,
    }
}
