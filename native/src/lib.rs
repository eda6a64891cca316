//! One pass over the bytes of an untrusted JSON event, for the fast path of
//! `cityos.kernel.strictjson.parse_strict_json`.
//!
//! orjson parses a good event quickly but silently lets through what strict decoding refuses:
//! duplicate keys (the last one wins), `\u0000`, and integers beyond 64 bits (turned into
//! floats). `plain_counts` says whether the bytes are free of those risks and counts what the
//! caller compares with the parsed value. It answers exactly as the pure-Python
//! `_plain_counts_python` in strictjson.py does, for any bytes (a unit test holds the two to the
//! same answers); doing it in one pass instead of five byte scans is all it is for.
//!
//! `csv_lines` writes the CSV lines of a batch of stored documents for the whole-dataset export
//! (`services.publish.stream`), the bytes of its Python writer or `None` (see its section below).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

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

// ---------------------------------------------------------------------------------------------
// CSV lines of stored documents, for the whole-dataset CSV export
// (`services.publish.stream.CsvWriter`). The answer is either exactly the bytes the exact
// Python writer gives (`render._cell`/`spreadsheet_cell` per cell, `csv.writer` with CRLF) or
// `None`, and the caller then writes the batch in Python: anything this parser is not certain
// about -- nested values, escapes it does not decode, numbers whose text Python would spell
// otherwise, malformed JSON -- gives `None`.

/// Where a column's value lies in the document, and what kind it is.
#[derive(Clone, Copy)]
enum Cell {
    Missing,
    Null,
    True,
    False,
    /// A number whose JSON text is what Python's `repr` of the parsed value writes.
    Number(usize, usize),
    /// A string without escapes: its bytes are the text.
    Plain(usize, usize),
    /// A string with escapes, decoded into the row's scratch buffer at this range.
    Decoded(usize, usize),
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn skip_space(&mut self) {
        while let Some(&byte) = self.bytes.get(self.at) {
            if byte == b' ' || byte == b'\n' || byte == b'\r' || byte == b'\t' {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.at += 1;
            Some(())
        } else {
            None
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Some(())
        } else {
            None
        }
    }

    /// A string after its opening quote: `Plain` when it holds no escape, else decoded into
    /// `scratch` (`Decoded`). Control characters, `\u0000` and lone surrogates give `None`.
    fn string(&mut self, scratch: &mut Vec<u8>) -> Option<Cell> {
        let start = self.at;
        loop {
            let byte = *self.bytes.get(self.at)?;
            if byte == b'"' {
                self.at += 1;
                return Some(Cell::Plain(start, self.at - 1));
            }
            if byte == b'\\' {
                break;
            }
            if byte < 0x20 {
                return None;
            }
            self.at += 1;
        }
        let from = scratch.len();
        scratch.extend_from_slice(&self.bytes[start..self.at]);
        loop {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => return Some(Cell::Decoded(from, scratch.len())),
                b'\\' => {
                    let escape = *self.bytes.get(self.at)?;
                    self.at += 1;
                    let decoded = match escape {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let character = self.unicode_escape()?;
                            let mut buffer = [0u8; 4];
                            scratch
                                .extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
                            continue;
                        }
                        _ => return None,
                    };
                    scratch.push(decoded);
                }
                _ if byte < 0x20 => return None,
                _ => scratch.push(byte),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at + 4)?;
        let mut value = 0u32;
        for &digit in digits {
            value = value * 16 + (digit as char).to_digit(16)?;
        }
        self.at += 4;
        Some(value)
    }

    fn unicode_escape(&mut self) -> Option<char> {
        let high = self.hex4()?;
        if high == 0 {
            return None;
        }
        if (0xDC00..0xE000).contains(&high) {
            return None;
        }
        if (0xD800..0xDC00).contains(&high) {
            self.literal(b"\\u")?;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
            return char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00));
        }
        char::from_u32(high)
    }

    /// A number whose JSON text Python writes back unchanged: an integer other than `-0`, or a
    /// decimal fraction (no exponent) that is already the shortest text of its float, in the
    /// range where `repr` writes no exponent.
    fn number(&mut self) -> Option<Cell> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let integer_start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let integer_digits = self.at - integer_start;
        if integer_digits == 0 || integer_digits > 18 {
            return None;
        }
        if integer_digits > 1 && self.bytes[integer_start] == b'0' {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            return None;
        }
        if self.peek() != Some(b'.') {
            let text = &self.bytes[start..self.at];
            return if text == b"-0" {
                None
            } else {
                Some(Cell::Number(start, self.at))
            };
        }
        self.at += 1;
        let fraction_start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        if self.at == fraction_start || matches!(self.peek(), Some(b'e' | b'E')) {
            return None;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        if short_fraction_is_repr(text.as_bytes()) {
            return Some(Cell::Number(start, self.at));
        }
        let value: f64 = text.parse().ok()?;
        let size = value.abs();
        // Outside this range `repr` writes an exponent; Display (shortest round-trip digits,
        // like `repr`) never does, and writes an integral value without its `.0`.
        if !(1e-4..1e16).contains(&size) || value.to_string() != text {
            return None;
        }
        Some(Cell::Number(start, self.at))
    }

    /// A value that is a cell: `None` for nested values (their JSON form is Python's to write).
    fn cell(&mut self, scratch: &mut Vec<u8>) -> Option<Cell> {
        self.skip_space();
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string(scratch)
            }
            b't' => self.literal(b"true").map(|_| Cell::True),
            b'f' => self.literal(b"false").map(|_| Cell::False),
            b'n' => self.literal(b"null").map(|_| Cell::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }
}

/// Whether a decimal fraction (`-?digits.digits`, no exponent) is what `repr` writes, decided on
/// the text: at most 15 significant digits (distinct such decimals are distinct doubles, so no
/// shorter text reads back as the same float), no trailing zero in the fraction (but `.0`), and a size from
/// 1e-4 on (below, `repr` writes an exponent). Longer texts are compared with the float's own.
fn short_fraction_is_repr(text: &[u8]) -> bool {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    // An integral float (`131.0`, `-0.0`) of at most 15 digits is exact, and `repr` writes `.0`.
    if let Some(integer) = digits.strip_suffix(b".0") {
        return integer.len() <= 15;
    }
    if text.last() == Some(&b'0') {
        return false;
    }
    let significant = digits
        .iter()
        .skip_while(|&&byte| byte == b'0' || byte == b'.');
    let mut count = 0;
    for &byte in significant {
        if byte != b'.' {
            count += 1;
        }
    }
    if count > 15 {
        return false;
    }
    // `0.000d` is 1e-4 at least; one more leading zero is below it.
    !digits.starts_with(b"0.0000")
}

/// The cells of `columns` in one JSON object (the last of duplicate keys wins, as in orjson).
fn row_cells(
    document: &[u8],
    columns: &[Vec<u8>],
    cells: &mut [Cell],
    scratch: &mut Vec<u8>,
) -> Option<()> {
    std::str::from_utf8(document).ok()?;
    cells.fill(Cell::Missing);
    scratch.clear();
    let mut parser = Parser {
        bytes: document,
        at: 0,
    };
    let mut hint = 0;
    parser.expect(b'{')?;
    parser.skip_space();
    if parser.peek() == Some(b'}') {
        parser.at += 1;
    } else {
        loop {
            parser.expect(b'"')?;
            let key = match parser.string(scratch)? {
                Cell::Plain(from, to) => &document[from..to],
                Cell::Decoded(from, to) => &scratch[from..to],
                _ => return None,
            };
            // Documents mostly list their fields in the schema's order: look from the last one on.
            let column = (hint..columns.len())
                .chain(0..hint)
                .find(|&index| columns[index].as_slice() == key);
            if let Some(index) = column {
                hint = index + 1;
            }
            parser.expect(b':')?;
            let cell = parser.cell(scratch)?;
            if let Some(index) = column {
                cells[index] = cell;
            }
            parser.skip_space();
            match parser.peek()? {
                b',' => parser.at += 1,
                b'}' => {
                    parser.at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    parser.skip_space();
    if parser.at == document.len() {
        Some(())
    } else {
        None
    }
}

const FORMULA_TRIGGERS: &[u8] = b"=+-@\t\r";

/// `spreadsheet._PLAIN_NUMBER.fullmatch`: `[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?`.
fn plain_number(text: &[u8]) -> bool {
    let mut at = 0;
    let digits = |at: &mut usize| {
        let start = *at;
        while *at < text.len() && text[*at].is_ascii_digit() {
            *at += 1;
        }
        *at - start
    };
    if matches!(text.first(), Some(b'+' | b'-')) {
        at += 1;
    }
    let whole = digits(&mut at);
    let mut fraction = 0;
    if text.get(at) == Some(&b'.') {
        at += 1;
        fraction = digits(&mut at);
    } else if whole == 0 {
        return false;
    }
    if whole == 0 && fraction == 0 {
        return false;
    }
    if matches!(text.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(text.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        if digits(&mut at) == 0 {
            return false;
        }
    }
    at == text.len()
}

/// A text cell as `csv.writer` writes it: quoted (quotes doubled) when it holds a comma, a
/// quote or a line break; prefixed with `'` first when a spreadsheet would run it (`excel`).
fn write_text(out: &mut Vec<u8>, text: &[u8], excel: bool) {
    let prefix = excel
        && text
            .first()
            .is_some_and(|first| FORMULA_TRIGGERS.contains(first))
        && !plain_number(text);
    let quoted = text
        .iter()
        .any(|&byte| matches!(byte, b',' | b'"' | b'\r' | b'\n'));
    if quoted {
        out.push(b'"');
    }
    if prefix {
        out.push(b'\'');
    }
    if quoted {
        for &byte in text {
            if byte == b'"' {
                out.push(b'"');
            }
            out.push(byte);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text);
    }
}

/// CSV lines (CRLF) of `columns` for each row's first item, a stored JSON object as bytes, cells
/// written as the exact Python writer writes them; `None` when any document needs that writer.
#[pyfunction]
fn csv_lines<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyAny>,
    columns: Vec<String>,
    excel: bool,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    // A lone empty cell is written `""` by csv.writer: a case for the exact writer.
    if columns.len() < 2 {
        return Ok(None);
    }
    let names: Vec<Vec<u8>> = columns.into_iter().map(String::into_bytes).collect();
    let mut documents = Vec::new();
    for row in rows.try_iter()? {
        let item = row?.get_item(0)?;
        let Ok(document) = item.downcast_into::<PyBytes>() else {
            return Ok(None);
        };
        documents.push(document);
    }
    let texts: Vec<&[u8]> = documents
        .iter()
        .map(|document| document.as_bytes())
        .collect();
    // Written without the GIL (bytes objects are immutable): the server's event loop sends the
    // previous batch meanwhile, on the other core.
    let lines = py.allow_threads(|| write_lines(&texts, &names, excel));
    Ok(lines.map(|out| PyBytes::new(py, &out)))
}

/// The CSV lines of `documents`, or `None` as soon as one needs the exact Python writer.
fn write_lines(documents: &[&[u8]], names: &[Vec<u8>], excel: bool) -> Option<Vec<u8>> {
    let mut cells = vec![Cell::Missing; names.len()];
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    for &document in documents {
        row_cells(document, names, &mut cells, &mut scratch)?;
        for (index, cell) in cells.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            match *cell {
                Cell::Missing | Cell::Null => {}
                Cell::True => out.extend_from_slice(b"true"),
                Cell::False => out.extend_from_slice(b"false"),
                // A number's text is a plain number: never quoted, never prefixed.
                Cell::Number(from, to) => out.extend_from_slice(&document[from..to]),
                Cell::Plain(from, to) => write_text(&mut out, &document[from..to], excel),
                Cell::Decoded(from, to) => write_text(&mut out, &scratch[from..to], excel),
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    Some(out)
}

#[pymodule]
fn cityos_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(plain_counts, module)?)?;
    module.add_function(wrap_pyfunction!(csv_lines, module)?)?;
    Ok(())
}
