//! The IMDB Large Movie Review Dataset (aclImdb v1), read as a user who downloaded it from
//! Stanford has it: the `aclImdb_v1.tar.gz` archive (streamed, no extraction) or an extracted
//! `aclImdb/` folder.
//!
//! The layout is checked: `train/{pos,neg}`, `test/{pos,neg}` (and `train/unsup` when asked
//! for) must be present, every review is `<id>_<rating>.txt` with a rating that fits its
//! folder (pos 7-10, neg 1-4, unsup 0), ids are unique per folder, and texts are UTF-8. The
//! archive's other files (`README`, `imdb.vocab`, `imdbEr.txt`, `urls_*.txt`, `*.feat`) are
//! accepted and ignored; anything else (another name, a link, `..` in a path, a file above the
//! size limit) is an error naming the member.

use crate::{DataError, Result};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// One review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    /// The id from the file name.
    pub id: u32,
    /// The 1-10 rating from the file name (0 for unlabelled reviews).
    pub rating: u8,
    /// 1 for positive, 0 for negative (unlabelled reviews: 0).
    pub label: u8,
    /// The raw text, `<br />` tags included.
    pub text: String,
}

/// The corpus, each split in a fixed order (by label, then id).
#[derive(Clone, Debug, Default)]
pub struct Imdb {
    /// 25,000 labelled training reviews.
    pub train: Vec<Review>,
    /// 25,000 labelled test reviews.
    pub test: Vec<Review>,
    /// 50,000 unlabelled reviews (`train/unsup`), read only when asked for.
    pub unsup: Vec<Review>,
}

/// Limits and options of the reader.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Also read `train/unsup`.
    pub include_unsup: bool,
    /// Largest accepted review file (bytes).
    pub max_file_bytes: u64,
    /// Largest accepted total of decompressed bytes (guards against archive bombs).
    pub max_total_bytes: u64,
    /// Which labelled splits to read (`train`, `test`).
    pub train: bool,
    /// See `train`.
    pub test: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            include_unsup: false,
            max_file_bytes: 16 << 20,
            max_total_bytes: 4 << 30,
            train: true,
            test: true,
        }
    }
}

/// Counts per folder, for reporting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `train/pos`.
    pub train_pos: usize,
    /// `train/neg`.
    pub train_neg: usize,
    /// `test/pos`.
    pub test_pos: usize,
    /// `test/neg`.
    pub test_neg: usize,
    /// `train/unsup`.
    pub unsup: usize,
}

impl Imdb {
    /// Reviews per folder.
    pub fn counts(&self) -> Counts {
        let pos = |v: &[Review]| v.iter().filter(|r| r.label == 1).count();
        Counts {
            train_pos: pos(&self.train),
            train_neg: self.train.len() - pos(&self.train),
            test_pos: pos(&self.test),
            test_neg: self.test.len() - pos(&self.test),
            unsup: self.unsup.len(),
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "train {} (pos {}, neg {}), test {} (pos {}, neg {}), unsup {}",
            self.train_pos + self.train_neg,
            self.train_pos,
            self.train_neg,
            self.test_pos + self.test_neg,
            self.test_pos,
            self.test_neg,
            self.unsup
        )
    }
}

/// Where a review goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Folder {
    TrainPos,
    TrainNeg,
    TestPos,
    TestNeg,
    Unsup,
}

impl Folder {
    fn name(self) -> &'static str {
        match self {
            Folder::TrainPos => "train/pos",
            Folder::TrainNeg => "train/neg",
            Folder::TestPos => "test/pos",
            Folder::TestNeg => "test/neg",
            Folder::Unsup => "train/unsup",
        }
    }
    fn accepts(self, rating: u8) -> bool {
        match self {
            Folder::TrainPos | Folder::TestPos => (7..=10).contains(&rating),
            Folder::TrainNeg | Folder::TestNeg => (1..=4).contains(&rating),
            Folder::Unsup => rating == 0,
        }
    }
}

/// What a member path (relative to the corpus root, `/`-separated) is.
enum Member {
    Dir,
    Review { folder: Folder, id: u32, rating: u8 },
    Ignored,
}

fn classify(rel: &str) -> std::result::Result<Member, String> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let is_dir_name = |p: &[&str]| {
        matches!(
            p,
            [] | ["train"] | ["test"] | ["train" | "test", "pos" | "neg"] | ["train", "unsup"]
        )
    };
    if is_dir_name(&parts) {
        return Ok(Member::Dir);
    }
    match parts.as_slice() {
        ["README" | "imdb.vocab" | "imdbEr.txt"] => Ok(Member::Ignored),
        ["train" | "test", f]
            if f.ends_with(".feat") || (f.starts_with("urls_") && f.ends_with(".txt")) =>
        {
            Ok(Member::Ignored)
        }
        [split, label, file] => {
            let folder = match (*split, *label) {
                ("train", "pos") => Folder::TrainPos,
                ("train", "neg") => Folder::TrainNeg,
                ("test", "pos") => Folder::TestPos,
                ("test", "neg") => Folder::TestNeg,
                ("train", "unsup") => Folder::Unsup,
                _ => return Err("not a folder of the aclImdb layout".into()),
            };
            let stem = file
                .strip_suffix(".txt")
                .ok_or_else(|| "review files must be named <id>_<rating>.txt".to_string())?;
            let (id, rating) = stem
                .split_once('_')
                .ok_or_else(|| "review files must be named <id>_<rating>.txt".to_string())?;
            let digits =
                |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(id) || !digits(rating) {
                return Err("review files must be named <id>_<rating>.txt".into());
            }
            let id: u32 = id.parse().map_err(|_| "bad id".to_string())?;
            let rating: u8 = rating.parse().map_err(|_| "bad rating".to_string())?;
            if !folder.accepts(rating) {
                return Err(format!(
                    "rating {rating} does not belong in {}",
                    folder.name()
                ));
            }
            Ok(Member::Review { folder, id, rating })
        }
        _ => Err("not part of the aclImdb layout".into()),
    }
}

#[derive(Default)]
struct Collector {
    folders: [Vec<Review>; 5],
    seen: HashSet<(u8, u32)>,
    total: u64,
}

fn folder_index(f: Folder) -> usize {
    f as usize
}

impl Collector {
    fn wants(&self, opts: &ReadOptions, f: Folder) -> bool {
        match f {
            Folder::TrainPos | Folder::TrainNeg => opts.train,
            Folder::TestPos | Folder::TestNeg => opts.test,
            Folder::Unsup => opts.include_unsup,
        }
    }

    fn add(
        &mut self,
        what: &str,
        folder: Folder,
        id: u32,
        rating: u8,
        bytes: Vec<u8>,
    ) -> Result<()> {
        if !self.seen.insert((folder as u8, id)) {
            return Err(DataError::Layout {
                path: what.to_string(),
                reason: format!("id {id} appears twice in {}", folder.name()),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| DataError::Layout {
            path: what.to_string(),
            reason: format!(
                "the review is not valid UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        let label = u8::from(matches!(folder, Folder::TrainPos | Folder::TestPos));
        self.folders[folder_index(folder)].push(Review {
            id,
            rating,
            label,
            text,
        });
        Ok(())
    }

    fn finish(self, source: &str, opts: &ReadOptions) -> Result<Imdb> {
        let mut need = Vec::new();
        if opts.train {
            need.extend([Folder::TrainPos, Folder::TrainNeg]);
        }
        if opts.test {
            need.extend([Folder::TestPos, Folder::TestNeg]);
        }
        if opts.include_unsup {
            need.push(Folder::Unsup);
        }
        let [mut tp, mut tn, mut sp, mut sn, mut un] = self.folders;
        for f in need {
            let n = [&tp, &tn, &sp, &sn, &un][folder_index(f)].len();
            if n == 0 {
                return Err(DataError::Layout {
                    path: source.to_string(),
                    reason: format!("the folder aclImdb/{} is missing or empty", f.name()),
                });
            }
        }
        for v in [&mut tp, &mut tn, &mut sp, &mut sn, &mut un] {
            v.sort_by_key(|r| r.id);
        }
        // Order: positives then negatives, each by id.
        tp.append(&mut tn);
        sp.append(&mut sn);
        Ok(Imdb {
            train: tp,
            test: sp,
            unsup: un,
        })
    }
}

/// Read the corpus from an archive or a folder (see [`locate`] for what `path` may be).
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Imdb> {
    match locate(path)? {
        Source::Archive(p) => read_archive(&p, opts),
        Source::Folder(p) => read_folder(&p, opts),
    }
}

/// Where the corpus is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `.tar.gz` archive in Stanford's layout.
    Archive(PathBuf),
    /// An extracted corpus root (the `aclImdb/` folder).
    Folder(PathBuf),
}

/// Resolve a user-given path: the archive itself, an extracted `aclImdb/` folder, or a folder
/// that contains either.
pub fn locate(path: &Path) -> Result<Source> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if meta.is_file() {
        return Ok(Source::Archive(path.to_path_buf()));
    }
    if path.join("train").is_dir() && path.join("test").is_dir() {
        return Ok(Source::Folder(path.to_path_buf()));
    }
    if path.join("aclImdb").join("train").is_dir() {
        return Ok(Source::Folder(path.join("aclImdb")));
    }
    let archive = path.join(crate::download::IMDB_FILE_NAME);
    if archive.is_file() {
        return Ok(Source::Archive(archive));
    }
    Err(DataError::NotFound(format!(
        "no IMDB corpus at {}: expected aclImdb_v1.tar.gz, an extracted aclImdb/ folder, or a folder containing one of them",
        path.display()
    )))
}

/// Read from the `.tar.gz` archive, streaming.
pub fn read_archive(path: &Path, opts: &ReadOptions) -> Result<Imdb> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let gz = flate2::read::GzDecoder::new(BufReader::with_capacity(1 << 20, file));
    read_tar(gz, &path.display().to_string(), opts)
}

/// Read a tar stream (gzip already removed) in the aclImdb layout.
pub fn read_tar<R: Read>(reader: R, source: &str, opts: &ReadOptions) -> Result<Imdb> {
    let mut archive = tar::Archive::new(reader);
    let mut col = Collector::default();
    let bad = |name: &str, reason: String| DataError::Layout {
        path: format!("{source}: {name}"),
        reason,
    };
    let entries = archive.entries().map_err(|e| DataError::Layout {
        path: source.to_string(),
        reason: format!("not a readable tar.gz archive: {e}"),
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DataError::Layout {
            path: source.to_string(),
            reason: format!("corrupt or truncated archive: {e}"),
        })?;
        let raw_path = entry
            .path()
            .map_err(|e| bad("<member>", format!("unreadable member name: {e}")))?
            .into_owned();
        let name = raw_path.to_string_lossy().to_string();
        // No absolute paths, no `..`, and everything under aclImdb/.
        let mut comps = Vec::new();
        for c in raw_path.components() {
            match c {
                Component::Normal(s) => comps.push(s.to_string_lossy().to_string()),
                Component::CurDir => {}
                _ => {
                    return Err(bad(
                        &name,
                        "absolute paths and '..' are not allowed in the archive".into(),
                    ))
                }
            }
        }
        if comps.first().map(String::as_str) != Some("aclImdb") {
            return Err(bad(
                &name,
                "every member must be inside the aclImdb/ folder".into(),
            ));
        }
        let rel = comps[1..].join("/");
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(bad(
                &name,
                format!("{kind:?} members (links, devices...) are not allowed"),
            ));
        }
        let member = classify(&rel).map_err(|r| bad(&name, r))?;
        match member {
            Member::Dir if kind.is_dir() => {}
            Member::Dir => return Err(bad(&name, "expected a folder".into())),
            _ if kind.is_dir() => return Err(bad(&name, "unexpected folder".into())),
            Member::Ignored => {}
            Member::Review { folder, id, rating } => {
                let size = entry
                    .header()
                    .size()
                    .map_err(|e| bad(&name, format!("bad size field: {e}")))?;
                if size > opts.max_file_bytes {
                    return Err(bad(
                        &name,
                        format!(
                            "{size} bytes is above the limit of {} per review",
                            opts.max_file_bytes
                        ),
                    ));
                }
                if !col.wants(opts, folder) {
                    continue;
                }
                col.total += size;
                if col.total > opts.max_total_bytes {
                    return Err(bad(
                        &name,
                        format!(
                            "the archive expands to more than {} bytes",
                            opts.max_total_bytes
                        ),
                    ));
                }
                let mut buf = Vec::with_capacity(size as usize);
                (&mut entry)
                    .take(opts.max_file_bytes + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| bad(&name, format!("corrupt or truncated archive: {e}")))?;
                if buf.len() as u64 != size {
                    return Err(bad(
                        &name,
                        "corrupt or truncated archive (short member)".into(),
                    ));
                }
                col.add(&name, folder, id, rating, buf)?;
            }
        }
    }
    col.finish(source, opts)
}

/// Read an extracted corpus root (`aclImdb/`).
pub fn read_folder(root: &Path, opts: &ReadOptions) -> Result<Imdb> {
    let mut col = Collector::default();
    let source = root.display().to_string();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let rd = std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| DataError::io(&dir, e))?;
            let name = ent.file_name();
            let name = name.to_str().ok_or_else(|| DataError::Layout {
                path: ent.path().display().to_string(),
                reason: "file names must be UTF-8".into(),
            })?;
            let rel_child = rel.join(name);
            let rel_str = rel_child.to_string_lossy().replace('\\', "/");
            let full = ent.path();
            let meta = std::fs::symlink_metadata(&full).map_err(|e| DataError::io(&full, e))?;
            let bad = |reason: String| DataError::Layout {
                path: full.display().to_string(),
                reason,
            };
            if meta.file_type().is_symlink() {
                return Err(bad("symbolic links are not allowed in the corpus".into()));
            }
            match classify(&rel_str).map_err(&bad)? {
                Member::Dir if meta.is_dir() => stack.push(rel_child),
                Member::Dir => return Err(bad("expected a folder".into())),
                _ if meta.is_dir() => return Err(bad("unexpected folder".into())),
                Member::Ignored => {}
                Member::Review { folder, id, rating } => {
                    if meta.len() > opts.max_file_bytes {
                        return Err(bad(format!(
                            "{} bytes is above the limit of {} per review",
                            meta.len(),
                            opts.max_file_bytes
                        )));
                    }
                    if !col.wants(opts, folder) {
                        continue;
                    }
                    let bytes = std::fs::read(&full).map_err(|e| DataError::io(&full, e))?;
                    col.add(&full.display().to_string(), folder, id, rating, bytes)?;
                }
            }
        }
    }
    col.finish(&source, opts)
}

/// Read one labelled folder holding `pos/` and `neg/` (such as `aclImdb/test`): the reviews
/// with the same checks as the full reader, positives first.
pub fn read_labelled_folder(dir: &Path, opts: &ReadOptions) -> Result<Vec<Review>> {
    let mut col = Collector::default();
    for (label, folder) in [("pos", Folder::TestPos), ("neg", Folder::TestNeg)] {
        let sub = dir.join(label);
        let rd = std::fs::read_dir(&sub).map_err(|e| DataError::io(&sub, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| DataError::io(&sub, e))?;
            let full = ent.path();
            let bad = |reason: String| DataError::Layout {
                path: full.display().to_string(),
                reason,
            };
            let name = ent
                .file_name()
                .to_str()
                .map(str::to_string)
                .ok_or_else(|| bad("file names must be UTF-8".into()))?;
            let meta = std::fs::symlink_metadata(&full).map_err(|e| DataError::io(&full, e))?;
            if !meta.is_file() {
                return Err(bad("only review files are allowed here".into()));
            }
            match classify(&format!("test/{label}/{name}")).map_err(&bad)? {
                Member::Review { id, rating, .. } => {
                    if meta.len() > opts.max_file_bytes {
                        return Err(bad(format!(
                            "{} bytes is above the limit of {} per review",
                            meta.len(),
                            opts.max_file_bytes
                        )));
                    }
                    let bytes = std::fs::read(&full).map_err(|e| DataError::io(&full, e))?;
                    col.add(&full.display().to_string(), folder, id, rating, bytes)?;
                }
                _ => return Err(bad("not a review file".into())),
            }
        }
    }
    let imdb = col.finish(
        &dir.display().to_string(),
        &ReadOptions {
            train: false,
            test: true,
            include_unsup: false,
            ..*opts
        },
    )?;
    Ok(imdb.test)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names() {
        assert!(matches!(
            classify("train/pos/12_9.txt"),
            Ok(Member::Review {
                folder: Folder::TrainPos,
                id: 12,
                rating: 9
            })
        ));
        assert!(matches!(
            classify("train/unsup/3_0.txt"),
            Ok(Member::Review {
                folder: Folder::Unsup,
                ..
            })
        ));
        assert!(matches!(classify("imdb.vocab"), Ok(Member::Ignored)));
        assert!(matches!(
            classify("train/labeledBow.feat"),
            Ok(Member::Ignored)
        ));
        assert!(matches!(classify("test/urls_pos.txt"), Ok(Member::Ignored)));
        assert!(matches!(classify("test/neg"), Ok(Member::Dir)));
        assert!(
            classify("train/pos/12_3.txt").is_err(),
            "a 3 is not positive"
        );
        assert!(classify("test/unsup/1_0.txt").is_err());
        assert!(classify("train/pos/12.txt").is_err());
        assert!(classify("train/pos/a_9.txt").is_err());
        assert!(classify("train/pos/12_9.md").is_err());
        assert!(classify("train/pos/x/12_9.txt").is_err());
        assert!(classify("notes.txt").is_err());
    }
}
