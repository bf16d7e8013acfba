//! The journal of `durability = "batched"`: what makes an answered append survive a crash of the
//! process before its fsync.
//!
//! redb discards a commit made with `Durability::None` when the process dies before a later
//! durable commit, so without this file a `kill -9` lost every append answered since the last
//! flush. The writer therefore first appends each group's records here with one `write` (the
//! bytes are then in the operating system's page cache, which outlives the process) and only
//! then commits them to redb without an fsync and answers. Each flush makes a durable redb
//! commit and then empties the journal. Opening the log replays whatever the journal holds
//! beyond what redb has, so the loss on a process crash is zero; only a crash of the operating
//! system itself can cost the last `flush_ms` (the journal is not fsynced either), as with
//! Redis's `appendfsync everysec`.
//!
//! # On disk
//! `DIR/herald.journal` is a sequence of entries, each `len: u32 LE`, `crc: u32 LE` (CRC-32 of
//! the id and record), the 16-byte id and the record (the same bytes the `events` table holds).
//! Reading stops at the first entry that is short or whose checksum does not match: that is a
//! torn write at the moment of a crash, or bytes of an earlier generation after an OS crash,
//! and nothing after it was ever answered. Entries at or below what redb already holds are
//! skipped on replay, so a crash between redb's durable commit and the journal's truncation
//! replays nothing twice.
//!
//! The format is ours rather than a library's: it is one append and one truncate, with a
//! checksum per entry; a general WAL crate would bring segments and fsync policies we do not
//! want here.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::event::EventId;

/// The journal's file name inside the data directory.
pub(crate) const FILE_NAME: &str = "herald.journal";
/// Length and checksum.
const ENTRY_HEADER: usize = 8;
/// Bytes written (and then cut off again) to learn whether the disk can take writes.
const PROBE_BYTES: usize = 64 << 10;

/// The open journal file; see the module docs.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    /// Where the next entry goes: the end of the last complete entry.
    len: u64,
    /// Scratch buffer for one group's entries, reused.
    buf: Vec<u8>,
}

/// One entry read back: an id and its stored record.
pub(crate) type Entry = (EventId, Vec<u8>);

impl Journal {
    /// Opens (or creates) `DIR/herald.journal` and reads the entries it holds, in order, up to
    /// the first damaged one.
    pub(crate) fn open(dir: &Path) -> io::Result<(Self, Vec<Entry>)> {
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (entries, len) = parse(&bytes);
        Ok((Self { file, path, len, buf: Vec::new() }, entries))
    }

    /// Whether a journal file exists in `dir` (one left by a batched run is replayed even when
    /// the node now runs with `durability = "always"`).
    pub(crate) fn exists(dir: &Path) -> bool {
        dir.join(FILE_NAME).exists()
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one group's entries with a single write. On failure the file is cut back to its
    /// last complete entry (so a torn entry never sits in front of later ones) and nothing of
    /// the group counts as written.
    pub(crate) fn append<'a>(&mut self, entries: impl IntoIterator<Item = (EventId, &'a [u8])>) -> io::Result<()> {
        self.buf.clear();
        for (id, record) in entries {
            let len = u32::try_from(16 + record.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large for the journal"))?;
            let id = id.to_bytes();
            let mut crc = crc32fast::Hasher::new();
            crc.update(&id);
            crc.update(record);
            self.buf.extend_from_slice(&len.to_le_bytes());
            self.buf.extend_from_slice(&crc.finalize().to_le_bytes());
            self.buf.extend_from_slice(&id);
            self.buf.extend_from_slice(record);
        }
        if let Err(e) = self.file.write_all_at(&self.buf, self.len) {
            // Best effort: the next append writes at `self.len` anyway, over whatever part of
            // this one reached the file, and reading stops at a torn entry.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += self.buf.len() as u64;
        Ok(())
    }

    /// Reads the entries written so far again (after the store was reopened).
    pub(crate) fn entries(&mut self) -> io::Result<Vec<Entry>> {
        let mut bytes = vec![0; usize::try_from(self.len).unwrap_or(usize::MAX)];
        self.file.read_exact_at(&mut bytes, 0)?;
        Ok(parse(&bytes).0)
    }

    /// Cuts the journal back to `len` bytes: undoes an [`append`](Self::append) whose redb
    /// commit then failed (that group was never answered).
    pub(crate) fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        Ok(())
    }

    /// The journal's length: a point to [`truncate`](Self::truncate) back to.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Empties the journal, once redb holds everything in it durably.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        self.truncate(0)
    }

    /// Whether the disk takes writes again: writes [`PROBE_BYTES`] past the end and cuts them
    /// off. A full disk answers `StorageFull`.
    pub(crate) fn probe(&mut self) -> io::Result<()> {
        let written = self.file.write_all_at(&[0; PROBE_BYTES], self.len).and_then(|()| self.file.sync_data());
        let cut = self.file.set_len(self.len);
        written.and(cut)
    }
}

/// The complete, intact entries at the start of `bytes`, and how many bytes they take.
fn parse(bytes: &[u8]) -> (Vec<Entry>, u64) {
    let total = bytes.len();
    let mut bytes = bytes;
    let mut out = Vec::new();
    while bytes.len() >= ENTRY_HEADER {
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let Some(body) = bytes.get(ENTRY_HEADER..ENTRY_HEADER + len) else { break };
        if len < 16 || crc32fast::hash(body) != crc {
            break;
        }
        let (id, record) = body.split_at(16);
        let Ok(id) = <[u8; 16]>::try_from(id) else { break };
        out.push((EventId::from_bytes(id), record.to_vec()));
        bytes = &bytes[ENTRY_HEADER + len..];
    }
    (out, (total - bytes.len()) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> EventId {
        EventId { ms, seq: 0 }
    }

    #[test]
    fn entries_round_trip_and_reading_stops_at_a_torn_or_damaged_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, read) = Journal::open(dir.path()).unwrap();
        assert!(read.is_empty());
        j.append([(id(1), &b"one"[..]), (id(2), &b"two"[..])]).unwrap();
        let mark = j.len();
        j.append([(id(3), &b"three"[..])]).unwrap();
        drop(j);
        let (_, read) = Journal::open(dir.path()).unwrap();
        assert_eq!(read, vec![(id(1), b"one".to_vec()), (id(2), b"two".to_vec()), (id(3), b"three".to_vec())]);

        // A torn last entry (the process died inside the write): the rest is read.
        let path = dir.path().join(FILE_NAME);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 2]).unwrap();
        let (_, read) = Journal::open(dir.path()).unwrap();
        assert_eq!(read.len(), 2);

        // A flipped byte in the second entry: only the first is read.
        let mut damaged = full.clone();
        damaged[ENTRY_HEADER + 16 + 3 + ENTRY_HEADER + 17] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        let (_, read) = Journal::open(dir.path()).unwrap();
        assert_eq!(read, vec![(id(1), b"one".to_vec())]);

        // Truncating back undoes an append; clearing empties the file.
        std::fs::write(&path, &full).unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        assert_eq!(j.len(), full.len() as u64);
        j.truncate(mark).unwrap();
        j.append([(id(4), &b"four"[..])]).unwrap();
        drop(j);
        let (mut j, read) = Journal::open(dir.path()).unwrap();
        assert_eq!(read.iter().map(|e| e.0).collect::<Vec<_>>(), [id(1), id(2), id(4)]);
        j.clear().unwrap();
        j.probe().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "the probe leaves nothing behind");
        drop(j);
        assert!(Journal::open(dir.path()).unwrap().1.is_empty());
    }
}
