//! The `serve --config` TOML file: any text is accepted or refused with a one-line error,
//! never a panic.
#![no_main]

use leak_monitor::commands::serve_config::check_config_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = check_config_text(text) {
        let message = err.to_string();
        assert!(!message.contains('\n'), "not one line: {message:?}");
    }
});
