//! One pass over the bytes of an untrusted JSON event, for the fast path of
//! `cityos.kernel.strictjson.parse_strict_json`.
//!
//! orjson parses a good event quickly but silently lets through what strict decoding refuses:
//! duplicate keys (the last one wins), `\u0000`, and integers beyond 64 bits (turned into
//! floats). `plain_counts` says whether the bytes are free of those risks and counts what the
//! caller compares with the parsed value. It answers exactly as the pure-Python
//! `_plain_counts_python` in strictjson.py does, for any bytes (a unit test holds the two to the
//! same answers); doing it in one pass instead of five byte scans is all it is for.

use pyo3::prelude::*;

/// Digits in a row from which an integer may exceed 64 bits.
const LONG_DIGIT_RUN: usize = 19;
const NUL_ESCAPE: &[u8] = b"u0000";

/// What a byte means to the scan; most bytes of an event (letters, UTF-8 text) are `PLAIN`.
const PLAIN: u8 = 0;
const DIGIT: u8 = 1;
const QUOTE: u8 = 2;
const BACKSLASH: u8 = 3;
const OPEN_OBJECT: u8 = 4;
const OPEN_ARRAY: u8 = 5;
const CLOSE: u8 = 6;

const CLASSES: [u8; 256] = {
    let mut table = [PLAIN; 256];
    let mut digit = b'0';
    while digit <= b'9' {
        table[digit as usize] = DIGIT;
        digit += 1;
    }
    table[b'"' as usize] = QUOTE;
    table[b'\\' as usize] = BACKSLASH;
    table[b'{' as usize] = OPEN_OBJECT;
    table[b'[' as usize] = OPEN_ARRAY;
    table[b'}' as usize] = CLOSE;
    table[b']' as usize] = CLOSE;
    table
};

/// `(keys, objects)` -- occurrences of `":` and of `{` in `raw` -- when `raw` holds no `\u0000`,
/// no run of 19 digits and no nesting deeper than `max_depth` outside strings; `None` when the
/// exact parser must decide.
#[pyfunction]
fn plain_counts(raw: &[u8], max_depth: usize) -> Option<(usize, usize)> {
    let mut keys = 0usize;
    let mut objects = 0usize;
    let mut digits = 0usize;
    let mut depth = 0isize;
    // Nesting is followed outside strings only, as strictjson._nesting_depth does.
    let mut in_string = false;
    let mut escaped = false;
    for (index, &byte) in raw.iter().enumerate() {
        let class = CLASSES[byte as usize];
        if class == PLAIN {
            digits = 0;
            escaped = false;
            continue;
        }
        if class == DIGIT {
            digits += 1;
            if digits >= LONG_DIGIT_RUN {
                return None;
            }
            escaped = false;
            continue;
        }
        digits = 0;
        if class == BACKSLASH && raw[index + 1..].starts_with(NUL_ESCAPE) {
            return None;
        }
        if class == QUOTE && raw.get(index + 1) == Some(&b':') {
            keys += 1;
        }
        if class == OPEN_OBJECT {
            objects += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if class == BACKSLASH {
                escaped = true;
            } else if class == QUOTE {
                in_string = false;
            }
        } else if class == QUOTE {
            in_string = true;
        } else if class == OPEN_OBJECT || class == OPEN_ARRAY {
            depth += 1;
            if depth > max_depth as isize {
                return None;
            }
        } else if class == CLOSE {
            depth -= 1;
        }
    }
    Some((keys, objects))
}

#[pymodule]
fn cityos_strictscan(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(plain_counts, module)?)?;
    Ok(())
}
