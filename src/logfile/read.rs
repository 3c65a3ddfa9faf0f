//! Reading a log in pieces, in linear time and bounded memory: bytes are appended to a buffer, complete lines are
//! parsed where they lie (a multi-byte character split between two reads is whole by then), and the buffer is
//! compacted instead of drained line by line. A line longer than [`MAX_LINE`] is skipped and counted, never
//! buffered whole.
use std::io::Read;
use std::path::Path;

use anyhow::Result;
use memchr::memchr;

use super::schema::{parse_line, Parsed, Record, Span};
use crate::error::usage;

/// The longest line a reader keeps (64 MiB): a longer one is skipped ([`Reader::long_lines`]).
pub const MAX_LINE: usize = 64 << 20;

/// Reads records from bytes that arrive in pieces (a file read in chunks, or a growing one).
#[derive(Debug)]
pub struct Reader {
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts.
    start: usize,
    /// The file offset of `buf[0]`.
    base: u64,
    /// Skipping the rest of a line that outgrew [`MAX_LINE`].
    skipping: bool,
    /// Keep every array (a `bn` record's statistics, the predictions) instead of their [`Span`].
    full: bool,
    /// Complete lines seen so far.
    pub lines: u64,
    /// Lines that were not JSON objects (a reader skips them, e.g. a half line a dead writer left).
    pub bad_lines: u64,
    /// Records of a type this reader does not know.
    pub unknown: u64,
    /// Lines longer than [`MAX_LINE`], skipped.
    pub long_lines: u64,
    seen_run: bool,
}

impl Default for Reader {
    /// A full reader: every record with its arrays (small logs, tests).
    fn default() -> Self {
        Reader::new(true)
    }
}

impl Reader {
    pub fn new(full: bool) -> Self {
        Reader {
            buf: Vec::new(),
            start: 0,
            base: 0,
            skipping: false,
            full,
            lines: 0,
            bad_lines: 0,
            unknown: 0,
            long_lines: 0,
            seen_run: false,
        }
    }

    /// A reader that keeps spans instead of arrays ([`Record::Bn`] without layers, epochs without predictions).
    pub fn lite() -> Self {
        Reader::new(false)
    }

    /// Whether a `run` record has been read.
    pub fn seen_run(&self) -> bool {
        self.seen_run
    }

    /// The file offset up to which every line has been read.
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Takes more text; returns the records of the lines it completed. An error means the file is not a log
    /// this reader can show (no `run` record first, or a newer schema).
    pub fn push(&mut self, chunk: &str) -> Result<Vec<Record>> {
        self.push_bytes(chunk.as_bytes())
    }

    /// Takes more bytes (see [`Reader::push`]).
    pub fn push_bytes(&mut self, chunk: &[u8]) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        self.push_into(chunk, &mut out)?;
        Ok(out)
    }

    /// Takes more bytes, appending the completed records to `out`.
    pub fn push_into(&mut self, mut chunk: &[u8], out: &mut Vec<Record>) -> Result<()> {
        if self.skipping {
            match memchr(b'\n', chunk) {
                None => {
                    self.base += chunk.len() as u64;
                    return Ok(());
                }
                Some(i) => {
                    self.skipping = false;
                    self.base += (i + 1) as u64;
                    chunk = &chunk[i + 1..];
                }
            }
        }
        // Compact: what was read goes, so the buffer holds at most one partial line and the new chunk.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
        // The complete lines, parsed in parallel (a long log is mostly parsing), then taken in order.
        let mut lines = Vec::new();
        let mut pos = 0;
        for end in memchr::memchr_iter(b'\n', &self.buf) {
            lines.push((pos, end));
            pos = end + 1;
        }
        let (buf, base, full) = (&self.buf, self.base, self.full);
        let parse = |&(a, b): &(usize, usize)| {
            let span = Span {
                offset: base + a as u64,
                len: (b - a).min(u32::MAX as usize) as u32,
            };
            parse_line(&buf[a..b], span, full)
        };
        let parsed: Vec<Parsed> = if lines.len() >= 64 {
            use rayon::prelude::*;
            lines.par_iter().with_min_len(32).map(parse).collect()
        } else {
            lines.iter().map(parse).collect()
        };
        for (parsed, &(_, end)) in parsed.into_iter().zip(&lines) {
            self.start = end + 1;
            if let Some(r) = self.take(parsed)? {
                out.push(r);
            }
        }
        if self.buf.len() - self.start > MAX_LINE {
            self.long_lines += 1;
            self.lines += 1;
            self.skipping = true;
            self.base += self.buf.len() as u64;
            self.buf.clear();
            self.start = 0;
        }
        if self.buf.capacity() > 4 * MAX_LINE.min(1 << 24) && self.buf.len() - self.start < (1 << 20) {
            // A long line has gone: give its memory back.
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.start = 0;
            self.buf.shrink_to(1 << 20);
        }
        Ok(())
    }

    /// The last line, if the text ended without a newline (a finished file whose writer omitted it).
    pub fn finish(&mut self) -> Result<Vec<Record>> {
        if self.skipping {
            return Ok(Vec::new());
        }
        let rest = &self.buf[self.start..];
        let span = Span {
            offset: self.offset(),
            len: rest.len().min(u32::MAX as usize) as u32,
        };
        let parsed = parse_line(rest, span, self.full);
        self.base += self.buf.len() as u64;
        self.buf.clear();
        self.start = 0;
        Ok(self.take(parsed)?.into_iter().collect())
    }

    fn take(&mut self, parsed: Parsed) -> Result<Option<Record>> {
        if matches!(parsed, Parsed::Empty) {
            return Ok(None);
        }
        self.lines += 1;
        match parsed {
            Parsed::Empty => Ok(None),
            Parsed::Bad if !self.seen_run && self.lines <= 1 => Err(anyhow::anyhow!(
                "not a bnscope log (the first line is not a JSON record)"
            )),
            Parsed::Bad => {
                self.bad_lines += 1;
                Ok(None)
            }
            _ if !self.seen_run && !matches!(parsed, Parsed::Run(_)) => Err(anyhow::anyhow!(
                "not a bnscope log (the first record is not a `run` record)"
            )),
            Parsed::Unknown => {
                self.unknown += 1;
                Ok(None)
            }
            Parsed::Run(run) => {
                let run = run?;
                self.seen_run = true;
                Ok(Some(Record::Run(run)))
            }
            Parsed::Record(r) => Ok(Some(r)),
        }
    }
}

/// A log file opened for reading, with the checks every reader makes: a regular file (not a FIFO, a device, a
/// directory), readable; the error names the file (exit 2).
pub fn open(path: &Path) -> Result<(std::fs::File, String)> {
    let shown = crate::terminal::printable(&path.display().to_string()).into_owned();
    let meta = std::fs::metadata(path).map_err(|e| usage(format!("{shown}: cannot read the log: {e}")))?;
    if let Some(what) = crate::files::not_regular(&meta) {
        return Err(usage(format!("{shown}: {what}, not a log file")));
    }
    let file = std::fs::File::open(path).map_err(|e| usage(format!("{shown}: cannot read the log: {e}")))?;
    Ok((file, shown))
}

/// How much a streaming read takes at a time.
pub const CHUNK: usize = 1 << 20;

/// Reads a whole log, handing each chunk's records to `each` as they are parsed (memory: one chunk and what `each`
/// keeps). Returns the reader with its counts. Errors name the file (exit 2).
pub fn stream_file(path: &Path, full: bool, mut each: impl FnMut(Vec<Record>) -> Result<()>) -> Result<Reader> {
    let (mut file, shown) = open(path)?;
    let mut r = Reader::new(full);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| usage(format!("{shown}: cannot read the log: {e}")))?;
        if n == 0 {
            break;
        }
        let mut out = Vec::new();
        r.push_into(&buf[..n], &mut out)
            .map_err(|e| usage(format!("{shown}: {e}")))?;
        each(out)?;
    }
    let last = r.finish().map_err(|e| usage(format!("{shown}: {e}")))?;
    each(last)?;
    if !r.seen_run {
        return Err(usage(format!("{shown}: empty: no `run` record")));
    }
    Ok(r)
}

/// All records of a finished log file (full: with every array), and the reader's counts. Errors name the file.
pub fn read_file(path: &Path) -> Result<(Vec<Record>, Reader)> {
    let mut records = Vec::new();
    let r = stream_file(path, true, |recs| {
        records.extend(recs);
        Ok(())
    })?;
    Ok((records, r))
}

/// The line at `span` of the file at `path`, parsed fully (the arrays a lite record left behind). `None` when it
/// cannot be read or is no longer that record (the file changed).
pub fn reread(path: &Path, span: Span) -> Option<Record> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).ok()?;
    let mut line = vec![0u8; span.len as usize];
    file.read_exact_at(&mut line, span.offset).ok()?;
    match parse_line(&line, span, true) {
        Parsed::Record(r) => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_line_waits_for_its_end() {
        let mut r = Reader::default();
        let run = r#"{"type":"run","schema":1,"bn_layers":[]}"#;
        assert_eq!(r.push(&format!("{run}\n{{\"type\":\"epo")).unwrap().len(), 1);
        assert!(r
            .push("ch\",\"epoch\":1,\"train\":{\"loss\":null,\"acc\":1.0}")
            .unwrap()
            .is_empty());
        let recs = r.push("}\n").unwrap();
        let Record::Epoch(e) = &recs[0] else { panic!("{recs:?}") };
        assert_eq!(e.epoch, 1);
        let t = e.train.unwrap();
        assert!(t.loss.unwrap().is_nan() && t.acc == Some(1.0));
        assert_eq!(e.eval_batch, None, "missing stays missing");
        assert_eq!(e.span.offset as usize, run.len() + 1);
    }

    #[test]
    fn lite_and_full_agree_on_every_figure() {
        let text = concat!(
            r#"{"type":"run","schema":1,"bn_layers":[{"name":"bn1","channels":2}]}"#,
            "\n",
            r#"{"type":"epoch","epoch":3,"step":9,"t":9,"momentum":0.9,"cumulative":false,"init_weight":null,"#,
            r#""train":{"loss":0.5,"acc":1},"eval_running":{"loss":null},"eval_batch":"odd","eval_ema":{"acc":0.25},"#,
            r#""predictions_running":[[0.5,0.5]],"step_ms":1.5,"x":{"y":[1,2]}}"#,
            "\n",
            r#"{"type":"bn","epoch":3,"layers":[{"name":"bn1","running_mean":[1,null],"mean_gap":0.5}]}"#,
            "\n"
        );
        let full = Reader::default().push(text).unwrap();
        let lite = Reader::lite().push(text).unwrap();
        let (Record::Epoch(f), Record::Epoch(l)) = (&full[1], &lite[1]) else {
            panic!()
        };
        let mut f2 = f.clone();
        f2.predictions_running = None;
        let mut l2 = l.clone();
        // NaN != NaN: compare the init weight apart.
        assert!(f2.init_weight.unwrap().is_nan() && l2.init_weight.unwrap().is_nan());
        f2.init_weight = None;
        l2.init_weight = None;
        let (fl, ll) = (f2.eval_running.take().unwrap(), l2.eval_running.take().unwrap());
        assert!(fl.loss.unwrap().is_nan() && ll.loss.unwrap().is_nan());
        assert_eq!(f2, l2);
        assert!(l.has_predictions && l.predictions_running.is_none());
        let Record::Bn { layers: None, span, .. } = lite[2] else {
            panic!("{:?}", lite[2])
        };
        assert_eq!(
            &text.as_bytes()[span.offset as usize..][..span.len as usize],
            text.lines().nth(2).unwrap().as_bytes()
        );
    }

    #[test]
    fn bad_lines_are_counted_and_other_files_refused() {
        let mut r = Reader::default();
        let recs = r
            .push(
                "{\"type\":\"run\",\"schema\":1}\nnot json\n{\"type\":\"mystery\"}\n{\"type\":\"end\",\"epochs\":0}\n",
            )
            .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!((r.bad_lines, r.unknown), (1, 1));
        assert!(Reader::default().push("hello\n").is_err());
        assert!(Reader::default().push("{\"type\":\"epoch\"}\n").is_err());
        let e = Reader::default().push("{\"type\":\"run\",\"schema\":2}\n").unwrap_err();
        assert!(e.to_string().contains("schema 2"), "{e}");
    }

    #[test]
    fn odd_schemas_and_conventions_are_refused() {
        for bad in [
            r#"{"type":"run","schema":18446744073709551616}"#,
            r#"{"type":"run","schema":"2"}"#,
            r#"{"type":"run","schema":0}"#,
            r#"{"type":"run","schema":1.5}"#,
            r#"{"type":"run","convention":5}"#,
            r#"{"type":"run","convention":"torch"}"#,
        ] {
            assert!(Reader::lite().push(&format!("{bad}\n")).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_characters_survive_any_split() {
        let text = "\u{feff}{\"type\":\"run\",\"model\":\"café\"}\n";
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let mut r = Reader::lite();
            let mut recs = r.push_bytes(&bytes[..cut]).unwrap();
            recs.extend(r.push_bytes(&bytes[cut..]).unwrap());
            let [Record::Run(run)] = recs.as_slice() else {
                panic!("cut {cut}: {recs:?}")
            };
            assert_eq!(run.model.as_deref(), Some("café"));
        }
    }

    #[test]
    fn a_line_too_long_is_skipped_and_counted() {
        let mut r = Reader::lite();
        r.push("{\"type\":\"run\"}\n").unwrap();
        let big = vec![b'x'; MAX_LINE / 4];
        for _ in 0..5 {
            assert!(r.push_bytes(&big).unwrap().is_empty());
        }
        let recs = r.push("yy\n{\"type\":\"end\",\"epochs\":1}\n").unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(r.long_lines, 1);
        let Record::End { .. } = recs[0] else { panic!() };
        assert!(r.buf.capacity() <= 2 * MAX_LINE);
    }

    #[test]
    fn control_characters_are_escaped_at_the_edge() {
        let recs = Reader::lite()
            .push("{\"type\":\"run\",\"source\":\"\\u001b]0;pwned\\u0007\",\"framework\":\"\\u001b[2J\"}\n{\"type\":\"event\",\"what\":\"\\u001b[?1049l\",\"value\":\"x\"}\n{\"type\":\"end\",\"epochs\":1,\"reason\":\"\\u001bc\"}\n")
            .unwrap();
        let Record::Run(run) = &recs[0] else { panic!() };
        assert_eq!(run.source, "\\x1b]0;pwned\\x07");
        assert_eq!(run.framework.as_deref(), Some("\\x1b[2J"));
        let Record::Event(ev) = &recs[1] else { panic!() };
        assert_eq!(ev.what, "\\x1b[?1049l");
        let Record::End { reason, .. } = &recs[2] else { panic!() };
        assert_eq!(reason, "\\x1bc");
    }
}
